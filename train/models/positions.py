"""Fixed sin-cos position embeddings on a 3-D (time, height, width) token grid.

Because they are a closed-form function of the grid, "interpolating" to another clip size is
exact: compute them for the new grid. Half the channels encode time, a quarter each height and
width (the split used by V-JEPA's released models); a grid of depth 1 is the 2-D image case.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[N] positions -> [N, dim] with sin in the first half and cos in the second."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding needs an even width, got {dim}")
    freqs = 1.0 / 10000 ** (torch.arange(dim // 2, dtype=torch.float64) / (dim / 2))
    angles = positions.to(torch.float64)[:, None] * freqs[None, :]
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()


def sincos_3d(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """Position table [T*H*W, dim] for a (T, H, W) token grid, rows in t-major, w-minor order."""
    if dim % 4:
        raise ValueError(f"3-D sin-cos needs a width divisible by 4, got {dim}")
    t_dim, hw_dim = dim // 2, dim // 4
    if grid[0] == 1:
        # An image: spend all channels on space, as I-JEPA's 2-D table does.
        t_dim, hw_dim = 0, dim // 2
    if hw_dim % 2 or t_dim % 2:
        raise ValueError(f"3-D sin-cos needs a width divisible by 8, got {dim}")
    t, h, w = torch.meshgrid(
        torch.arange(grid[0]), torch.arange(grid[1]), torch.arange(grid[2]), indexing="ij"
    )
    parts = [sincos_1d(hw_dim, h.flatten()), sincos_1d(hw_dim, w.flatten())]
    if t_dim:
        parts.insert(0, sincos_1d(t_dim, t.flatten()))
    return torch.cat(parts, dim=1)
