"""Sin-cos position tables: the two channel splits, which configs use which, and rebuilding the
table for other clip sizes with the split the model was built with."""

from __future__ import annotations

import math

import pytest
import torch
import yaml

from train.config import Config, ModelConfig, from_dict, resolve_preset
from train.models import build_encoder
from train.models.positions import sincos_3d


def slow_table(dim: int, grid: tuple[int, int, int], widths: tuple[int, int, int]) -> torch.Tensor:
    """Row by row: per axis, sin of position * 10000^(-k / (d/2)) for k < d/2, then the cos;
    axes concatenated as (time, height, width), cut to dim."""
    rows = []
    for t in range(grid[0]):
        for h in range(grid[1]):
            for w in range(grid[2]):
                row = []
                for position, d in zip((t, h, w), widths):
                    angles = [position * 10000 ** (-k / (d / 2)) for k in range(d // 2)]
                    row += [math.sin(a) for a in angles] + [math.cos(a) for a in angles]
                rows.append(row[:dim])
    return torch.tensor(rows, dtype=torch.float32)


@pytest.mark.parametrize("dim", [48, 40, 96])
def test_uniform_split_gives_equal_even_thirds_cut_to_the_width(dim):
    third = 2 * math.ceil(dim / 6)  # 48 -> 16 (exact), 40 -> 14 (42, cut to 40), 96 -> 32
    expected = slow_table(dim, (2, 3, 4), (third, third, third))
    assert torch.allclose(sincos_3d(dim, (2, 3, 4), uniform=True), expected, atol=1e-6)


def test_default_split_is_half_time_quarter_height_quarter_width():
    expected = slow_table(32, (2, 3, 4), (16, 8, 8))
    assert torch.allclose(sincos_3d(32, (2, 3, 4)), expected, atol=1e-6)


def test_a_config_without_the_key_keeps_the_first_split():
    old = from_dict(Config, {"model": {"size": "tiny", "num_frames": 8, "img_size": 64}})
    assert old.model.positions == "sincos"
    assert ModelConfig().positions == "sincos"
    assert preset_model("tiny_cpu").positions == "sincos"
    for preset in ("vitl16", "vits16"):  # the paper's presets: V-JEPA 1's uniform split
        assert preset_model(preset).positions == "sincos_uniform"
    assert preset_model("vitl16_v2").positions == "rope"


def preset_model(name: str) -> ModelConfig:
    """A preset's model section, without the data checks a training run needs."""
    return from_dict(Config, yaml.safe_load(resolve_preset(name).read_text())).model


def test_other_clip_sizes_rebuild_the_table_with_the_models_split():
    cfg = ModelConfig(
        size="tiny",
        embed_dim=48,
        num_frames=4,
        img_size=32,
        patch_size=8,
        tubelet_size=2,
        positions="sincos_uniform",
    )
    encoder = build_encoder(cfg).eval()
    assert torch.equal(encoder.pos_embed[0], sincos_3d(48, (2, 4, 4), uniform=True))
    clip = torch.zeros(1, 3, 8, 48, 48)
    tokens = encoder.patch_embed(clip)
    assert torch.equal(encoder.embed(clip) - tokens, sincos_3d(48, (4, 6, 6), uniform=True)[None])
