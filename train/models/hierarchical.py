"""Hierarchical encoder outputs, as V-JEPA 2.1 has them.

Read from facebookresearch/vjepa2, app/vjepa_2_1/models/vision_transformer.py and predictor.py:

- The encoder has no single final `norm`: four LayerNorms `norms_block.0..3` follow the blocks at
  fixed depths (RELEASED_LEVEL_DEPTHS). Its inference output, what torch.hub returns and what
  this project takes as the features, is the last level: `norms_block.3` after the last block.
- Training concatenates the levels along the channels ([B, N, 4 x width]); the predictor of the
  4-level models (ViT-g, ViT-G) reads that through an MLP `predictor_embed.{0,2}` and predicts
  all four, each target level layer-normed without affine parameters (`level_targets`). The
  distilled ViT-B / ViT-L predictors read the last level only.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Block indices after which each level is taken, for the released depths (4 levels).
RELEASED_LEVEL_DEPTHS = {
    12: (2, 5, 8, 11),
    24: (5, 11, 17, 23),
    40: (9, 19, 29, 39),
    48: (11, 23, 37, 47),
}


def level_depths(depth: int, levels: int) -> tuple[int, ...]:
    """Block indices of the levels: the released table, else evenly spread ending at the last
    block (which matches the table at depths 12, 24 and 40)."""
    if levels == 4 and depth in RELEASED_LEVEL_DEPTHS:
        return RELEASED_LEVEL_DEPTHS[depth]
    if not 1 <= levels <= depth:
        raise ValueError(
            f"{levels} hierarchical levels need between 1 and {depth} (the depth) blocks; set "
            "model.hierarchical_levels accordingly (0: one final norm)"
        )
    return tuple(depth * (i + 1) // levels - 1 for i in range(levels))


def level_targets(features: torch.Tensor, levels: int) -> torch.Tensor:
    """Concatenated levels [B, N, levels x width] -> each level layer-normed without affine
    parameters (float32), as V-JEPA 2.1 normalises its targets."""
    chunks = features.float().chunk(levels, dim=-1)
    return torch.cat([F.layer_norm(c, (c.shape[-1],)) for c in chunks], dim=-1)
