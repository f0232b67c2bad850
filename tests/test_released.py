"""Importing released V-JEPA checkpoints: prefixes stripped, sizes inferred, strict loading."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from train.checkpoint import CheckpointError, atomic_save
from train.config import ModelConfig
from train.models import build_encoder, build_predictor
from train.pretrained import load_pretrained
from train.released import import_released, main, write_run

# A released-style model small enough for a test: ViT-S width (6 heads), 2 blocks.
SMALL = ModelConfig(
    size="vit_s",
    depth=2,
    pred_embed_dim=64,
    pred_depth=1,
    pred_num_heads=16,
    num_frames=4,
    img_size=32,
    patch_size=16,
    tubelet_size=2,
    positions="sincos_uniform",
)


def released_style_checkpoint(path, drop: str | None = None, extra: str | None = None):
    torch.manual_seed(0)
    encoder = build_encoder(SMALL)
    predictor = build_predictor(SMALL, encoder.grid_size, 2, None)
    prefix = lambda sd: {f"module.backbone.{k}": v for k, v in sd.items()}
    enc_sd = prefix(encoder.state_dict())
    if drop:
        enc_sd.pop(f"module.backbone.{drop}")
    if extra:
        enc_sd[f"module.backbone.{extra}"] = torch.zeros(1)
    atomic_save(
        {
            "encoder": enc_sd,
            "predictor": prefix(predictor.state_dict()),
            "target_encoder": prefix(encoder.state_dict()),
            "epoch": 300,
            "opt": {},
            "batch_size": 24,
        },
        path,
    )
    return encoder, predictor


def test_import_recovers_the_model_exactly(tmp_path):
    encoder, predictor = released_style_checkpoint(tmp_path / "vjepa.pth.tar")
    imported = import_released(tmp_path / "vjepa.pth.tar", num_frames=4).eval()
    m = imported.config.model
    assert (m.embed_dim, m.depth, m.num_heads, m.img_size, m.patch_size) == (384, 2, 6, 32, 16)
    assert (m.pred_embed_dim, m.pred_depth) == (64, 1)
    clips = torch.randn(2, 3, 4, 32, 32)
    assert torch.equal(imported.encoder(clips), encoder.eval()(clips))
    for key, value in predictor.state_dict().items():
        assert torch.equal(imported.predictor.state_dict()[key], value)


def test_imported_run_opens_like_our_own(tmp_path):
    released_style_checkpoint(tmp_path / "vjepa.pth.tar")
    assert main([str(tmp_path / "vjepa.pth.tar"), str(tmp_path / "run"), "--frames", "4"]) == 0
    reloaded = load_pretrained(tmp_path / "run")
    assert reloaded.config.model.embed_dim == 384
    assert (tmp_path / "run" / "config.yaml").exists()


def test_missing_or_unexpected_keys_are_listed(tmp_path):
    released_style_checkpoint(tmp_path / "a.pth.tar", drop="blocks.1.mlp.fc2.bias")
    with pytest.raises(CheckpointError, match=r"missing \(1\): blocks.1.mlp.fc2.bias"):
        import_released(tmp_path / "a.pth.tar", num_frames=4)
    released_style_checkpoint(tmp_path / "b.pth.tar", extra="head.weight")
    with pytest.raises(CheckpointError, match=r"unexpected \(1\): head.weight"):
        import_released(tmp_path / "b.pth.tar", num_frames=4)


def test_sincos_split_is_read_from_the_table_and_wrong_frames_are_refused(tmp_path):
    released_style_checkpoint(tmp_path / "u.pth.tar")  # V-JEPA 1's uniform split
    imported = import_released(tmp_path / "u.pth.tar", num_frames=4)
    assert imported.config.model.positions == "sincos_uniform"
    # A table with this project's first split (1/2, 1/4, 1/4) is recognised as such.
    encoder = build_encoder(replace(SMALL, positions="sincos"))
    predictor = build_predictor(replace(SMALL, positions="sincos"), encoder.grid_size, 2, None)
    prefix = lambda sd: {f"module.backbone.{k}": v for k, v in sd.items()}
    atomic_save(
        {
            "encoder": prefix(encoder.state_dict()),
            "predictor": prefix(predictor.state_dict()),
            "target_encoder": prefix(encoder.state_dict()),
        },
        tmp_path / "s.pth.tar",
    )
    assert import_released(tmp_path / "s.pth.tar", num_frames=4).config.model.positions == "sincos"
    released_style_checkpoint(tmp_path / "v1.pth.tar")
    with pytest.raises(CheckpointError, match="pass the right --frames"):
        import_released(tmp_path / "v1.pth.tar", num_frames=6)


def test_write_run_keeps_weights(tmp_path):
    released_style_checkpoint(tmp_path / "v.pth.tar")
    imported = import_released(tmp_path / "v.pth.tar", num_frames=4)
    write_run(imported, tmp_path / "r")
    again = load_pretrained(tmp_path / "r")
    assert torch.equal(again.encoder.pos_embed, imported.encoder.pos_embed)
