"""3-D rotary position embeddings (RoPE) on queries and keys, as V-JEPA 2 applies them.

No position table: every attention block turns each query and key by angles that depend on the
token's integer (time, height, width) position on the token grid, so any grid works and gathered
tokens (a context, a target set) keep the positions of the places they came from.

The layout of V-JEPA 2's rotation, which its released weights depend on:

- Head split: time, height and width each get `axis_width(head_dim) = 2 * ((head_dim // 3) // 2)`
  channels, in that order, at the start of every head; the remaining channels pass unrotated
  (heads of 64, ViT-L and ViT-g: 20 + 20 + 20 rotated, 4 unrotated; of 80, ViT-H: 26 * 3 and 2;
  of 32, the 384-wide 12-head predictor: 10 * 3 and 2).
- Positions: token index i on a (T, H, W) grid, t-major: t = i // (H * W),
  h = (i mod H * W) // W, w = i mod W, as integers (no rescaling to a reference grid).
- Frequencies: on an axis slice of width d, f_k = 10000 ** (-k / (d / 2)) for k < d / 2.
- Pairs: channels (2m, 2m + 1) of a slice turn together,
  out[2m] = x[2m] cos(a[2m]) - x[2m + 1] sin(a[2m]),
  out[2m + 1] = x[2m + 1] cos(a[2m + 1]) + x[2m] sin(a[2m + 1]),
  with a[j] = position * frequency of channel j.
- The quirk (`layout="vjepa2"`): channel j uses f_(j mod d/2), the frequency vector tiled twice
  rather than repeated per pair, so the two channels of a pair turn by different angles. V-JEPA 2
  keeps it because the released weights were trained with it, and so does this module. The map
  is then not a rotation, and q . k is not exactly a function of the position difference;
  `layout="pairs"` (one frequency per pair, f_m for pair m) is the textbook rotation, which has
  that property.
- Precision: angles are computed in the dtype of the queries (bf16 under autocast), as V-JEPA 2
  computes them; in fp32 the result is the same as its code's.
"""

from __future__ import annotations

from typing import Literal

import torch

from train.config import ConfigError

Layout = Literal["vjepa2", "pairs"]
ROPE_BASE = 10000


def axis_width(head_dim: int) -> int:
    """Channels of a head rotated for each of time, height and width."""
    return 2 * ((head_dim // 3) // 2)


def check_head_dim(width: int, num_heads: int) -> None:
    """A config error unless every head has channels to rotate on each of the three axes."""
    head_dim = width // num_heads
    if axis_width(head_dim) == 0:
        raise ConfigError(
            f"3-D RoPE needs at least 6 channels per head to rotate time, height and width; "
            f"width {width} / {num_heads} heads = {head_dim}. Use fewer heads "
            f"(model.num_heads, model.pred_num_heads) or model.positions=sincos_uniform"
        )


def grid_positions(index: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Token indices [..., N] on a (T, H, W) grid -> integer positions [..., N, 3] (t, h, w)."""
    _, rows, cols = grid
    per_frame = rows * cols
    return torch.stack([index // per_frame, (index % per_frame) // cols, index % cols], dim=-1)


def all_positions(grid: tuple[int, int, int], device: torch.device | None = None) -> torch.Tensor:
    """Positions [1, T*H*W, 3] of every token of the grid, in token order."""
    count = grid[0] * grid[1] * grid[2]
    return grid_positions(torch.arange(count, device=device), grid)[None]


def rope_angles(
    positions: torch.Tensor, head_dim: int, dtype: torch.dtype, layout: Layout = "vjepa2"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer positions [B, N, 3] -> (cos, sin), each [B, 1, N, 3 * axis_width], in `dtype`."""
    width = axis_width(head_dim)
    omega = torch.arange(width // 2, dtype=dtype, device=positions.device) / (width / 2.0)
    omega = 1.0 / ROPE_BASE**omega
    if layout == "vjepa2":
        omega = omega.repeat(2)
    elif layout == "pairs":
        omega = omega.repeat_interleave(2)
    else:
        raise ValueError(f"unknown RoPE layout {layout!r}; use 'vjepa2' or 'pairs'")
    angles = torch.cat([positions[..., axis, None].to(dtype) * omega for axis in range(3)], -1)
    angles = angles.unsqueeze(1)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Queries or keys [B, heads, N, head_dim] turned by the angles of `rope_angles`."""
    rotated = cos.shape[-1]
    head, rest = x[..., :rotated], x[..., rotated:]
    pairs = head.unflatten(-1, (-1, 2))
    partner = torch.stack((-pairs[..., 1], pairs[..., 0]), dim=-1).flatten(-2)
    return torch.cat([head * cos + partner * sin, rest], dim=-1)
