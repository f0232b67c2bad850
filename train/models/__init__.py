"""Encoder, predictor and their construction from a ModelConfig."""

from __future__ import annotations

from dataclasses import replace

from train.config import ModelConfig
from train.models.predictor import Predictor
from train.models.sizes import SIZES
from train.models.vit import VisionTransformer, gather_tokens

__all__ = [
    "Predictor",
    "VisionTransformer",
    "build_encoder",
    "build_predictor",
    "gather_tokens",
    "resolved_model_config",
]


def resolved_model_config(cfg: ModelConfig) -> ModelConfig:
    """The config with every width/depth/heads filled in from the named size."""
    size = SIZES[cfg.size]
    explicit = {k: v for k, v in vars(cfg).items() if v is not None}
    return replace(cfg, **{**vars(size), **explicit})


def build_encoder(cfg: ModelConfig) -> VisionTransformer:
    cfg = resolved_model_config(cfg)
    return VisionTransformer(
        img_size=cfg.img_size,
        num_frames=cfg.num_frames,
        patch_size=cfg.patch_size,
        tubelet_size=cfg.tubelet_size,
        in_chans=cfg.in_chans,
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        checkpoint_activations=cfg.checkpoint_activations,
        positions=cfg.positions,
        rope_reference_grid=cfg.rope_reference_grid,
        hierarchical_levels=cfg.hierarchical_levels,
        modality_embed=cfg.modality_embed,
        image_patch_embed=cfg.image_patch_embed,
    )


def build_predictor(
    cfg: ModelConfig, grid_size: tuple[int, int, int], num_mask_tokens: int, out_dim: int | None
) -> Predictor:
    cfg = resolved_model_config(cfg)
    return Predictor(
        grid_size=grid_size,
        embed_dim=cfg.embed_dim,
        pred_embed_dim=cfg.pred_embed_dim,
        depth=cfg.pred_depth,
        num_heads=cfg.pred_num_heads,
        mlp_ratio=cfg.pred_mlp_ratio or cfg.mlp_ratio,
        num_mask_tokens=num_mask_tokens,
        # V-JEPA 2.1's distilled predictors regress their teacher's width, not the objective's.
        out_dim=cfg.pred_out_dim or out_dim,
        checkpoint_activations=cfg.checkpoint_activations,
        positions=cfg.positions,
        levels=cfg.pred_levels,
        context_head=cfg.pred_context_head,
        modality_embed=cfg.pred_modality_embed,
        rope_reference_grid=cfg.pred_rope_reference_grid,
    )
