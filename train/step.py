"""One optimisation step: forward and backward over the micro-batches of a global batch.

Gradients of all but the last micro-batch skip DDP's all-reduce (`no_sync`), so accumulating
k micro-batches costs one gradient exchange, and reaching the paper's batch of 3072 on a few
devices is a matter of `data.micro_batch_size`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from torch import nn

from train.batches import Batch
from train.config import ContextLossConfig, SigRegConfig
from train.context_loss import context_loss_weight, distance_weights
from train.data.base import normalize_clip
from train.monitor import per_dim_std
from train.objectives import Objective, target_tokens
from train.sigreg import sigreg as sigreg_statistic


@dataclass
class StepStats:
    """Means over the micro-batches of one step: summed per micro-batch, then divided by their
    number at the end of `forward_backward`."""

    loss: torch.Tensor = field(default_factory=lambda: torch.zeros(()))
    set_losses: list[float] = field(default_factory=list)
    pred_std: float = 0.0
    target_std: float = 0.0
    mask_ratio: list[float] = field(default_factory=list)
    padding: float = 0.0
    sigreg: float = 0.0
    context_loss: float = 0.0


def autocast_dtype(precision: str) -> torch.dtype | None:
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


def autocast(device: torch.device, precision: str):
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@dataclass
class StepSetup:
    """What every step of a run computes with, fixed when the run is built."""

    model: nn.Module  # encoder + predictor (train/models/jepa.py), maybe DDP-wrapped or compiled
    target_encoder: nn.Module
    objective: Objective
    device: torch.device
    precision: str  # fp32 | bf16 | fp16: the autocast dtype
    scaler: torch.amp.GradScaler | None  # fp16 only
    num_tokens: int  # tokens per clip, to turn mask sizes into ratios
    grid: tuple[int, int, int]  # the token grid (T, H, W), for the context loss's distances
    sigreg: SigRegConfig | None = None
    context_loss: ContextLossConfig | None = None


def forward_backward(
    setup: StepSetup, micro_batches: list[Batch], *, with_monitors: bool
) -> StepStats:
    """Gradients of the mean loss over the micro-batches; with `setup.sigreg` (weight > 0) the
    loss adds weight x SIGReg of the context embeddings, with `setup.context_loss` (weight > 0)
    its weight at this step x the context loss (train/context_loss.py). `stats.loss` is the
    prediction loss alone, comparable across runs; `stats.sigreg` and `stats.context_loss` the
    added terms, unweighted. `with_monitors` also fills the per-set losses, standard
    deviations, mask ratios and padding of a logged step."""
    model, objective, device, scaler = setup.model, setup.objective, setup.device, setup.scaler
    sigreg, context_cfg = setup.sigreg, setup.context_loss
    stats = StepStats(loss=torch.zeros((), device=device))
    regularise = sigreg is not None and sigreg.weight > 0
    # The context head runs on every step of such a run, its weight 0 during a ramp included:
    # DDP expects every parameter to get a gradient.
    predict_context = context_cfg is not None and context_cfg.weight > 0
    n = len(micro_batches)
    for i, batch in enumerate(micro_batches):
        last = i == n - 1
        sync = (
            contextlib.nullcontext() if last or not hasattr(model, "no_sync") else model.no_sync()
        )
        clips = normalize_clip(batch.clips)
        with sync:
            with autocast(device, setup.precision):
                all_targets = objective.targets(clips, setup.target_encoder)
                outputs = model(clips, batch.masks, predict_context=predict_context)
                predictions = outputs.predictions
                targets = [target_tokens(all_targets, m.target_idx) for m in batch.masks]
                set_losses = [
                    objective.loss(p, t, m.target_valid)
                    for p, t, m in zip(predictions, targets, batch.masks)
                ]
                loss = torch.stack(set_losses).mean()
                total = loss
                if regularise:
                    embeddings = torch.cat(
                        [c[m.context_valid] for c, m in zip(outputs.contexts, batch.masks)]
                    )
                    # Directions drawn per (step, micro-batch): the same on every rank.
                    reg = sigreg_statistic(
                        embeddings, sigreg.slices, batch.step * 1009 + i, sigreg.tokens
                    )
                    total = loss + sigreg.weight * reg
                    stats.sigreg += reg.detach().item() / n
                if predict_context:
                    context = _context_loss(setup, all_targets, outputs, batch)
                    total = total + context_loss_weight(context_cfg, batch.step) * context
                    stats.context_loss += context.detach().item() / n
            scaled = total / n
            (scaler.scale(scaled) if scaler is not None else scaled).backward()
        stats.loss += loss.detach()
        if with_monitors:
            _add_monitors(stats, predictions, targets, batch, set_losses, setup.num_tokens)
    stats.loss /= n
    if with_monitors:
        stats.set_losses = [v / n for v in stats.set_losses]
        stats.mask_ratio = [v / n for v in stats.mask_ratio]
        stats.pred_std /= n
        stats.target_std /= n
        stats.padding /= n
    return stats


def _context_loss(setup: StepSetup, all_targets, outputs, batch: Batch) -> torch.Tensor:
    """The context head's loss at the visible tokens, averaged over the mask sets."""
    losses = []
    for predicted, m in zip(outputs.context_predictions, batch.masks):
        weights = None
        if setup.context_loss.distance_weighted:
            weights = distance_weights(m.context_idx, m.target_idx, m.target_valid, setup.grid)
        target = target_tokens(all_targets, m.context_idx)
        losses.append(setup.objective.loss(predicted, target, m.context_valid, weights))
    return torch.stack(losses).mean()


@torch.no_grad()
def _add_monitors(stats, predictions, targets, batch, set_losses, num_tokens) -> None:
    first = not stats.set_losses
    for k, (p, t, m, loss) in enumerate(zip(predictions, targets, batch.masks, set_losses)):
        values = (loss.item(), m.masking_ratio(num_tokens))
        if first:
            stats.set_losses.append(values[0])
            stats.mask_ratio.append(values[1])
        else:
            stats.set_losses[k] += values[0]
            stats.mask_ratio[k] += values[1]
        stats.pred_std += per_dim_std(p, m.target_valid) / len(predictions)
        stats.target_std += per_dim_std(t, m.target_valid) / len(predictions)
        stats.padding += m.padding_fraction() / len(predictions)
