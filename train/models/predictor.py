"""The narrow predictor: from context features and target positions to target features.

Context tokens (encoder outputs projected to the predictor width, plus their positions) and
learned mask tokens (one per mask set, plus the target positions) attend jointly; the outputs at
the target positions are normed and projected back to the encoder width (or to the pixel width
of a tubelet when the objective regresses pixels). Names match the released V-JEPA predictor.
With `positions="rope"` nothing is added to the tokens: every block turns queries and keys by the
3-D RoPE of each token's place on the grid (its context or target index), as V-JEPA 2's does.
"""

from __future__ import annotations

import torch
from torch import nn

from train.models.positions import sincos_3d
from train.models.rope import check_head_dim, grid_positions
from train.models.vit import (
    LAYER_NORM_EPS,
    POSITION_SCHEMES,
    Block,
    gather_tokens,
    in_weight_dtype,
    init_transformer_weights,
    positions_for,
    run_blocks,
)


class Predictor(nn.Module):
    def __init__(
        self,
        *,
        grid_size: tuple[int, int, int],
        embed_dim: int,
        pred_embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 2,
        out_dim: int | None = None,
        checkpoint_activations: bool = False,
        positions: str = "sincos",
    ):
        super().__init__()
        if positions not in POSITION_SCHEMES:
            raise ValueError(f"unknown positions {positions!r}; use one of {POSITION_SCHEMES}")
        self.grid_size = tuple(grid_size)
        self.checkpoint_activations = checkpoint_activations
        self.positions = positions
        self.predictor_embed = nn.Linear(embed_dim, pred_embed_dim)
        # Zero-initialised: every masked position starts as "position only", as in V-JEPA.
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, pred_embed_dim)) for _ in range(num_mask_tokens)
        )
        if positions == "rope":
            check_head_dim(pred_embed_dim, num_heads)
            self.predictor_pos_embed = None
        else:
            uniform = positions == "sincos_uniform"
            table = sincos_3d(pred_embed_dim, self.grid_size, uniform)[None]
            self.register_buffer("predictor_pos_embed", table)
        self.predictor_blocks = nn.ModuleList(
            Block(pred_embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(pred_embed_dim, eps=LAYER_NORM_EPS)
        self.predictor_proj = nn.Linear(pred_embed_dim, out_dim or embed_dim)
        init_transformer_weights(self, self.predictor_blocks)

    def forward(
        self,
        context: torch.Tensor,
        context_idx: torch.Tensor,
        target_idx: torch.Tensor,
        *,
        context_valid: torch.Tensor | None = None,
        target_valid: torch.Tensor | None = None,
        mask_index: int = 0,
        grid: tuple[int, int, int] | None = None,
    ) -> torch.Tensor:
        """context [B, Nc, D] at token indices context_idx [B, Nc] -> predictions [B, Nt, out]
        at target_idx [B, Nt]. `*_valid` mark padding; `grid` defaults to the configured one."""
        if not 0 <= mask_index < len(self.mask_tokens):
            raise ValueError(
                f"mask_index {mask_index} out of range: this predictor has "
                f"{len(self.mask_tokens)} mask tokens (one per mask set)"
            )
        grid = grid or self.grid_size
        ctx = self.predictor_embed(in_weight_dtype(context, self.predictor_embed.weight))
        tgt = self.mask_tokens[mask_index].expand(target_idx.shape[0], target_idx.shape[1], -1)
        rope_positions = None
        if self.predictor_pos_embed is None:
            rope_positions = grid_positions(torch.cat([context_idx, target_idx], dim=1), grid)
        else:
            uniform = self.positions == "sincos_uniform"
            positions = positions_for(self.predictor_pos_embed, self.grid_size, grid, uniform)
            positions = positions.expand(context.shape[0], -1, -1)
            ctx = ctx + gather_tokens(positions, context_idx)
            tgt = tgt + gather_tokens(positions, target_idx)
        # float32 position tables promote the sum: back to the weights' dtype (see vit.py).
        x = in_weight_dtype(torch.cat([ctx, tgt], dim=1), self.predictor_embed.weight)
        valid = None
        if context_valid is not None or target_valid is not None:
            valid = torch.cat(
                [
                    _all_true(context_idx) if context_valid is None else context_valid,
                    _all_true(target_idx) if target_valid is None else target_valid,
                ],
                dim=1,
            )
        checkpointing = self.checkpoint_activations and self.training
        x = run_blocks(self.predictor_blocks, x, valid, checkpointing, rope_positions)
        x = self.predictor_norm(x[:, ctx.shape[1] :])
        return self.predictor_proj(x)


def _all_true(index: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(index, dtype=torch.bool)
