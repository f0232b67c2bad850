"""Checkpoints: one file holding encoder, predictor, target encoder, optimizer, step, config and
RNG states, written atomically (temporary file, fsync, rename) so a kill at any moment leaves
the previous checkpoint intact.

Layout of a run directory's `checkpoints/`: `latest.pt` always; `step_0005000.pt` every
`keep_every` steps when asked. Loading uses `weights_only=True`: a file holding pickled code is
refused instead of executed.
"""

from __future__ import annotations

import os
import pickle
import random
import shutil
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

LATEST = "latest.pt"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    pass


def atomic_save(obj: Any, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain Python values, so `weights_only=True` can load them."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, python_state, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },
        "python": {"version": version, "state": list(python_state), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def non_finite_tensors(tree: Any, prefix: str = "") -> list[str]:
    """Dotted names of the floating-point tensors in `tree` (nested dicts, lists) holding NaN
    or infinity: what must never be saved as a checkpoint to resume from."""
    if isinstance(tree, torch.Tensor):
        bad = tree.is_floating_point() and not bool(torch.isfinite(tree).all())
        return [prefix.rstrip(".")] if bad else []
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return []
    return [name for key, value in items for name in non_finite_tensors(value, f"{prefix}{key}.")]


def atomic_copy(source: Path, path: Path) -> None:
    """A real, independent copy of `source` at `path` (never a hard link: damage to one file
    must not reach the other), written like `atomic_save`."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(source, tmp)
        with tmp.open("rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def save_checkpoint(folder: str | Path, state: dict[str, Any], keep_copy: bool) -> Path:
    """Write `latest.pt`; with `keep_copy`, also `step_NNNNNNN.pt`, a copy of its own."""
    folder = Path(folder)
    latest = folder / LATEST
    atomic_save({"format_version": FORMAT_VERSION, **state}, latest)
    if keep_copy:
        atomic_copy(latest, folder / f"step_{state['step']:07d}.pt")
    return latest


def kept_checkpoints(folder: str | Path) -> list[Path]:
    """The kept `step_NNNNNNN.pt` copies in `folder`, newest step first."""
    return sorted(Path(folder).glob("step_*.pt"), reverse=True)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """The checkpoint's dict, tensors only (weights_only). `mmap`: tensors stay in the file's
    pages until read (train.streamed_weights), for a file in torch's zip format."""
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LATEST
        path = candidate if candidate.exists() else path / LATEST
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        # PyTorch's own message advises weights_only=False, which would run whatever code the
        # file holds: it is not repeated here.
        if "Weights only load failed" in str(err):
            reason = (
                "it holds pickled code or objects other than tensors and plain values, which "
                "this project refuses to load"
            )
        else:
            first_line = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            reason = f"it is truncated or damaged ({first_line})"
        raise CheckpointError(f"cannot load checkpoint {path}: {reason}") from None
