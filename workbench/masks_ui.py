"""From what people paint to a token mask: the ImageEditor's layers, the temporal extent, the
preset masks.

The editor shows one frame of the clip as the model sees it (cropped and resized, then enlarged
for painting). Every brush layer counts: a pixel is painted where any layer's alpha is above
zero. The painted region then covers the frames the user chose: the whole clip, a frame range,
or "the future", every frame from k on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import fit_pixel_mask
from decoder.masks import PRESETS, TemporalExtent
from train.config import MaskConfig
from train.masks import num_strategy_sets

EXTENT_MODES: tuple[str, ...] = ("whole clip", "frame range", "the future")
PAINTED = "painted region"
MASK_SOURCES: tuple[str, ...] = (PAINTED, *PRESETS)
# The presets drawn at random (from the seed); "causal" hides the same frames every time.
SEEDED_PRESETS: tuple[str, ...] = ("multiblock-short", "multiblock-long", "random-tube")
PRESET_REPLACES_PAINT = "the preset replaces the painted region"


def painted_pixels(editor_value: dict[str, Any] | None) -> np.ndarray:
    """bool [H, W]: where any layer of an ImageEditor value (type="numpy", RGBA) has paint."""
    if not editor_value:
        raise ValueError("load a clip first, then paint the region to predict on its frame")
    layers = [layer for layer in editor_value.get("layers") or [] if layer is not None]
    background = editor_value.get("background")
    if not layers:
        if background is None:
            raise ValueError("load a clip first, then paint the region to predict on its frame")
        return np.zeros(np.asarray(background).shape[:2], dtype=bool)
    painted = np.zeros(np.asarray(layers[0]).shape[:2], dtype=bool)
    for layer in layers:
        layer = np.asarray(layer)
        if layer.ndim != 3 or layer.shape[-1] != 4:
            raise ValueError(
                f"the editor sent a layer of shape {layer.shape}; the app needs RGBA layers "
                "(ImageEditor image_mode='RGBA')"
            )
        painted |= layer[..., 3] > 0
    return painted


def has_paint(editor_value: dict[str, Any] | None) -> bool:
    """Whether any layer of an ImageEditor value has paint (False before a clip is loaded)."""
    try:
        return bool(painted_pixels(editor_value).any())
    except ValueError:
        return False


def temporal_extent(
    mode: str, num_frames: int, range_start: int = 0, range_stop: int | None = None
) -> TemporalExtent:
    """The frames a painted region covers. `range_start`/`range_stop` are frame numbers in the
    window, `range_stop` inclusive as a UI shows it; "the future" uses `range_start` as k."""
    if mode == "whole clip":
        return TemporalExtent.whole_clip()
    first = int(range_start)
    if mode == "the future":
        if not 0 < first < num_frames:
            raise ValueError(
                f"'the future' starts at frame {first}; pick a frame from 1 to {num_frames - 1} "
                "so that the model sees at least the first frame"
            )
        return TemporalExtent.from_frame(first)
    if mode == "frame range":
        last = num_frames - 1 if range_stop is None else int(range_stop)
        if not 0 <= first <= last < num_frames:
            raise ValueError(
                f"frame range {first}..{last} does not fit the window of {num_frames} frames "
                f"(0..{num_frames - 1}); the first frame must not come after the last"
            )
        return TemporalExtent.frames(first, last + 1)
    raise ValueError(f"unknown extent {mode!r}; choose one of {', '.join(EXTENT_MODES)}")


@dataclass
class MaskChoice:
    """What the user asked for: a painted region over some frames, or a preset."""

    source: str = PAINTED  # PAINTED or one of decoder.masks.PRESETS
    extent: str = "whole clip"
    range_start: int = 0
    range_stop: int | None = None
    seed: int = 0


def token_mask(
    bundle: Bundle, choice: MaskChoice, editor_value: dict[str, Any] | None
) -> tuple[torch.Tensor, int]:
    """(token mask [T', H', W'], predictor mask token) for `choice`.

    Raises ValueError with a message for the user when the mask is empty, covers everything,
    or the frame range does not fit.
    """
    if choice.source != PAINTED:
        return bundle.preset_mask(choice.source, seed=int(choice.seed))
    painted = painted_pixels(editor_value)
    if not painted.any():
        raise ValueError(
            "nothing is painted: paint the region the model should predict with the brush, "
            "or pick a preset mask"
        )
    pixels = fit_pixel_mask(painted, bundle.img_size)
    extent = temporal_extent(
        choice.extent, bundle.num_frames, choice.range_start, choice.range_stop
    )
    mask = bundle.painted_mask(pixels, extent)
    return mask, bundle.mask_index_for(mask)


def mask_token_role(mask_cfg: MaskConfig, index: int) -> str:
    """What the predictor's learned mask token `index` stands for, in plain words: the predictor
    learned one per kind of mask it trained on, and fills the hidden tokens with it."""
    own_sets = num_strategy_sets(mask_cfg)
    if index >= own_sets or mask_cfg.strategy == "causal":
        return "future frames"
    if mask_cfg.strategy == "random_tube":
        return "tubes through the whole clip"
    scales = [spec.spatial_scale[1] for spec in mask_cfg.multiblock]
    if len(scales) < 2:
        return "hidden blocks"
    if scales[index] == max(scales):
        return "long-range blocks (a few large ones)"
    if scales[index] == min(scales):
        return "short-range blocks (many small ones)"
    return f"mid-range blocks (set {index})"
