"""Surprise as a heatmap over the frames: where, inside the mask, the prediction was wrong.

The surprise curve averages, per frame, the L1 error of each masked token (predicted latents
against the target encoder's, `decoder.render.masked_surprise`). This keeps those per-token
errors on the token grid and paints them over the frames, so a user sees *which* tokens the
model got wrong, not only when.

    errors = render_prediction(bundle, clip, token_mask).token_errors  # [T', H', W'], NaN outside
    frames = heatmap_frames(clip_frames, errors, bundle.geometry, scale=np.nanmax(errors))
"""

from __future__ import annotations

import numpy as np
from plotly.colors import hex_to_rgb, sequential

from train.tokens import TokenGeometry
from workbench.features import token_map_to_frames

# Outside the mask the frame is dimmed to this brightness: there is no error to show there.
OUTSIDE_BRIGHTNESS = 0.35
# Inside, the heat colour over the frame: enough of the frame stays visible to tell what is where.
HEAT_OPACITY = 0.7
# Perceptually ordered, dark (no error) to bright yellow (the largest error on the scale).
COLOURS = np.array([hex_to_rgb(colour) for colour in sequential.Inferno], dtype=np.float64)
SCALE_WORDS = "dark purple (0) to bright yellow"


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
