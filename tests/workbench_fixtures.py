"""Shared by the workbench tests: a micro model bundle (random weights, written in a second),
short test videos, and an ImageEditor value with a painted square."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import torch

from conftest import MICRO
from decoder.bundle import save_bundle
from decoder.config import DecoderConfig, DecoderModelConfig
from decoder.model import build_decoder
from train.config import load_config
from train.pretrained import build_models
from train.tokens import TokenGeometry
from workbench.video_io import write_mp4

# 4 frames x 32 px in tubelets of 2 x 8 x 8: a 2 x 4 x 4 token grid.
MICRO_FRAMES, MICRO_SIZE = 4, 32


def write_micro_bundle(path: Path, seed: int = 0) -> Path:
    """A bundle of freshly initialised micro models, with a small provenance record."""
    cfg = load_config("tiny_cpu", [*MICRO, "out=runs/unused"])
    torch.manual_seed(seed)
    pretrained = build_models(cfg)
    pretrained.step = 7
    geometry = TokenGeometry.from_model_config(cfg.model)
    decoder_config = DecoderConfig(model=DecoderModelConfig(embed_dim=32, depth=1, num_heads=2))
    decoder = build_decoder(
        decoder_config.model, pretrained.encoder.embed_dim, geometry.grid, geometry.patch_dim
    )
    provenance = {
        "command": "tests",
        "pretrain": {"checkpoint": None, "steps": 7, "loss": 0.5},
        "decoder": {"steps": 3, "final_loss": 0.25, "held_out": {"blob": {"psnr": 12.5}}},
    }
    return save_bundle(path, pretrained, decoder, decoder_config, provenance)


def micro_app_context(runs: Path):
    """An app context whose only model is a micro bundle under `runs` (no starter)."""
    from workbench.context import AppContext

    write_micro_bundle(runs / "micro" / "decoder" / "bundle.safetensors")
    return AppContext.create(runs, starter=runs / "no-starter")


def painted_editor(size: int, box: tuple[int, int, int, int]) -> dict:
    """An ImageEditor value (RGBA numpy) of a grey size x size frame with the box
    (top, left, bottom, right) painted on one layer."""
    background = np.full((size, size, 4), 128, np.uint8)
    background[..., 3] = 255
    layer = np.zeros((size, size, 4), np.uint8)
    top, left, bottom, right = box
    layer[top:bottom, left:right] = (204, 50, 50, 255)
    return {"background": background, "layers": [layer], "composite": background}


def moving_square_video(path: Path, frames: int = 12, size: int = 64, fps: int = 8) -> Path:
    """A bright square moving right on a dark background, as an H.264 mp4."""
    clip = np.full((frames, size, size, 3), 30, np.uint8)
    side = size // 4
    for t in range(frames):
        x = (t * 3) % (size - side)
        clip[t, size // 3 : size // 3 + side, x : x + side] = (240, 200, 40)
    return write_mp4(clip, path, fps)


def free_port() -> int:
    """A localhost port nothing listens on now (for an app under test)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
