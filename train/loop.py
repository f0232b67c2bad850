"""The training loop: build models and data from a Config, step, log, checkpoint, resume.

A run directory holds `config.yaml` (the resolved config), `metrics.jsonl` and `checkpoints/`.
Faults end the run with a message a user can act on and the last good checkpoint intact:
a non-finite loss (nothing of that step is saved), weights that became non-finite or ran away
(never saved: see DIVERGED_FACTOR), too many unreadable files, SIGTERM/SIGINT (finish the step,
save, exit). `resume=true` continues exactly where the checkpoint stopped.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from train import distributed
from train.batches import MONITOR, Batch, BatchPlan, StepBatches, make_loader, mix_seed
from train.checkpoint import (
    LATEST,
    CheckpointError,
    kept_checkpoints,
    load_checkpoint,
    non_finite_tensors,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from train.compiled import CompiledOrEager
from train.config import Config, ConfigError, to_dict
from train.data import DataError, Draw, build_dataset, normalize_clip
from train.ema import ema_update
from train.masks import build_masker
from train.models.jepa import JEPA
from train.monitor import MetricsLog, rankme
from train.objectives import build_objective
from train.optim import build_optimizer, clipped_step, set_schedule
from train.pretrained import build_models
from train.run_dir import RunLock, checkpoint_to_resume, load_for_resume, write_run_files
from train.runtime import (
    BadDataError,
    NonFiniteLossError,
    TrainingError,
    check_batch_memory,
    check_resumable,
    progress_bar,
    resolve_device,
)
from train.schedules import Schedules
from train.step import StepSetup, autocast, forward_backward
from train.step_loop import StepEnd, run_steps

log = logging.getLogger("train")

MIN_DRAWS_FOR_BAD_FRACTION = 200
RANKME_MAX_TOKENS = 4096

# Weights that run away count as divergence: a save refuses an encoder or predictor whose largest
# |w| exceeds this multiple of its value at initialisation. Measured: the test suite's micro model
# (tests/conftest.py, lr 1e-3) went from 1.0 at step 0 (the LayerNorm gains) to at most 1.12
# (encoder) and 1.15 (predictor) over 300 steps, the tiny_cpu preset from 1.0 to 1.02 and 1.03
# over its first 57 steps; with optim.lr=1e6 both reached 5.0e5 one step before the loss turned
# NaN. 1000x leaves a healthy run far more room than it was seen to use, and still stops that
# run one step earlier, on finite weights 500x past the line.
DIVERGED_FACTOR = 1000.0


def max_abs(tensors) -> float:
    """The largest |value| among `tensors` (NaN when one holds NaN)."""
    peaks = [t.detach().abs().max().float() for t in tensors if t.numel()]
    return torch.stack(peaks).max().item() if peaks else 0.0


@dataclass
class StepOutcome(StepEnd):
    record: dict | None  # the metrics of a logged step, before the periodic monitors


@dataclass
class RunResult:
    run_dir: Path
    steps_done: int
    final_loss: float
    stopped_early: bool


class Trainer:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.dist = distributed.setup(self.device.type)
        if self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        self.run_dir = Path(cfg.out)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl")

        torch.manual_seed(cfg.seed)  # identical initial weights on every rank
        try:
            models = build_models(cfg).to(self.device)
        except ValueError as err:  # a geometry the models refuse, e.g. a width they cannot split
            raise ConfigError(f"the model settings do not make a model: {err}") from None
        self.encoder, self.predictor = models.encoder, models.predictor
        if cfg.optim.freeze_patch_embed:
            # Left out of the optimizer; the EMA target's copy then stays equal to it.
            self.encoder.patch_embed.requires_grad_(False)
        self.target_encoder = models.target_encoder.eval()
        # The scale of the weights at step 0 (the same seed gives the same on every resume):
        # what DIVERGED_FACTOR multiplies.
        self.initial_scale = self.weight_scale()
        self.num_tokens = self.encoder.num_tokens
        self.objective = build_objective(
            cfg.target,
            cfg.model.tubelet_size,
            cfg.model.patch_size,
            cfg.feature_loss,
            cfg.model.pred_levels,
        )
        self.optimizer = build_optimizer(
            {"encoder": self.encoder, "predictor": self.predictor}, cfg.optim, self.device
        )
        self.scaler = torch.amp.GradScaler(self.device.type) if cfg.precision == "fp16" else None
        self.schedules = Schedules(cfg.optim, cfg.steps)

        model = JEPA(self.encoder, self.predictor)
        if self.dist.enabled:
            device_ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            # Buffers are fixed position tables, identical on every rank: no need to sync them.
            model = DistributedDataParallel(
                model, device_ids=device_ids, forward_sync_buffers=False
            )
        # A compile failure falls back to eager with one warning (train/compiled.py).
        self.model = CompiledOrEager(model, "model") if cfg.compile else model
        self.target_forward = (
            CompiledOrEager(self.target_encoder, "target encoder")
            if cfg.compile
            else self.target_encoder
        )
        self.step_setup = StepSetup(
            self.model,
            self.target_forward,
            self.objective,
            self.device,
            cfg.precision,
            self.scaler,
            self.num_tokens,
            self.encoder.grid_size,
            cfg.sigreg,
            cfg.context_loss,
        )

        try:
            self.dataset = build_dataset(cfg)
        except FileNotFoundError as err:
            raise DataError(f"data.path: {err}") from None
        self.plan = BatchPlan.create(
            len(self.dataset),
            cfg.data.batch_size,
            cfg.data.micro_batch_size,
            self.dist.world_size,
            self.dist.rank,
            cfg.seed,
            # Only sources that read several clips per open group their draws (video files).
            getattr(self.dataset, "clips_per_open", 1),
        )
        m = cfg.model
        self.masker = build_masker(cfg.mask, self.encoder.grid_size, m.tubelet_size)
        self.clip_shape = (m.in_chans, m.num_frames, m.img_size, m.img_size)
        check_batch_memory(self.plan.micro_batch, self.clip_shape)
        self.online_probe = None
        if cfg.monitor.online_probe_every and self.dist.is_main:
            from train.eval.online import OnlineProbe

            self.online_probe = OnlineProbe(cfg, self.device)
        self.physics_monitor = None
        if cfg.monitor.physics_every and self.dist.is_main:
            from train.eval.physics import PhysicsMonitor

            self.physics_monitor = PhysicsMonitor(cfg, cfg.monitor.physics_pairs_per_law)
        self.start_step = 0
        self.last_saved_step: int | None = None
        # The step and weight scale of the checkpoint this process resumed from, if any.
        self.resumed_step: int | None = None
        self.resumed_scale: dict[str, float] = {}
        self.data_counts = {"delivered": 0, "skipped": 0}

    # ----------------------------------------------------------------------------- set-up

    def prepare_run_dir(self) -> None:
        latest = checkpoint_to_resume(self.run_dir, self.cfg.resume)
        if latest is not None:
            warn = log.warning if self.dist.is_main else log.debug
            try:
                state = load_for_resume(latest, self.device, warn)
            except CheckpointError as err:
                raise TrainingError(str(err)) from None
            self.restore(state)
        elif self.cfg.resume and self.dist.is_main:
            log.warning(
                "resume=true but %s has no checkpoint yet: starting from step 0", self.run_dir
            )
        if self.dist.is_main:
            write_run_files(self.cfg, self.run_dir, self.metrics, self.start_step)
        distributed.barrier(self.dist)

    def restore(self, state: dict) -> None:
        bad = non_finite_tensors([state[k] for k in ("encoder", "predictor", "target_encoder")])
        if bad:  # written before saves were checked
            raise TrainingError(
                f"the checkpoint of step {state['step']} in {self.ckpt_dir} holds non-finite "
                f"weights ({len(bad)} tensors): resuming cannot help. Start a new run with a "
                "lower optim.lr (another out=)."
            )
        for change in check_resumable(state["config"], self.cfg):
            if self.dist.is_main:
                log.warning("resuming with a changed setting: %s", change)
        self.encoder.load_state_dict(state["encoder"])
        self.predictor.load_state_dict(state["predictor"])
        self.target_encoder.load_state_dict(state["target_encoder"])
        self.optimizer.load_state_dict(state["opt"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        set_rng_state(state["rng"])
        self.start_step = self.last_saved_step = self.resumed_step = state["step"]
        self.resumed_scale = self.weight_scale()
        self.data_counts = dict(state["data_counts"])
        if self.runaway(self.resumed_scale):  # written before saves checked the scale
            problem = (
                f"the checkpoint of step {self.resumed_step} in {self.ckpt_dir} holds weights "
                f"that ran away ({self.describe_scale(self.resumed_scale)})"
            )
            raise TrainingError(self.diverged_checkpoint_message(problem))
        if self.dist.is_main:
            log.info("resumed %s at step %d", self.run_dir, self.start_step)

    def state(self, steps_done: int, loss: float) -> dict:
        return {
            "encoder": self.encoder.state_dict(),
            "predictor": self.predictor.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "opt": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "step": steps_done,
            "loss": loss,
            "data_counts": dict(self.data_counts),
            "rng": rng_state(),
            "config": to_dict(self.cfg),
        }

    def check_finite(self, steps_done: int) -> None:
        """Raise NonFiniteLossError when a weight or optimizer state holds NaN or infinity,
        before anything logs or saves them. Weights agree across ranks: all ranks stop alike."""
        trees = {
            "encoder": self.encoder.state_dict(),
            "predictor": self.predictor.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "opt": self.optimizer.state_dict()["state"],
        }
        bad = non_finite_tensors(trees)
        if bad:
            problem = (
                f"the weights became non-finite at step {steps_done} ({len(bad)} tensors hold "
                f"NaN or infinity, first {bad[0]}); they were not logged or saved"
            )
            raise NonFiniteLossError(self.non_finite_message(problem, steps_done))

    def weight_scale(self) -> dict[str, float]:
        """max |w| of the encoder's and the predictor's parameters."""
        return {
            "encoder": max_abs(self.encoder.parameters()),
            "predictor": max_abs(self.predictor.parameters()),
        }

    def runaway(self, scale: dict[str, float]) -> list[str]:
        """The models in `scale` whose largest weight is past DIVERGED_FACTOR x its initial."""
        return [k for k, v in scale.items() if not v <= DIVERGED_FACTOR * self.initial_scale[k]]

    def describe_scale(self, scale: dict[str, float]) -> str:
        return "max |w| " + ", ".join(
            f"{v:.3g} in the {k} ({self.initial_scale[k]:.3g} at step 0)" for k, v in scale.items()
        )

    def check_not_diverged(self, steps_done: int) -> None:
        """Raise NonFiniteLossError when the weights ran away (see DIVERGED_FACTOR): finite, but
        a checkpoint of them would only give NaN on resume. Weights agree across ranks."""
        scale = self.weight_scale()
        if self.runaway(scale):
            problem = (
                f"the weights diverged at step {steps_done} ({self.describe_scale(scale)}: "
                f"more than {DIVERGED_FACTOR:g}x); they were not logged or saved"
            )
            raise NonFiniteLossError(self.non_finite_message(problem, steps_done))

    def save(self, steps_done: int, loss: float) -> None:
        if self.dist.is_main:
            keep = bool(self.cfg.keep_every) and steps_done % self.cfg.keep_every == 0
            try:
                save_checkpoint(self.ckpt_dir, self.state(steps_done, loss), keep_copy=keep)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                raise TrainingError(self.disk_full_message(steps_done)) from None
        self.last_saved_step = steps_done
        distributed.barrier(self.dist)

    # ----------------------------------------------------------------------------- monitors

    def monitor_clips(self) -> torch.Tensor:
        """A fixed batch for RankMe: the first items, drawn with fixed seeds (so an unreadable
        file is replaced by the next readable one, as in training)."""
        count = min(self.cfg.monitor.rankme_clips, len(self.dataset))
        draws = [Draw(i, mix_seed(self.cfg.seed, MONITOR, i)) for i in range(count)]
        return torch.stack([self.dataset[d]["clip"] for d in draws]).to(self.device)

    @torch.no_grad()
    def target_rankme(self, clips: torch.Tensor) -> float:
        with autocast(self.device, self.cfg.precision):
            features = self.target_encoder(normalize_clip(clips)).float()
        tokens = features.reshape(-1, features.shape[-1])
        stride = max(1, math.ceil(tokens.shape[0] / RANKME_MAX_TOKENS))
        return rankme(tokens[::stride])

    def check_bad_data(self, bad_draws: int, draws: int, skipped_now: list[str]) -> None:
        """Stops the run when more than data.max_bad_fraction of the draws so far hit an
        unreadable item. A draw that passes several broken items in a row counts once: the
        fraction estimates the share of broken items in the data."""
        counts = torch.tensor([bad_draws, draws - bad_draws], dtype=torch.float64)
        counts = distributed.mean_across(counts, self.dist) * self.dist.world_size
        # Sums through a mean: 3 ranks x 1/3 may come back as 0.999..., which int() would cut.
        self.data_counts["skipped"] += round(counts[0].item())
        self.data_counts["delivered"] += round(counts[1].item())
        drawn = self.data_counts["skipped"] + self.data_counts["delivered"]
        fraction = self.data_counts["skipped"] / max(1, drawn)
        limit = self.cfg.data.max_bad_fraction
        if drawn >= MIN_DRAWS_FOR_BAD_FRACTION and fraction > limit:
            examples = "; ".join(skipped_now[:3]) or "see the warnings above"
            raise BadDataError(
                f"{self.data_counts['skipped']} of {drawn} items drawn so far could not be read "
                f"({fraction:.0%} > data.max_bad_fraction={limit:.0%}). Recent: {examples}. "
                "Remove or re-encode the broken files, or raise data.max_bad_fraction."
            )

    # ----------------------------------------------------------------------------- the loop

    def fetch(self, batches) -> tuple[list[Batch], float]:
        start = time.perf_counter()
        micro = [next(batches).to(self.device) for _ in range(self.plan.accum_steps)]
        return micro, time.perf_counter() - start

    def run(self) -> RunResult:
        cfg = self.cfg
        self.prepare_run_dir()
        if self.start_step >= cfg.steps:
            log.warning("%s already finished %d steps; nothing to do", self.run_dir, cfg.steps)
            return RunResult(self.run_dir, self.start_step, float("nan"), stopped_early=False)
        monitor_clips = self.monitor_clips() if self.dist.is_main else None
        batches = iter(
            make_loader(
                StepBatches(self.dataset, self.plan, self.masker, self.clip_shape),
                self.start_step,
                cfg.steps,
                cfg.data.num_workers,
                self.device.type == "cuda",
            )
        )
        # Only rank 0 draws a bar.
        quiet = not self.dist.is_main
        bar = progress_bar(f"train {self.run_dir.name}", cfg.steps, self.start_step, quiet)
        started = time.perf_counter()

        def check_and_log(outcome: StepOutcome, saving: bool) -> None:
            if saving or outcome.record is not None:
                self.check_finite(outcome.steps_done)  # never log or save non-finite weights,
                self.check_not_diverged(outcome.steps_done)  # nor weights that ran away
            if self.dist.is_main and outcome.record is not None:
                self.log_step(outcome, monitor_clips, time.perf_counter() - started, bar)

        self.model.train()
        # The signal is read at the start of each step; train_step agrees on it across ranks.
        end, stopped = run_steps(
            self,
            bar,
            lambda step, stop: self.train_step(step, batches, stop.requested),
            log,
            before_save=check_and_log,
        )
        return RunResult(self.run_dir, end.steps_done, end.loss, stopped_early=stopped)

    def is_probe_step(self, steps_done: int) -> bool:
        # Step 1 too, as the yardstick and RankMe: one optimiser step in, the untrained
        # reference the curves are read against.
        every = self.cfg.monitor.online_probe_every
        return bool(every) and (steps_done % every == 0 or steps_done in (1, self.cfg.steps))

    def is_physics_step(self, steps_done: int) -> bool:
        every = self.cfg.monitor.physics_every
        return bool(every) and (steps_done % every == 0 or steps_done in (1, self.cfg.steps))

    def is_rankme_step(self, steps_done: int) -> bool:
        every = self.cfg.monitor.rankme_every
        return bool(every) and (steps_done % every == 0 or steps_done == 1)

    def is_log_step(self, steps_done: int) -> bool:
        # The periodic monitors ride on a logged record, so their steps are logged too.
        every = self.cfg.monitor.log_every
        return (
            self.is_probe_step(steps_done)
            or self.is_physics_step(steps_done)
            or self.is_rankme_step(steps_done)
            or steps_done % every == 0
            or steps_done in (1, self.cfg.steps)
        )

    def train_step(self, step: int, batches, stop_requested: bool) -> StepOutcome:
        """Fetch, forward/backward over the micro-batches, optimiser step, EMA update."""
        steps_done = step + 1
        micro_batches, data_s = self.fetch(batches)
        compute_start = time.perf_counter()
        lr, wd, ema = (
            self.schedules.lr(step),
            self.schedules.weight_decay(step),
            self.schedules.ema(step),
        )
        set_schedule(self.optimizer, lr, wd)
        logging_now = self.is_log_step(steps_done)
        stats = forward_backward(self.step_setup, micro_batches, with_monitors=logging_now)
        # One all-reduce carries the loss and the stop request, so all ranks agree on both.
        stop_flag = torch.tensor(float(stop_requested), device=self.device)
        shared = distributed.mean_across(torch.stack([stats.loss.float(), stop_flag]), self.dist)
        loss, stop_votes = shared[0].item(), shared[1].item()
        if not math.isfinite(loss):
            self.optimizer.zero_grad(set_to_none=True)
            problem = f"loss became {loss} at step {steps_done}; nothing of this step was saved"
            raise NonFiniteLossError(self.non_finite_message(problem, steps_done))
        grad_norm = self.optimizer_step()
        ema_update(self.target_encoder, self.encoder, ema)
        step_s = time.perf_counter() - compute_start
        self.check_bad_data(
            sum(b.bad_draws for b in micro_batches),
            sum(b.clips.shape[0] for b in micro_batches),
            [m for b in micro_batches for m in b.skipped],
        )
        record = None
        if logging_now:
            record = {
                "step": steps_done,
                "loss": loss,
                "loss_sets": stats.set_losses,
                "lr": lr,
                "wd": wd,
                "ema": ema,
                "grad_norm": grad_norm,
                "pred_std": stats.pred_std,
                "target_std": stats.target_std,
                "mask_ratio": stats.mask_ratio,
                "padding": stats.padding,
                **({"sigreg": stats.sigreg} if self.cfg.sigreg.weight > 0 else {}),
                **(
                    {"context_loss": stats.context_loss} if self.cfg.context_loss.weight > 0 else {}
                ),
                "skipped": self.data_counts["skipped"],
                "data_s": data_s,
                "step_s": step_s,
                "clips_per_s": self.cfg.data.batch_size / max(1e-9, data_s + step_s),
            }
        return StepOutcome(steps_done, loss, stop_votes > 0, record)

    def log_step(self, outcome: StepOutcome, monitor_clips, elapsed_s: float, bar) -> None:
        """Adds the periodic monitors (RankMe, online probe) and appends the metrics record."""
        record = {**outcome.record, "elapsed_s": elapsed_s}
        if self.is_rankme_step(outcome.steps_done):
            record["rankme"] = self.target_rankme(monitor_clips)
        if self.online_probe is not None and self.is_probe_step(outcome.steps_done):
            record.update(self.online_probe.measure(self.target_encoder))
        if self.physics_monitor is not None and self.is_physics_step(outcome.steps_done):
            record.update(
                self.physics_monitor.measure(
                    self.encoder, self.predictor, self.target_encoder, outcome.steps_done
                )
            )
        self.metrics.write(record)
        bar.set_postfix(
            loss=f"{outcome.loss:.4f}", clips_s=f"{record['clips_per_s']:.0f}", refresh=False
        )

    def optimizer_step(self) -> float:
        return clipped_step(self.optimizer, self.cfg.optim.clip_grad, self.scaler)

    def disk_full_message(self, steps_done: int) -> str:
        where = f"the checkpoint of step {steps_done} in {self.ckpt_dir}"
        if self.last_saved_step is None:
            return (
                f"disk full while writing {where}; no earlier checkpoint exists. Free space and "
                "start the run again."
            )
        return (
            f"disk full while writing {where}; the previous checkpoint (step "
            f"{self.last_saved_step}) is intact. Free space (or move the run folder to a disk "
            "with room and pass its new out=) and resume with resume=true."
        )

    def non_finite_message(self, problem: str, steps_done: int) -> str:
        """`problem`, then where the last sound checkpoint is (every save checks) and what to
        try next."""
        if self.resumed_step is not None and steps_done == self.resumed_step + 1:
            # At once after a resume: the checkpoint itself is the trouble, whatever the settings.
            return self.diverged_checkpoint_message(
                f"{problem}. This was the first step after the checkpoint of step "
                f"{self.resumed_step} this run resumed from: its weights have already diverged "
                f"({self.describe_scale(self.resumed_scale)})"
            )
        if self.last_saved_step is None:
            return (
                f"{problem}. The run stopped before any checkpoint was written, so there is "
                f"nothing to resume: start it again with {NON_FINITE_ADVICE}."
            )
        return (
            f"{problem}. The run stopped; the last good checkpoint (step "
            f"{self.last_saved_step}) is intact in {self.ckpt_dir}, with finite weights within "
            f"{DIVERGED_FACTOR:g}x their initial scale. Continue from it with resume=true and "
            f"{NON_FINITE_ADVICE}."
        )

    def diverged_checkpoint_message(self, problem: str) -> str:
        """`problem` (the resumed checkpoint has diverged), then the way out: the newest sound
        kept copy before it, or a new run."""
        earlier = self.sound_kept_copy(before=self.resumed_step)
        if earlier is None:
            return (
                f"{problem}. Resuming from it cannot help, and no earlier kept copy "
                f"(checkpoints/step_N.pt, see keep_every) is sound: start a new run (another "
                f"out=) with {NON_FINITE_ADVICE}."
            )
        path, step = earlier
        return (
            f"{problem}. Resuming from it cannot help. Go back to the kept copy {path.name} "
            f"(step {step}), whose weights are sound: copy it over {self.ckpt_dir / LATEST} and "
            f"resume with resume=true and {NON_FINITE_ADVICE}; or start a new run (another "
            "out=)."
        )

    def sound_kept_copy(self, before: int) -> tuple[Path, int] | None:
        """The newest kept `step_N.pt` before step `before` that loads and holds finite weights
        within DIVERGED_FACTOR x their initial scale: (path, step), or None."""
        names = {
            "encoder": [k for k, _ in self.encoder.named_parameters()],
            "predictor": [k for k, _ in self.predictor.named_parameters()],
        }
        for path in kept_checkpoints(self.ckpt_dir):
            try:
                state = load_checkpoint(path, map_location="cpu")
            except CheckpointError:
                continue
            if state["step"] >= before:
                continue
            weights = {k: [state[k][n] for n in names[k]] for k in names}
            scale = {k: max_abs(v) for k, v in weights.items()}
            if not non_finite_tensors(weights) and not self.runaway(scale):
                return path, state["step"]
        return None


NON_FINITE_ADVICE = (
    "a lower optim.lr, a longer optim.warmup_steps or precision=bf16 instead of fp16 "
    "(these may change on resume), or check the data for broken clips"
)


def train(cfg: Config) -> RunResult:
    trainer = Trainer(cfg)
    try:
        # The main process writes the run folder; it keeps every other process out of it.
        with RunLock(trainer.run_dir) if trainer.dist.is_main else contextlib.nullcontext():
            return trainer.run()
    finally:
        distributed.teardown()


def run_summary(result: RunResult) -> str:
    return json.dumps(
        {
            "run_dir": str(result.run_dir),
            "steps_done": result.steps_done,
            "final_loss": result.final_loss,
            "stopped_early": result.stopped_early,
        }
    )
