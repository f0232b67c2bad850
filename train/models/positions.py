"""Fixed sin-cos position embeddings on a 3-D (time, height, width) token grid.

Because they are a closed-form function of the grid, "interpolating" to another clip size is
exact: compute them for the new grid. Two channel splits between the axes:

- `uniform=False` (`model.positions: sincos`, this project's original split and the meaning of a
  config without the key): half the channels encode time, a quarter each height and width;
- `uniform=True` (`model.positions: sincos_uniform`, what V-JEPA 1's released models and upstream
  configs use, `uniform_power: true`): each axis gets a third of the channels, rounded up to an
  even count (2 * ceil(dim / 6)); the three are concatenated as (time, height, width) and the
  result is cut to `dim`, so at widths not divisible by 6 the last width channels are dropped.

A grid of depth 1 is the 2-D image case: all channels go to space, half each to height and width,
as I-JEPA's 2-D table does.
"""

from __future__ import annotations

import math

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[N] positions -> [N, dim] with sin in the first half and cos in the second."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def axis_widths(dim: int, grid: tuple[int, int, int], uniform: bool) -> tuple[int, int, int]:
    """Channels given to (time, height, width) before the table is cut to `dim`."""
    if grid[0] == 1:
        if dim % 4:
            raise ValueError(f"2-D sin-cos needs a width divisible by 4, got {dim}")
        return 0, dim // 2, dim // 2
    if uniform:
        third = 2 * math.ceil(dim / 6)
        return third, third, third
    if dim % 8:
        raise ValueError(
            f"3-D sin-cos (1/2, 1/4, 1/4 split) needs a width divisible by 8, got {dim}"
        )
    return dim // 2, dim // 4, dim // 4


def sincos_3d(dim: int, grid: tuple[int, int, int], uniform: bool = False) -> torch.Tensor:
    """Position table [T*H*W, dim] for a (T, H, W) token grid, rows in t-major, w-minor order."""
    t_dim, h_dim, w_dim = axis_widths(dim, grid, uniform)
    t, h, w = torch.meshgrid(
        torch.arange(grid[0]), torch.arange(grid[1]), torch.arange(grid[2]), indexing="ij"
    )
    parts = [sincos_1d(h_dim, h.flatten()), sincos_1d(w_dim, w.flatten())]
    if t_dim:
        parts.insert(0, sincos_1d(t_dim, t.flatten()))
    return torch.cat(parts, dim=1)[:, :dim]
