"""What a run needs around its loop, shared by the training loop (train/loop.py), the decoder's
fit (decoder/fit.py) and the evaluations: the errors that end a run, the device, the stop signal,
the memory check, the resume check, the progress bar and the checkpoint cadence."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from train.config import ConfigError, from_dict, to_dict

# Keys a resumed run may change freely: they do not change what is computed. `out` is where
# the run is now: a moved folder, a relative path or a trailing `/` is the same run.
FREE_CHANGES = {
    "out",
    "resume",
    "compile",
    "device",
    "data.num_workers",
    "checkpoint_every",
    "keep_every",
    "monitor.log_every",
    "monitor.rankme_every",
    "monitor.online_probe_every",
    "monitor.online_probe_clips",
    "monitor.physics_every",
    "monitor.physics_pairs_per_law",
}
# Keys a resumed run may change to recover from a fault (a NaN, bad data), with a warning.
RECOVERY_PREFIXES = ("optim.", "precision", "data.max_bad_fraction")


class TrainingError(RuntimeError):
    """The run cannot go on; the message says why and what to do."""


class NonFiniteLossError(TrainingError):
    """A non-finite loss, or weights or optimizer state that became non-finite (never saved)."""


class BadDataError(TrainingError):
    """More of the data could not be read than data.max_bad_fraction allows."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device=cuda but no CUDA device is available; use device=cpu or auto")
    return torch.device(name)


class StopSignal:
    """SIGTERM/SIGINT ask the loop to finish its step, save and exit, instead of dying mid-write."""

    def __init__(self):
        self.requested = False
        self.previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. called from a notebook worker)
                break
        return self

    def _handle(self, signum, frame):
        self.requested = True

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def progress_bar(desc: str, total: int, initial: int, quiet: bool = False) -> tqdm:
    # `quiet` hides the bar (the other ranks of a distributed run); otherwise tqdm's own
    # default (and TQDM_DISABLE) decides.
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        dynamic_ncols=True,
        file=sys.stderr,
        **({"disable": True} if quiet else {}),
    )


def checkpoint_due(steps_done: int, every: int, total: int, stopping: bool) -> bool:
    """Save every `every` steps, after the last step, and when a stop was asked for."""
    return stopping or steps_done % every == 0 or steps_done == total


def warn_stopped(log: logging.Logger, steps_done: int, ckpt_dir: Path) -> None:
    # workbench/jobs.py reads this line to tell a stopped run from a crashed one.
    log.warning(
        "stopped by signal after step %d; checkpoint saved in %s; continue with resume=true",
        steps_done,
        ckpt_dir,
    )


def memory_bytes() -> int | None:
    """This machine's physical memory, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_batch_memory(micro_batch: int, clip_shape: tuple[int, ...]) -> None:
    """Refuse, before any data is made, a micro-batch whose clips alone (uint8 as loaded plus
    float32 as the model reads them) would not fit in this machine's memory: such a run would
    get its data workers killed, or the machine swapping, instead of a message."""
    total = memory_bytes()
    needed = micro_batch * math.prod(clip_shape) * (1 + 4)
    if total is not None and needed > total // 2:
        raise ConfigError(
            f"data.batch_size gives {micro_batch} clips per micro-batch on each process: about "
            f"{needed / 2**30:.0f} GiB for the clips alone, more than half of this machine's "
            f"{total / 2**30:.0f} GiB. Lower data.batch_size, or set data.micro_batch_size "
            "to accumulate gradients over smaller micro-batches."
        )


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            flat.update(_flatten(v, f"{prefix}{k}."))
        else:
            flat[prefix + k] = v
    return flat


def check_resumable(saved: dict, cfg, free: frozenset[str] | set[str] = FREE_CHANGES) -> list[str]:
    """Refuses a resume whose config (a dataclass) would make it another run; returns the
    recovery changes. `free` names the keys that may change silently (the decoder's fits have
    their own)."""
    # An older checkpoint lacks the keys added since it was written: they mean their defaults
    # (which keep the old behaviour), so compare the saved config with its defaults filled in.
    # A value no longer valid is compared as stored, and named if it differs.
    with contextlib.suppress(ConfigError):
        saved = to_dict(from_dict(type(cfg), saved))
    old, new = _flatten(saved), _flatten(to_dict(cfg))
    changed = sorted(
        k for k in old.keys() | new.keys() if old.get(k) != new.get(k) and k not in free
    )
    describe = lambda keys: "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys)
    refused = [k for k in changed if not k.startswith(RECOVERY_PREFIXES)]
    if refused:
        raise ConfigError(
            f"resume=true but the config differs from the checkpoint's ({describe(refused)}). "
            "Pass the same config and overrides to continue, or choose a new out= to start "
            "another run."
        )
    return [describe([k]) for k in changed]
