"""The step loop both runs share: the training loop (train/loop.py) and the decoder's fit
(decoder/fit.py). Each writes its own step; this owns what surrounds it: SIGTERM/SIGINT, the
progress bar, the checkpoint cadence, and on a stop request the save, the warning and the
early return."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tqdm.auto import tqdm

from train.runtime import StopSignal, checkpoint_due, warn_stopped


@dataclass
class StepEnd:
    """What a step tells the loop."""

    steps_done: int
    loss: float
    stop_requested: bool  # save now, warn and return: the step decides (see run_steps)


class SteppedRun(Protocol):
    """What run_steps reads of a run (Trainer, DecoderTrainer)."""

    cfg: Any  # its steps and checkpoint_every
    start_step: int  # the steps of the checkpoint it resumed from, else 0
    ckpt_dir: Path

    def save(self, steps_done: int, loss: float) -> None: ...


End = TypeVar("End", bound=StepEnd)


def run_steps(
    run: SteppedRun,
    bar: tqdm,
    one_step: Callable[[int, StopSignal], End],
    log: logging.Logger,
    before_save: Callable[[End, bool], None] | None = None,
) -> tuple[End, bool]:
    """Runs `one_step(step, stop)` for step = run.start_step .. run.cfg.steps - 1 (at least
    one), then `before_save(end, saving)` (what must come before the bar moves and the
    checkpoint is written, knowing whether it will be), then `run.save` when checkpoint_due says
    so. A signal only sets `stop.requested`: the step reads it when it suits it and answers with
    `end.stop_requested`, after which the loop saves, warns and returns. Returns the last step's
    StepEnd and whether the run stopped early; the bar is closed either way."""
    steps = run.cfg.steps
    with StopSignal() as stop, bar:
        for step in range(run.start_step, steps):
            end = one_step(step, stop)
            saving = checkpoint_due(
                end.steps_done, run.cfg.checkpoint_every, steps, end.stop_requested
            )
            if before_save is not None:
                before_save(end, saving)
            bar.update(1)
            if saving:
                run.save(end.steps_done, end.loss)
            if end.stop_requested:
                bar.close()  # the warning goes below the bar, not into its line
                warn_stopped(log, end.steps_done, run.ckpt_dir)
                return end, True
    return end, False
