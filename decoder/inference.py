"""Decoding batches: clips and token masks in, the decoded masked region out.

Used by rendering (one clip), by the quality benchmark and by the held-out evaluation of a fit.
The clip's pixels enter only the frozen encoder, through the context tokens (and the target
encoder in the `target` reference mode); the decoder reads latents and positions.
"""

from __future__ import annotations

from typing import Literal

import torch

from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.masks import token_mask_to_pixels
from decoder.model import PixelDecoder
from train.data import denormalize_clip, normalize_clip
from train.masks import MaskSet
from train.objectives import unpatchify
from train.pretrained import Pretrained
from train.tokens import TokenGeometry

LatentSource = Literal["predicted", "target"]


def region_latents(
    pretrained: Pretrained,
    clips: torch.Tensor,
    masks: MaskSet,
    mask_index: torch.Tensor | int,
    source: LatentSource,
) -> torch.Tensor:
    """The decoder's input [B, K, D] for normalised clips: predicted or target latents."""
    if source == "predicted":
        return predicted_latents(pretrained, clips, masks, mask_index)
    if source == "target":
        return target_latents(pretrained, clips, masks)
    raise ValueError(f"latent source must be 'predicted' or 'target', got {source!r}")


def scatter_tokens(
    tokens: torch.Tensor, masks: MaskSet, num_tokens: int, fill: float = 0.0
) -> torch.Tensor:
    """Per-target tokens [B, K, P] -> all tokens [B, N, P], `fill` where nothing was decoded."""
    batch, _, width = tokens.shape
    canvas = tokens.new_full((batch, num_tokens, width), fill)
    rows = torch.arange(batch, device=tokens.device)[:, None].expand_as(masks.target_idx)
    valid = masks.target_valid
    canvas[rows[valid], masks.target_idx[valid]] = tokens[valid]
    return canvas


def pixels_to_clips(pixels: torch.Tensor, masks: MaskSet, geometry: TokenGeometry) -> torch.Tensor:
    """Decoded normalised tubelets [B, K, P] -> uint8 clips [B, 3, T, H, W] (black elsewhere)."""
    grid, tt, p = geometry.grid, geometry.tubelet_size, geometry.patch_size
    canvas = scatter_tokens(pixels.float(), masks, geometry.num_tokens)
    decoded = denormalize_clip(unpatchify(canvas, grid, tt, p))
    hit = scatter_tokens(torch.ones_like(pixels, dtype=torch.float), masks, geometry.num_tokens)
    inside = unpatchify(hit, grid, tt, p) > 0
    return decoded.masked_fill(~inside, 0)


def _pixel_masks(token_masks: torch.Tensor, geometry: TokenGeometry) -> torch.Tensor:
    return torch.stack([token_mask_to_pixels(m, geometry) for m in token_masks])


@torch.no_grad()
def decode_clips(
    pretrained: Pretrained,
    decoder: PixelDecoder,
    clips: torch.Tensor,
    token_masks: torch.Tensor,
    mask_index: torch.Tensor | int,
    source: LatentSource = "predicted",
) -> torch.Tensor:
    """uint8 clips [B, 3, T, H, W] and token masks [B, T', H', W'] -> uint8 clips with the
    decoded prediction inside each mask and the original pixels outside."""
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    masks = token_mask_set(token_masks)
    latents = region_latents(pretrained, normalize_clip(clips), masks, mask_index, source)
    pixels = decoder(latents, masks.target_idx, masks.target_valid)
    decoded = pixels_to_clips(pixels, masks, geometry)
    inside = _pixel_masks(token_masks.bool(), geometry)[:, None]
    return torch.where(inside, decoded, clips)
