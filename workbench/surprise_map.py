"""Surprise as a heatmap over the frames: where, inside the mask, the prediction was wrong.

The surprise curve averages, per frame, the L1 error of each masked token (predicted latents
against the target encoder's, `decoder.render.masked_surprise`). This keeps those per-token
errors on the token grid and paints them over the frames, so a user sees *which* tokens the
model got wrong, not only when.

    errors = model_token_errors(bundle, clip, token_mask, mask_index)  # [T', H', W'], NaN outside
    frames = heatmap_frames(clip_frames, errors, bundle.geometry, scale=np.nanmax(errors))
"""

from __future__ import annotations

import numpy as np
import torch
from plotly.colors import hex_to_rgb, sequential

from decoder.bundle import Bundle
from decoder.clips import check_model_clip
from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.masks import check_token_mask
from train.data import normalize_clip
from train.tokens import TokenGeometry
from workbench.features import token_map_to_frames

# Outside the mask the frame is dimmed to this brightness: there is no error to show there.
OUTSIDE_BRIGHTNESS = 0.35
# Inside, the heat colour over the frame: enough of the frame stays visible to tell what is where.
HEAT_OPACITY = 0.7
# Perceptually ordered, dark (no error) to bright yellow (the largest error on the scale).
COLOURS = np.array([hex_to_rgb(colour) for colour in sequential.Inferno], dtype=np.float64)
SCALE_WORDS = "dark purple (0) to bright yellow"


def token_errors(
    predicted: torch.Tensor,
    target: torch.Tensor,
    target_idx: torch.Tensor,
    grid: tuple[int, int, int],
) -> np.ndarray:
    """float32 [T', H', W']: one clip's mean |predicted - target| per masked token (latents
    [1, K, D] at `target_idx` [1, K]), NaN at the tokens the encoder saw."""
    errors = (predicted.float() - target.float()).abs().mean(-1)[0].cpu().numpy()
    out = np.full(int(np.prod(grid)), np.nan, np.float32)
    out[target_idx[0].cpu().numpy()] = errors
    return out.reshape(grid)


@torch.no_grad()
def model_token_errors(
    bundle: Bundle,
    clip_uint8: torch.Tensor | np.ndarray,
    token_mask: torch.Tensor | np.ndarray,
    mask_index: int,
) -> np.ndarray:
    """`token_errors` of the bundle's model on a clip at its size under a token mask, computed
    as the surprise curve computes them (`decoder.render.render_prediction`)."""
    geometry = bundle.geometry
    clip = check_model_clip(clip_uint8, geometry)
    mask = check_token_mask(token_mask, geometry)
    clips = normalize_clip(clip[None].to(bundle.device))
    masks = token_mask_set(mask[None].to(bundle.device))
    predicted = predicted_latents(bundle.pretrained, clips, masks, mask_index)
    target = target_latents(bundle.pretrained, clips, masks)
    return token_errors(predicted, target, masks.target_idx, geometry.grid)


def heat_colours(values: np.ndarray, scale: float) -> np.ndarray:
    """uint8 [..., 3]: `values` in [0, scale] on the colour scale (clipped at both ends)."""
    share = np.clip(np.nan_to_num(values, nan=0.0) / max(float(scale), 1e-12), 0.0, 1.0)
    stops = np.linspace(0.0, 1.0, len(COLOURS))
    channels = [np.interp(share, stops, COLOURS[:, c]) for c in range(3)]
    return np.round(np.stack(channels, axis=-1)).astype(np.uint8)


def heatmap_frames(
    frames: np.ndarray, errors: np.ndarray, geometry: TokenGeometry, scale: float
) -> np.ndarray:
    """uint8 [T, H, W, 3]: the frames with each masked token coloured by its error (0 to
    `scale`), the unmasked tokens dimmed."""
    tubelet, patch = geometry.tubelet_size, geometry.patch_size
    masked = token_map_to_frames(~np.isnan(errors)[..., None], tubelet, patch)[..., 0]
    heat = token_map_to_frames(heat_colours(errors, scale), tubelet, patch).astype(np.float64)
    shown = frames.astype(np.float64) * OUTSIDE_BRIGHTNESS
    blended = HEAT_OPACITY * heat + (1 - HEAT_OPACITY) * frames.astype(np.float64)
    shown[masked] = blended[masked]
    return np.round(shown).astype(np.uint8)


def heatmap_caption(scale: float) -> str:
    return (
        "**Surprise heatmap**: each masked token coloured by its prediction error, the L1 "
        "distance between the predicted and the target encoder's latents (the surprise curve "
        f"averages these per frame), from {SCALE_WORDS} ({scale:.3f}); the tokens the model "
        "saw are dimmed."
    )


def error_scale(*errors: np.ndarray) -> float:
    """One colour scale for several heatmaps: the largest error among them (positive)."""
    finite = [float(np.nanmax(e)) for e in errors if np.isfinite(e).any()]
    return max([*finite, 1e-6])
