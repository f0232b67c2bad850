"""Shared test set-up: one torch thread per pytest-xdist worker, and a micro training config."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
# Helper modules next to the tests (video writers, ...) import as plain modules.
sys.path.insert(0, str(Path(__file__).parent))

if os.environ.get("PYTEST_XDIST_WORKER"):
    # Two workers on two cores: one thread each instead of two fighting over each core.
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")

# A model small enough to train a few steps in about a second: 4 frames x 32 px in tubelets of
# 2 x 8 x 8 gives a 2 x 4 x 4 token grid.
MICRO = [
    "model.size=tiny",
    "model.embed_dim=32",
    "model.depth=2",
    "model.num_heads=2",
    "model.pred_embed_dim=16",
    "model.pred_depth=1",
    "model.pred_num_heads=2",
    "model.num_frames=4",
    "model.img_size=32",
    "model.patch_size=8",
    "data.batch_size=8",
    "data.num_workers=0",
    "data.synthetic.num_clips=512",
    "optim.warmup_steps=2",
    "optim.lr=1e-3",
    "monitor.log_every=1",
    "monitor.rankme_every=3",
    "monitor.rankme_clips=4",
    "precision=fp32",
]


@pytest.fixture
def micro_overrides(tmp_path):
    """Overrides for `load_config("tiny_cpu", ...)`: a micro model writing into tmp_path/run."""

    def make(*extra: str, run: str = "run") -> list[str]:
        return [*MICRO, f"out={tmp_path / run}", *extra]

    return make
