"""V-JEPA 2.1's 3-D RoPE: what differs from V-JEPA 2's (rope.py), which its weights depend on.

Read from facebookresearch/vjepa2, app/vjepa_2_1/models/utils/modules.py (`RoPEAttention`,
`rotate_queries_or_keys`) and src/hub/backbones.py:

- Head split, position order and frequencies f_k = 10000 ** (-k / (d / 2)) are V-JEPA 2's.
- Pairs: one frequency per channel pair (channels 2m and 2m + 1 both turn by position * f_m),
  the textbook rotation; V-JEPA 2 tiled the frequency vector instead. This is rope.py's
  `layout="pairs"`; `positions: rope_v21` selects it in the encoder and the predictor.
- Rescaled positions (`interpolate_rope`): height and width indices are mapped onto the grid the
  model was pre-trained at, h' = h * (G - 1) / (H - 1) with G = 16 for 16 px patches (256 px)
  and 18 for 14 px patches (252 px), and H the clip's rows (W, columns, for w). Time is not
  rescaled. The released encoders use it (`interpolate_rope=True` in the torch.hub builder); the
  hub builds their predictors without it, so the predictor's option is separate.
- Precision: the released code computes h' in float32 as `(h * (G - 1)) / (H - 1)`; so does
  `rescaled_positions`, so the angles equal the original's in float32.
"""

from __future__ import annotations

import torch

# Pre-training grid (patches per side) by patch size, as the released RoPEAttention sets it.
REFERENCE_GRIDS = {16: 256 // 16, 14: 252 // 14}


def reference_grid(patch_size: int) -> int:
    """The grid V-JEPA 2.1 rescales positions onto, for its patch sizes; else an error."""
    if patch_size not in REFERENCE_GRIDS:
        known = ", ".join(f"{p} px: {g}" for p, g in REFERENCE_GRIDS.items())
        raise ValueError(
            f"V-JEPA 2.1 rescales RoPE positions only for its patch sizes ({known}); patch "
            f"size {patch_size} has no reference grid: set model.rope_reference_grid yourself"
        )
    return REFERENCE_GRIDS[patch_size]


def rescaled_positions(
    positions: torch.Tensor, grid: tuple[int, int, int], reference: int
) -> torch.Tensor:
    """Integer (t, h, w) positions [..., 3] on `grid` -> float32 positions with h and w mapped
    onto a `reference` x `reference` grid (first and last row and column kept in place)."""
    _, rows, cols = grid
    if rows < 2 or cols < 2:
        raise ValueError(
            f"rescaled RoPE positions need at least 2 rows and 2 columns of tokens (the "
            f"released formula divides by rows - 1); this clip has {rows} x {cols}: use a "
            "larger clip, or model.rope_reference_grid=null"
        )
    t, h, w = positions.float().unbind(-1)
    h = h * (reference - 1) / (rows - 1)
    w = w * (reference - 1) / (cols - 1)
    return torch.stack([t, h, w], dim=-1)
