"""Probe training on frozen features, and the linear probe on mean-pooled tokens.

Several probes (one per label) train in lockstep on the same batches: for the attentive probe
this lets one pass over the tokens serve every label (train/eval/attentive.py). Their
parameters are disjoint and AdamW works per parameter, so each probe trains exactly as it
would alone on that batch sequence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.models.vit import LAYER_NORM_EPS


@dataclass
class ProbeTraining:
    """How a probe is optimised: AdamW with a linear warmup and a cosine learning rate.

    The paper trains its attentive probe at lr 1e-3 for 20 epochs of a large dataset, i.e.
    thousands of steps. A probe stopped before it converges reports chance and calls good
    features useless: on the teaching preset's online encoder, 300 steps read direction at
    chance (14%) where 1000 steps read 57% (single-object clips, chance 12.5%). With 1000
    steps at batch 128, 3e-3 read every label at least as well as 1e-3, 1e-2 or 3e-2 on the
    untrained, target and online encoders, and better than batch 64.
    """

    steps: int = 1000
    batch_size: int = 128
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50


class LinearProbe(nn.Module):
    """Mean-pooled tokens, standardised with fixed training statistics, then one linear layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-6))
        self.head = nn.Linear(mean.shape[-1], num_classes)

    @classmethod
    def for_features(cls, pooled: torch.Tensor, num_classes: int) -> LinearProbe:
        return cls(pooled.float().mean(0), pooled.float().std(0), num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head((pooled.float() - self.mean) / self.std)


def normalize_tokens(tokens: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The affine-free LayerNorm of each token [..., D], what the attentive probe takes as
    input: applied once to frozen features instead of at every step (the probe keeps the
    learned scale and shift), and stored in bfloat16 to halve the memory read per step."""
    return F.layer_norm(tokens.float(), (tokens.shape[-1],), eps=LAYER_NORM_EPS).to(dtype)


def mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    """[N, T, D] token features -> [N, D] clip features, in float32."""
    return tokens.float().mean(1)


def grid_pool(
    tokens: torch.Tensor, grid: tuple[int, int, int], cells: tuple[int, int] = (2, 2)
) -> torch.Tensor:
    """[N, tokens, D] on a (T', H', W') token grid -> [N, T' * cells * D] float32: each token
    layer-normed (without affine), then averaged within `cells` regions of each time step.

    Where and when survive, so a linear readout can see an object move; mean pooling
    averages both away (and with them most of a small object).
    """
    n, _, d = tokens.shape
    volume = F.layer_norm(tokens.float(), (d,)).transpose(1, 2).reshape(n, d, *grid)
    kept = (grid[0], min(cells[0], grid[1]), min(cells[1], grid[2]))
    return F.adaptive_avg_pool3d(volume, kept).flatten(1)


def cosine_lr(step: int, settings: ProbeTraining) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    progress = (step - settings.warmup_steps) / span
    return 0.5 * settings.lr * (1.0 + math.cos(math.pi * progress))


LogitsOf = Callable[[torch.Tensor], list[torch.Tensor]]


def train_probes(
    probes: Sequence[nn.Module],
    logits_of: LogitsOf,
    inputs: torch.Tensor,
    labels: Sequence[torch.Tensor],
    settings: ProbeTraining,
    generator: torch.Generator,
) -> None:
    """Cross-entropy, summed over the probes, on mini-batches drawn epoch by epoch from
    `generator`. `logits_of(batch)` returns one logits tensor per probe, in order."""
    if inputs.shape[0] == 0 or any(y.shape[0] != inputs.shape[0] for y in labels):
        raise ValueError(
            f"need as many labels as inputs (> 0), got {inputs.shape[0]} inputs and "
            f"{[y.shape[0] for y in labels]} labels"
        )
    params = [p for probe in probes for p in probe.parameters()]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=settings.weight_decay)
    batch = min(settings.batch_size, inputs.shape[0])
    order = torch.randperm(inputs.shape[0], generator=generator)
    cursor = 0
    for probe in probes:
        probe.train()
    for step in range(settings.steps):
        if cursor + batch > order.numel():
            order, cursor = torch.randperm(inputs.shape[0], generator=generator), 0
        index = order[cursor : cursor + batch].to(inputs.device)
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings)
        logits = logits_of(inputs.index_select(0, index))
        loss = sum(F.cross_entropy(z, y.index_select(0, index)) for z, y in zip(logits, labels))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for probe in probes:
        probe.eval()


@torch.no_grad()
def predict(logits_of: LogitsOf, inputs: torch.Tensor, batch_size: int = 512) -> list[torch.Tensor]:
    """Predicted class per input, one tensor per probe, in batches to bound memory."""
    chunks = [
        [z.argmax(-1) for z in logits_of(inputs[i : i + batch_size])]
        for i in range(0, inputs.shape[0], batch_size)
    ]
    return [torch.cat(column) for column in zip(*chunks)]


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return (predicted == labels).float().mean().item()
