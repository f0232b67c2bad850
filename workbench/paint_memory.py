"""The painted region outlives a reload of the editor.

Loading a clip, moving the window or choosing another frame to paint on gives the editor a new
picture, and a new editor value has no layers of its own: the strokes would be gone. So the
page keeps the painted region (bool [EDITOR_PX, EDITOR_PX], in the coordinates of the frame as
the model sees it, which every clip and frame shares) and each reload lays it over the new
picture as the editor's layer. The region then hides the same part of every frame, as it does
in the token mask (`workbench.masks_ui.token_mask`).

    paint = kept_paint(editor, stored)          # what is painted now, or what was kept
    value = editor_value(frame, paint)          # the new picture with the region on top
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from workbench.masks_ui import painted_pixels

# The brush's colour (#ff3030), see-through so the new frame shows under the kept region.
PAINT_RGB = (255, 48, 48)
PAINT_ALPHA = 170

KEPT_NOTE = (
    "Your painted region was kept: it covers the same part of this frame. Erase it (or paint "
    "more) to change it."
)


def kept_paint(editor: dict[str, Any] | None, stored: np.ndarray | None) -> np.ndarray | None:
    """bool [H, W] or None: the region painted in the editor now, where the editor holds a
    layer (its strokes and erasures are the user's latest word), else the region kept from the
    last reload. None when nothing is painted."""
    layers = [layer for layer in (editor or {}).get("layers") or [] if layer is not None]
    if layers:
        paint = painted_pixels(editor)
    elif stored is not None:
        paint = np.asarray(stored, dtype=bool)
    else:
        return None
    return paint if paint.any() else None


def reproject(paint: np.ndarray, size: int) -> np.ndarray:
    """bool [size, size]: a painted region resized to the editor's picture (nearest), so that
    it covers the same share of the frame."""
    paint = np.asarray(paint, dtype=bool)
    if paint.shape == (size, size):
        return paint
    image = Image.fromarray(paint.astype(np.uint8) * 255)
    return np.asarray(image.resize((size, size), Image.Resampling.NEAREST)) > 127


def paint_layer(paint: np.ndarray) -> np.ndarray:
    """uint8 [H, W, 4]: an editor layer with `paint` in the brush colour, clear elsewhere."""
    layer = np.zeros((*paint.shape, 4), np.uint8)
    layer[paint] = (*PAINT_RGB, PAINT_ALPHA)
    return layer


def editor_value(frame: np.ndarray, paint: np.ndarray | None = None) -> dict[str, Any]:
    """An ImageEditor value (RGBA) showing `frame` [H, W, 3], with `paint` (bool, any size; it
    is resized to the frame) as its layer, or no layer when None."""
    rgba = np.concatenate([frame, np.full((*frame.shape[:2], 1), 255, np.uint8)], axis=-1)
    if paint is None:
        return {"background": rgba, "layers": [], "composite": rgba}
    layer = paint_layer(reproject(paint, frame.shape[0]))
    alpha = layer[..., 3:].astype(np.float64) / 255
    composite = rgba.astype(np.float64)
    composite[..., :3] = composite[..., :3] * (1 - alpha) + layer[..., :3] * alpha
    return {"background": rgba, "layers": [layer], "composite": composite.astype(np.uint8)}
