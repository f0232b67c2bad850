"""Fitting the pixel decoder on a frozen V-JEPA run.

Encoder, predictor and target encoder are frozen (eval mode, no gradient); only the decoder
learns. Each step draws clips of the run's own data and token masks of the configured families
(decoder/masks.py), turns each clip's context into predicted latents of its masked tokens (or,
in the `target` reference mode, takes the target encoder's latents there), decodes them and
regresses the ImageNet-normalised pixels of the masked tubelets with MSE.

A fit directory mirrors a core run: `config.yaml` (the decoder config), `metrics.jsonl` (one
JSON line per logged step, held-out loss / PSNR / SSIM per mask family every `eval_every`
steps), `checkpoints/latest.pt` (atomic; `resume=true` continues exactly), and at the end
`bundle.safetensors`, which the workbench opens. The folder is locked while a fit writes it
(train/run_dir.py:RunLock): a second fit into it is refused with a message.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from decoder.batches import DecoderBatch, DecoderBatches
from decoder.bundle import save_bundle
from decoder.config import DecoderConfig
from decoder.evaluation import decoder_method, held_out_batches, score_fill
from decoder.inference import region_latents
from decoder.latents import token_mask_set
from decoder.model import PixelDecoder, build_decoder
from decoder.provenance import command_line, environment
from train.batches import make_loader
from train.checkpoint import load_checkpoint, save_checkpoint
from train.config import ConfigError, to_dict
from train.data import normalize_clip
from train.models import gather_tokens
from train.monitor import MetricsLog
from train.objectives import masked_mean_per_sample, patchify
from train.optim import build_optimizer, clipped_step, set_schedule
from train.pretrained import Pretrained, models_from_state
from train.run_dir import RunLock, checkpoint_to_resume, write_run_files
from train.runtime import (
    StopSignal,
    TrainingError,
    check_resumable,
    progress_bar,
    resolve_device,
)
from train.schedules import Schedules
from train.step import autocast
from train.step_loop import StepEnd, run_steps
from train.tokens import TokenGeometry

log = logging.getLogger("decoder")

# Keys of a decoder fit that a resume may change silently: they do not change what is computed.
DECODER_FREE_CHANGES = frozenset(
    {
        "out",
        "resume",
        "device",
        "num_workers",
        "log_every",
        "checkpoint_every",
        "eval_every",
        "eval_clips",
    }
)

# Held-out evaluation: the pretraining mask sets and the painted families, reported apart.
EVAL_FAMILIES = ("multiblock-short", "multiblock-long", "blob", "tube", "future")


@dataclass
class FitResult:
    run_dir: Path
    steps_done: int
    final_loss: float
    held_out: dict[str, dict[str, float]]
    decoder: PixelDecoder
    stopped_early: bool


def pixel_targets(clips: torch.Tensor, target_idx: torch.Tensor, geometry: TokenGeometry):
    """Normalised clips [B, C, T, H, W] -> the pixels [B, K, P] of the tokens at target_idx."""
    tokens = patchify(clips, geometry.tubelet_size, geometry.patch_size)
    return gather_tokens(tokens, target_idx)


class DecoderTrainer:
    def __init__(self, pretrained: Pretrained, cfg: DecoderConfig, source: dict[str, Any]):
        self.cfg = cfg
        self.source = source
        self.device = resolve_device(cfg.device)
        self.pretrained = pretrained.to(self.device).eval()
        self.run_config = pretrained.config
        self.geometry = TokenGeometry.from_model_config(self.run_config.model)
        torch.manual_seed(cfg.seed)
        self.decoder = build_decoder(
            cfg.model,
            pretrained.predictor.predictor_proj.out_features,
            self.geometry.grid,
            self.geometry.patch_dim,
        ).to(self.device)
        core_optim = cfg.optim.as_core()
        self.optimizer = build_optimizer({"decoder": self.decoder}, core_optim, self.device)
        self.schedules = Schedules(core_optim, cfg.steps)
        self.run_dir = Path(cfg.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")
        self.start_step = 0
        self.saved_loss = float("nan")
        self.held_out = held_out_batches(self.run_config, EVAL_FAMILIES, cfg.eval_clips)

    # ----------------------------------------------------------------------------- set-up

    def prepare_run_dir(self) -> None:
        latest = checkpoint_to_resume(self.run_dir, self.cfg.resume, "decoder fit")
        if latest is not None:
            self.restore(load_checkpoint(latest, map_location=self.device))
        write_run_files(self.cfg, self.run_dir, self.metrics, self.start_step)

    def restore(self, state: dict) -> None:
        for change in check_resumable(state["config"], self.cfg, DECODER_FREE_CHANGES):
            log.warning("resuming with a changed setting: %s", change)
        if state["source"]["steps"] != self.source["steps"]:
            raise ConfigError(
                f"resume=true but this fit was started on a checkpoint of step "
                f"{state['source']['steps']} ({state['source']['checkpoint']}), not step "
                f"{self.source['steps']}: give the same checkpoint, or a new out="
            )
        self.decoder.load_state_dict(state["decoder"])
        self.optimizer.load_state_dict(state["opt"])
        self.start_step = state["step"]
        self.saved_loss = state["loss"]
        log.info("resumed %s at step %d", self.run_dir, self.start_step)

    def save(self, steps_done: int, loss: float) -> None:
        state = {
            "decoder": self.decoder.state_dict(),
            "opt": self.optimizer.state_dict(),
            "step": steps_done,
            "loss": loss,
            "config": to_dict(self.cfg),
            "source": self.source,
        }
        save_checkpoint(self.ckpt_dir, state, keep_copy=False)

    # ----------------------------------------------------------------------------- steps

    def loss(self, batch: DecoderBatch) -> tuple[torch.Tensor, float]:
        """Pixel MSE over the masked tubelets, each sample weighted equally."""
        clips = normalize_clip(batch.clips)
        masks = token_mask_set(batch.token_masks)
        with torch.no_grad(), autocast(self.device, self.cfg.precision):
            latents = region_latents(
                self.pretrained, clips, masks, batch.mask_index, self.cfg.latents
            )
        targets = pixel_targets(clips, masks.target_idx, self.geometry)
        with autocast(self.device, self.cfg.precision):
            predicted = self.decoder(latents.float(), masks.target_idx, masks.target_valid)
        errors = (predicted.float() - targets).square().mean(-1)
        hidden = masks.target_counts().float().mean().item() / self.geometry.num_tokens
        return masked_mean_per_sample(errors, masks.target_valid), hidden

    def optimizer_step(self) -> float:
        return clipped_step(self.optimizer, self.cfg.optim.clip_grad)

    @torch.no_grad()
    def evaluate(self) -> dict[str, dict[str, float]]:
        """Held-out loss, PSNR and SSIM in the masked region, per mask family."""
        self.decoder.eval()
        method = decoder_method("decoder", self.pretrained, self.decoder, self.cfg.latents)
        results = {}
        for family, batch in self.held_out.items():
            batch = batch.to(self.device)
            loss, _ = self.loss(batch)
            with autocast(self.device, self.cfg.precision):
                filled = method.fill(batch)
            results[family] = {"loss": loss.item(), **score_fill(filled, batch, self.geometry)}
        self.decoder.train()
        return results

    # ----------------------------------------------------------------------------- the loop

    def run(self) -> FitResult:
        cfg = self.cfg
        self.prepare_run_dir()
        if self.start_step >= cfg.steps:
            log.warning("%s already finished %d steps; evaluating it", self.run_dir, cfg.steps)
            held_out = self.evaluate()
            return FitResult(
                self.run_dir, self.start_step, self.saved_loss, held_out, self.decoder, False
            )
        batches = iter(
            make_loader(
                DecoderBatches(self.run_config, cfg),
                self.start_step,
                cfg.steps,
                cfg.num_workers,
                self.device.type == "cuda",
            )
        )
        bar = progress_bar(f"decoder {self.run_dir.name}", cfg.steps, self.start_step)
        started = time.perf_counter()
        held_out: dict[str, dict[str, float]] = {}  # the latest evaluation's

        def one_step(step: int, stop: StopSignal) -> StepEnd:
            nonlocal held_out
            steps_done = step + 1
            fetch_start = time.perf_counter()
            batch = next(batches).to(self.device)
            compute_start = time.perf_counter()
            lr = self.schedules.lr(step)
            set_schedule(self.optimizer, lr, self.schedules.weight_decay(step))
            loss, hidden = self.loss(batch)
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrainingError(
                    f"decoder loss became {loss_value} at step {steps_done}; nothing of this "
                    "step was saved. Resume with resume=true and a lower optim.lr, or "
                    "precision=fp32."
                )
            loss.backward()
            grad_norm = self.optimizer_step()
            step_s = time.perf_counter() - compute_start
            data_s = compute_start - fetch_start
            last = steps_done == cfg.steps
            evaluate_now = last or (cfg.eval_every and steps_done % cfg.eval_every == 0)
            if steps_done % cfg.log_every == 0 or steps_done == 1 or evaluate_now:
                record = {
                    "step": steps_done,
                    "loss": loss_value,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "mask_ratio": hidden,
                    "data_s": data_s,
                    "step_s": step_s,
                    "clips_per_s": cfg.batch_size / max(1e-9, data_s + step_s),
                    "elapsed_s": time.perf_counter() - started,
                }
                if evaluate_now:
                    held_out = self.evaluate()
                    record["held_out"] = held_out
                self.metrics.write(record)
                bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            # The signal is read after the evaluation, so one during it stops at this step. The
            # last step ends the fit with its bundle, signal or not.
            return StepEnd(steps_done, loss_value, stop.requested and not last)

        self.decoder.train()
        end, stopped = run_steps(self, bar, one_step, log)
        if not stopped:
            self.write_bundle(end.loss, held_out)
        return FitResult(self.run_dir, end.steps_done, end.loss, held_out, self.decoder, stopped)

    def write_bundle(self, loss: float, held_out: dict) -> Path:
        provenance = {
            "command": command_line(),
            **environment(),
            "pretrain": self.source,
            "decoder": {"steps": self.cfg.steps, "final_loss": loss, "held_out": held_out},
        }
        return save_bundle(
            self.run_dir / "bundle.safetensors",
            self.pretrained,
            self.decoder,
            self.cfg,
            provenance,
        )


def fit_decoder(
    pretrained: Pretrained, cfg: DecoderConfig, source: dict[str, Any] | None = None
) -> FitResult:
    """Fit a decoder on `pretrained` (frozen); `source` describes where it came from."""
    source = source or {"checkpoint": None, "steps": pretrained.step}
    trainer = DecoderTrainer(pretrained, cfg, source)
    # As for a training (train/loop.py:train): one process at a time writes a fit folder, so two
    # fits never interleave their metrics or checkpoints; a killed holder's lock is no lock.
    with RunLock(trainer.run_dir, "decoder fit"):
        return trainer.run()


def source_of(path: str | Path, state: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a core checkpoint: its path, step, final loss."""
    return {"checkpoint": str(path), "steps": int(state["step"]), "loss": state.get("loss")}


def load_source(path: str | Path) -> tuple[Pretrained, dict[str, Any]]:
    """A core run directory or checkpoint -> frozen models and their provenance."""
    state = load_checkpoint(path)
    return models_from_state(state).eval(), source_of(path, state)
