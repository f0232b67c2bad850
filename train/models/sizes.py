"""Named model sizes: (width, depth, heads) of encoder and predictor."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Size:
    embed_dim: int
    depth: int
    num_heads: int
    pred_embed_dim: int
    pred_depth: int
    pred_num_heads: int


# ViT-L/H and the 384 x 12 predictor are the paper's; tiny is this project's CPU teaching model.
SIZES: dict[str, Size] = {
    "tiny": Size(128, 4, 2, 96, 4, 3),
    "vit_s": Size(384, 12, 6, 384, 12, 12),
    "vit_b": Size(768, 12, 12, 384, 12, 12),
    "vit_l": Size(1024, 24, 16, 384, 12, 12),
    "vit_h": Size(1280, 32, 16, 384, 12, 12),
}
