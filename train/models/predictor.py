"""The narrow predictor: from context features and target positions to target features.

Context tokens (encoder outputs projected to the predictor width, plus their positions) and
learned mask tokens (one per mask set, plus the target positions) attend jointly; the outputs at
the target positions are normed and projected back to the encoder width (or to the pixel width
of a tubelet when the objective regresses pixels). Names match the released V-JEPA predictor.
With `positions="rope"` nothing is added to the tokens: every block turns queries and keys by the
3-D RoPE of each token's place on the grid (its context or target index), as V-JEPA 2's does.

V-JEPA 2.1's options (facebookresearch/vjepa2, app/vjepa_2_1/models/predictor.py), all off by
default: `levels` > 1 reads that many encoder levels concatenated through an MLP
(`predictor_embed.0`, GELU, `predictor_embed.2`) and predicts as many (`predictor_proj` is
levels x out wide); `context_head` adds `predictor_proj_context`, the same projection for the
context tokens; `modality_embed` adds `video_mod_embed` / `img_mod_embed` to every token before
the blocks; `positions="rope_v21"` with an optional `rope_reference_grid` (rope_v21.py).
"""

from __future__ import annotations

import torch
from torch import nn

from train.models.positions import sincos_3d
from train.models.rope import check_head_dim, grid_positions
from train.models.rope_v21 import rescaled_positions
from train.models.vit import (
    LAYER_NORM_EPS,
    POSITION_SCHEMES,
    ROPE_LAYOUTS,
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
        levels: int = 1,
        context_head: bool = False,
        modality_embed: bool = False,
        rope_reference_grid: int | None = None,
    ):
        super().__init__()
        if positions not in POSITION_SCHEMES:
            raise ValueError(f"unknown positions {positions!r}; use one of {POSITION_SCHEMES}")
        if levels < 1:
            raise ValueError(f"the predictor reads at least one encoder level, not {levels}")
        if rope_reference_grid is not None and positions not in ROPE_LAYOUTS:
            raise ValueError(
                f"pred_rope_reference_grid={rope_reference_grid} rescales RoPE positions, and "
                f"positions={positions!r} has none: use positions=rope_v21 or unset it"
            )
        self.grid_size = tuple(grid_size)
        self.checkpoint_activations = checkpoint_activations
        self.positions = positions
        self.levels = levels
        self.rope_reference_grid = rope_reference_grid
        if levels == 1:
            self.predictor_embed = nn.Linear(embed_dim, pred_embed_dim)
        else:  # V-JEPA 2.1: the concatenated levels through a small MLP
            self.predictor_embed = nn.Sequential(
                nn.Linear(levels * embed_dim, embed_dim),
                nn.GELU(),
                nn.Linear(embed_dim, pred_embed_dim),
            )
        # Zero-initialised: every masked position starts as "position only", as in V-JEPA.
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, pred_embed_dim)) for _ in range(num_mask_tokens)
        )
        if positions in ROPE_LAYOUTS:
            check_head_dim(pred_embed_dim, num_heads)
            self.predictor_pos_embed = None
        else:
            uniform = positions == "sincos_uniform"
            table = sincos_3d(pred_embed_dim, self.grid_size, uniform)[None]
            self.register_buffer("predictor_pos_embed", table)
        layout = ROPE_LAYOUTS.get(positions, "vjepa2")
        self.predictor_blocks = nn.ModuleList(
            Block(pred_embed_dim, num_heads, mlp_ratio, layout) for _ in range(depth)
        )
        self.predictor_norm = nn.LayerNorm(pred_embed_dim, eps=LAYER_NORM_EPS)
        self.predictor_proj = nn.Linear(pred_embed_dim, levels * (out_dim or embed_dim))
        if context_head:
            self.predictor_proj_context = nn.Linear(pred_embed_dim, levels * (out_dim or embed_dim))
        init_transformer_weights(self, self.predictor_blocks)
        self.modality_embed = modality_embed
        if modality_embed:  # V-JEPA 2.1 starts them near zero (std 1e-6)
            self.video_mod_embed = nn.Parameter(torch.randn(1, 1, pred_embed_dim) * 1e-6)
            self.img_mod_embed = nn.Parameter(torch.randn(1, 1, pred_embed_dim) * 1e-6)

    @property
    def input_proj(self) -> nn.Linear:
        """The first linear of `predictor_embed` (its weight's dtype is the model's)."""
        embed = self.predictor_embed
        return embed if isinstance(embed, nn.Linear) else embed[0]

    @property
    def has_context_head(self) -> bool:
        return hasattr(self, "predictor_proj_context")

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
        modality: str = "video",
        with_context: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """context [B, Nc, levels x D] at token indices context_idx [B, Nc] -> predictions
        [B, Nt, levels x out] at target_idx [B, Nt]. `*_valid` mark padding; `grid` defaults to
        the configured one. `modality` ("video" or "image") picks the modality vector;
        `with_context` also returns the context head's outputs [B, Nc, levels x out]."""
        if not 0 <= mask_index < len(self.mask_tokens):
            raise ValueError(
                f"mask_index {mask_index} out of range: this predictor has "
                f"{len(self.mask_tokens)} mask tokens (one per mask set)"
            )
        if with_context and not self.has_context_head:
            raise ValueError("with_context: this predictor has no context head")
        if modality not in ("video", "image"):
            raise ValueError(f"modality {modality!r}: use 'video' or 'image'")
        grid = grid or self.grid_size
        ctx = self.predictor_embed(in_weight_dtype(context, self.input_proj.weight))
        tgt = self.mask_tokens[mask_index].expand(target_idx.shape[0], target_idx.shape[1], -1)
        rope_positions = None
        if self.predictor_pos_embed is None:
            rope_positions = grid_positions(torch.cat([context_idx, target_idx], dim=1), grid)
            if self.rope_reference_grid is not None:
                rope_positions = rescaled_positions(rope_positions, grid, self.rope_reference_grid)
        else:
            uniform = self.positions == "sincos_uniform"
            positions = positions_for(self.predictor_pos_embed, self.grid_size, grid, uniform)
            positions = positions.expand(context.shape[0], -1, -1)
            ctx = ctx + gather_tokens(positions, context_idx)
            tgt = tgt + gather_tokens(positions, target_idx)
        # float32 position tables promote the sum: back to the weights' dtype (see vit.py).
        x = in_weight_dtype(torch.cat([ctx, tgt], dim=1), self.input_proj.weight)
        if self.modality_embed:
            x = x + (self.img_mod_embed if modality == "image" else self.video_mod_embed)
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
        if with_context:
            x = self.predictor_norm(x)
            count = ctx.shape[1]
            return self.predictor_proj(x[:, count:]), self.predictor_proj_context(x[:, :count])
        x = self.predictor_norm(x[:, ctx.shape[1] :])
        return self.predictor_proj(x)


def _all_true(index: torch.Tensor) -> torch.Tensor:
    return torch.ones_like(index, dtype=torch.bool)
