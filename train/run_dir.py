"""A run directory (config.yaml, metrics.jsonl, checkpoints/): how a training or a decoder fit
starts in it or continues from its latest checkpoint, the same way for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from train.checkpoint import LATEST
from train.config import ConfigError, dump_config
from train.monitor import MetricsLog


def checkpoint_to_resume(run_dir: Path, resume: bool, kind: str = "run") -> Path | None:
    """The latest checkpoint when the run continues, None when it starts from step 0.

    A directory that already holds a checkpoint is never overwritten by a fresh start: the
    user says resume=true or picks another out=.
    """
    latest = run_dir / "checkpoints" / LATEST
    if not latest.exists():
        return None
    if not resume:
        raise ConfigError(
            f"{run_dir} already holds a {kind} (checkpoints/{LATEST}); pass resume=true to "
            f"continue it, or choose another out= for a new {kind}"
        )
    return latest


def write_run_files(cfg: Any, run_dir: Path, metrics: MetricsLog, start_step: int) -> None:
    """checkpoints/ and config.yaml in place; metrics.jsonl cleared for a fresh start, or cut
    back to the checkpoint's step on resume (lines a killed run wrote after it)."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    if start_step == 0:
        metrics.path.unlink(missing_ok=True)
    else:
        metrics.truncate_after(start_step)
