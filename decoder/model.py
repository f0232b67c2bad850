"""The frozen-feature pixel decoder (V-JEPA paper, §6): latents of a masked region -> its pixels.

Its only inputs are one latent per masked token (the predictor's output there, or in the
reference mode the target encoder's) and the positions of those tokens. It never receives a
pixel: the visible part of the clip reaches it only through what the frozen encoder and
predictor made of it. The tokens of the region attend to each other, so a region decodes as a
whole (an object cut by the mask boundary keeps one colour), and a linear head turns each token
into its tubelet of pixels (tubelet frames x patch x patch x channels, in the order of
`train.objectives.patchify`), in the ImageNet-normalised pixel space of `normalize_clip`.
"""

from __future__ import annotations

import torch
from torch import nn

from decoder.config import DecoderModelConfig
from train.models.positions import sincos_3d
from train.models.vit import (
    LAYER_NORM_EPS,
    Block,
    gather_tokens,
    init_transformer_weights,
    positions_for,
    run_blocks,
)


class PixelDecoder(nn.Module):
    def __init__(
        self,
        *,
        latent_dim: int,
        grid_size: tuple[int, int, int],
        patch_dim: int,
        embed_dim: int = 128,
        depth: int = 3,
        num_heads: int = 4,
        mlp_ratio: float = 4.0,
    ):
        super().__init__()
        self.grid_size = tuple(grid_size)
        self.decoder_embed = nn.Linear(latent_dim, embed_dim)
        self.register_buffer("decoder_pos_embed", sincos_3d(embed_dim, self.grid_size)[None])
        self.decoder_blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.decoder_norm = nn.LayerNorm(embed_dim, eps=LAYER_NORM_EPS)
        self.decoder_pred = nn.Linear(embed_dim, patch_dim)
        init_transformer_weights(self, self.decoder_blocks)

    def forward(
        self,
        latents: torch.Tensor,
        target_idx: torch.Tensor,
        target_valid: torch.Tensor | None = None,
        grid: tuple[int, int, int] | None = None,
    ) -> torch.Tensor:
        """latents [B, K, latent_dim] at token indices target_idx [B, K] -> normalised pixels
        [B, K, patch_dim]. `target_valid` [B, K] marks padding, which is not attended to."""
        positions = positions_for(self.decoder_pos_embed, self.grid_size, grid or self.grid_size)
        positions = positions.expand(latents.shape[0], -1, -1)
        x = self.decoder_embed(latents) + gather_tokens(positions, target_idx)
        x = run_blocks(self.decoder_blocks, x, target_valid, checkpointing=False)
        return self.decoder_pred(self.decoder_norm(x))


def build_decoder(
    cfg: DecoderModelConfig, latent_dim: int, grid_size: tuple[int, int, int], patch_dim: int
) -> PixelDecoder:
    return PixelDecoder(
        latent_dim=latent_dim,
        grid_size=grid_size,
        patch_dim=patch_dim,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
    )
