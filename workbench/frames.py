"""Frames as pictures people look at: enlarged model-size frames, frame strips, animated GIFs.

Model clips are small (64 px for the teaching preset), so everything shown is enlarged with
nearest-neighbour: each token stays a crisp square, as the model sees it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

GAP_PX = 4
GAP_COLOUR = 255


def enlarge(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 [..., S, S, C] square frames -> [..., size, size, C], nearest-neighbour.

    `size` is rounded down to a multiple of S so every source pixel becomes an equal square.
    """
    side = frames.shape[-2]
    factor = max(1, size // side)
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def strip(rows: list[np.ndarray], size: int = 96) -> np.ndarray:
    """Rows of frames (each uint8 [T, S, S, 3], same T) -> one uint8 [H, W, 3] image, one row
    per entry and one column per frame, with white gaps between them."""
    enlarged = [enlarge(row, size) for row in rows]
    count, side = enlarged[0].shape[0], enlarged[0].shape[1]
    height = len(rows) * side + (len(rows) - 1) * GAP_PX
    width = count * side + (count - 1) * GAP_PX
    canvas = np.full((height, width, 3), GAP_COLOUR, np.uint8)
    for r, row in enumerate(enlarged):
        for c, frame in enumerate(row):
            y, x = r * (side + GAP_PX), c * (side + GAP_PX)
            canvas[y : y + side, x : x + side] = frame
    return canvas


def side_by_side(clips: list[np.ndarray]) -> np.ndarray:
    """Clips (uint8 [T, H, W, 3], same T and H) -> one clip with them next to each other."""
    height = clips[0].shape[1]
    gap = np.full((clips[0].shape[0], height, GAP_PX, 3), GAP_COLOUR, np.uint8)
    parts = [part for clip in clips for part in (clip, gap)][:-1]
    return np.concatenate(parts, axis=2)


def write_gif(frames: np.ndarray, path: str | os.PathLike[str], fps: float = 6.0) -> Path:
    """uint8 [T, H, W, 3] -> a looping animated GIF (what galleries and hover cards show)."""
    images = [Image.fromarray(frame) for frame in frames]
    path = Path(path)
    images[0].save(
        path,
        save_all=True,
        append_images=images[1:],
        duration=round(1000 / fps),
        loop=0,
        optimize=False,
    )
    return path
