"""Core run directories (what `python -m train` or `python -m train.released` wrote), told apart
from decoder fits, which have the same layout (config.yaml, checkpoints/latest.pt)."""

from __future__ import annotations

from pathlib import Path

import yaml

from train.checkpoint import LATEST


def is_core_run(path: Path) -> bool:
    """A directory `python -m train` wrote (not a decoder fit, which has the same layout)."""
    config = path / "config.yaml"
    if not (path / "checkpoints" / LATEST).is_file() or not config.is_file():
        return False
    try:
        data = yaml.safe_load(config.read_text()) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "mask" in data and "latents" not in data


def core_runs(runs_dir: Path) -> list[Path]:
    """Core run directories under `runs_dir` (any depth), sorted by path."""
    if not runs_dir.is_dir():
        return []
    return sorted(
        p.parent.parent
        for p in runs_dir.rglob(f"checkpoints/{LATEST}")
        if is_core_run(p.parent.parent)
    )
