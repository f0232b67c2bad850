"""A run directory (config.yaml, metrics.jsonl, checkpoints/): how a training or a decoder fit
starts in it or continues from its latest checkpoint, the same way for both, and the lock that
keeps a second process out of it while it runs."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from train.checkpoint import LATEST, CheckpointError, kept_checkpoints, load_checkpoint
from train.config import ConfigError, dump_config
from train.monitor import MetricsLog

LOCK_NAME = ".lock"


# Descriptors of the run locks this process holds. A forked child (a DataLoader worker) closes
# its copies at once: a flock lives until the last descriptor of it closes, so a worker that
# outlives its killed parent for a moment would otherwise keep the run locked against a resume.
_HELD_LOCK_FDS: set[int] = set()


def _drop_inherited_locks() -> None:
    for fd in _HELD_LOCK_FDS:
        with contextlib.suppress(OSError):
            os.close(fd)
    _HELD_LOCK_FDS.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


class RunLock:
    """An exclusive OS lock (flock) on RUN/.lock, held while a process writes the run.

    A second process that tries to take it is refused with a message naming the holder. The OS
    drops the lock when its process ends, however it ends: the file a killed run leaves behind
    does not block a resume.

        with RunLock(run_dir):
            ...  # start or resume, train, save
    """

    def __init__(self, run_dir: Path, kind: str = "run"):
        self.path = Path(run_dir) / LOCK_NAME
        self.kind = kind
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise ConfigError(
                f"{self.path.parent} is in use by another {self.kind} (process {holder}): wait "
                "for it to end or stop it, or choose another out="
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _HELD_LOCK_FDS.add(fd)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            _HELD_LOCK_FDS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


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


def load_for_resume(
    latest: Path, map_location: str | torch.device, warn: Callable[[str], None]
) -> dict[str, Any]:
    """The state in `latest`; when that file cannot be loaded (truncated, damaged), the newest
    kept copy (`step_N.pt`) that can, with a warning naming it. CheckpointError when none can."""
    try:
        return load_checkpoint(latest, map_location=map_location)
    except CheckpointError as err:
        problem = str(err)
    for kept in kept_checkpoints(latest.parent):
        try:
            state = load_checkpoint(kept, map_location=map_location)
        except CheckpointError:
            continue
        warn(
            f"{problem}; resuming from the newest loadable copy, {kept.name} (step "
            f"{state['step']}), instead"
        )
        return state
    raise CheckpointError(
        f"{problem}, and no kept copy (checkpoints/step_N.pt, see keep_every) loads either: "
        "this run cannot continue; start a new one with another out="
    )


def write_run_files(cfg: Any, run_dir: Path, metrics: MetricsLog, start_step: int) -> None:
    """checkpoints/ and config.yaml in place; metrics.jsonl cleared for a fresh start, or cut
    back to the checkpoint's step on resume (lines a killed run wrote after it)."""
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    if start_step == 0:
        metrics.path.unlink(missing_ok=True)
    else:
        metrics.truncate_after(start_step)
