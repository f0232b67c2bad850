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


def save_checkpoint(folder: str | Path, state: dict[str, Any], keep_copy: bool) -> Path:
    """Write `latest.pt`; with `keep_copy`, also `step_NNNNNNN.pt` (a hard link where possible)."""
    folder = Path(folder)
    latest = folder / LATEST
    atomic_save({"format_version": FORMAT_VERSION, **state}, latest)
    if keep_copy:
        kept = folder / f"step_{state['step']:07d}.pt"
        kept.unlink(missing_ok=True)
        try:
            os.link(latest, kept)
        except OSError:
            atomic_save(torch.load(latest, weights_only=False), kept)
    return latest


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        candidate = path / "checkpoints" / LATEST
        path = candidate if candidate.exists() else path / LATEST
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile) as err:
        raise CheckpointError(
            f"cannot load checkpoint {path}: {err}. If it came from elsewhere, it may hold pickled "
            "code, which this project refuses to execute; if it is ours, it may be truncated."
        ) from err
