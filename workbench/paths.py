"""Where the workbench keeps what it computes: caches (numba, clip features) and output files.

The cache lives in the checkout's git-ignored `.cache/` (override with WORKBENCH_CACHE), so a
second start of the app reuses compiled UMAP code and extracted clip features. Output files
(videos, GIFs) go to one temporary folder per process, removed when the process exits: Gradio
copies what it serves into its own cache.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE_DIR = Path(os.environ.get("WORKBENCH_CACHE", REPO_ROOT / ".cache"))
NUMBA_CACHE_DIR = CACHE_DIR / "numba"
FEATURE_CACHE_DIR = CACHE_DIR / "workbench"

_output_dir: Path | None = None


def output_dir() -> Path:
    """This process's folder for files handed to the browser (created on first use)."""
    global _output_dir
    if _output_dir is None:
        _output_dir = Path(tempfile.mkdtemp(prefix="vjepa-workbench-"))
        atexit.register(shutil.rmtree, _output_dir, ignore_errors=True)
    return _output_dir


def new_output_path(stem: str, suffix: str) -> Path:
    """A fresh file name in the output folder; every call gets its own, so browsers never show
    a stale cached copy of an earlier result."""
    return output_dir() / f"{stem}-{uuid.uuid4().hex[:10]}{suffix}"


def shown(path: str | os.PathLike[str]) -> str:
    """A path as the UI writes it: relative to the working folder (or the checkout) when it
    lies below it, so messages read `runs/my-run`, not the machine's absolute path."""
    path = Path(path).resolve()
    for base in (Path.cwd().resolve(), REPO_ROOT):
        if path.is_relative_to(base):
            return path.relative_to(base).as_posix() or "."
    return str(path)


def use_numba_cache() -> None:
    """Point numba's on-disk cache at the project cache; must run before numba is imported."""
    NUMBA_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(NUMBA_CACHE_DIR))
