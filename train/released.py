"""Import a released V-JEPA (1) checkpoint as a run directory of this project.

    python -m train.released vitl16.pth.tar runs/vjepa_vitl16 [--frames 16]

The released `.pth.tar` holds `encoder`, `predictor` and `target_encoder` state dicts whose keys
carry DDP and wrapper prefixes (`module.backbone.blocks.0.attn.qkv.weight`). The module names
below them are the ones this project uses, so the import strips the prefixes, infers the
geometry from tensor shapes, and loads strictly: any key left over or missing is an error that
lists it. Nothing is downloaded; the user brings the file. V-JEPA 2 checkpoints use 3-D RoPE
instead of a position table and are refused with that reason.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path

import torch

from train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from train.config import Config, MaskConfig, ModelConfig, dump_config, to_dict
from train.pretrained import Pretrained, models_from_state

PREFIXES = ("module.", "backbone.", "_orig_mod.")
# Heads are not visible in the weights; the released models use these per width.
ENCODER_HEADS = {384: 6, 768: 12, 1024: 16, 1280: 16, 1408: 22}
RELEASED_PREDICTOR_HEADS = 16  # V-JEPA 1 (V-JEPA 2 uses 12)


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    clean = {}
    for key, value in state.items():
        name = key
        while name.startswith(PREFIXES):
            name = next(name[len(p) :] for p in PREFIXES if name.startswith(p))
        clean[name] = value
    return clean


def _count_blocks(state: dict[str, torch.Tensor], prefix: str) -> int:
    indices = {int(m.group(1)) for k in state if (m := re.match(rf"{prefix}\.(\d+)\.", k))}
    return max(indices) + 1 if indices else 0


def infer_model_config(encoder: dict, predictor: dict, num_frames: int) -> ModelConfig:
    """Geometry and sizes from shapes: patch kernel [D, C, t, p, p], pos_embed [1, N, D]."""
    if "pos_embed" not in encoder:
        raise CheckpointError(
            "the encoder has no pos_embed: this looks like a V-JEPA 2 checkpoint (3-D RoPE), which "
            "this importer does not support yet"
        )
    width, in_chans, tubelet, patch, _ = encoder["patch_embed.proj.weight"].shape
    tokens = encoder["pos_embed"].shape[1]
    time_tokens = num_frames // tubelet
    side = math.isqrt(tokens // time_tokens) if time_tokens else 0
    if time_tokens * side * side != tokens:
        raise CheckpointError(
            f"pos_embed has {tokens} tokens, which is not {time_tokens} time steps (num_frames="
            f"{num_frames} / tubelet {tubelet}) of a square grid; pass the right --frames"
        )
    if width not in ENCODER_HEADS:
        raise CheckpointError(f"unknown encoder width {width}; known: {sorted(ENCODER_HEADS)}")
    return ModelConfig(
        size="vit_l",
        embed_dim=width,
        depth=_count_blocks(encoder, "blocks"),
        num_heads=ENCODER_HEADS[width],
        pred_embed_dim=predictor["predictor_embed.weight"].shape[0],
        pred_depth=_count_blocks(predictor, "predictor_blocks"),
        pred_num_heads=RELEASED_PREDICTOR_HEADS,
        mlp_ratio=encoder["blocks.0.mlp.fc1.weight"].shape[0] / width,
        num_frames=num_frames,
        img_size=side * patch,
        patch_size=patch,
        tubelet_size=tubelet,
        in_chans=in_chans,
    )


def import_released(path: str | Path, num_frames: int = 16) -> Pretrained:
    raw = load_checkpoint(path)
    missing = [k for k in ("encoder", "predictor", "target_encoder") if k not in raw]
    if missing:
        raise CheckpointError(f"{path} is not a V-JEPA checkpoint: no {', '.join(missing)}")
    states = {k: strip_prefixes(raw[k]) for k in ("encoder", "predictor", "target_encoder")}
    model = infer_model_config(states["encoder"], states["predictor"], num_frames)
    num_mask_tokens = sum(1 for k in states["predictor"] if k.startswith("mask_tokens."))
    if num_mask_tokens != 2:
        raise CheckpointError(f"expected 2 mask tokens (multi-block), found {num_mask_tokens}")
    cfg = Config(model=model, mask=MaskConfig(), steps=max(1, int(raw.get("epoch", 1))))
    return models_from_state({**states, "config": to_dict(cfg), "step": 0}, cfg)


def write_run(pretrained: Pretrained, run_dir: str | Path) -> Path:
    """A run directory other tools (eval, decoder, workbench) open like one of ours."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg = pretrained.config
    cfg.out = str(run_dir)
    dump_config(cfg, run_dir / "config.yaml")
    state = {
        "encoder": pretrained.encoder.state_dict(),
        "predictor": pretrained.predictor.state_dict(),
        "target_encoder": pretrained.target_encoder.state_dict(),
        "step": pretrained.step,
        "config": to_dict(cfg),
        "imported": True,
    }
    return save_checkpoint(run_dir / "checkpoints", state, keep_copy=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="released V-JEPA .pth.tar")
    parser.add_argument("run_dir", help="where to write the run directory")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip it was trained on")
    args = parser.parse_args(argv)
    try:
        pretrained = import_released(args.checkpoint, args.frames)
        written = write_run(pretrained, args.run_dir)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    m = pretrained.config.model
    print(f"imported ViT {m.embed_dim}x{m.depth} ({m.num_frames}x{m.img_size}px) -> {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
