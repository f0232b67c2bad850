"""Clips in, clips out: fitting any uint8 video to a model's frames and size, and checking it.

Frames arrive as uint8 [T, H, W, 3] (what video readers and images give) or [3, T, H, W]
(what the models eat); `fit_clip` takes the first `num_frames` frames, centre-crops to a square
and resizes, so any clip can be shown to any model. `fit_pixel_mask` applies the same crop and
resize to a mask painted on the original frames.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from decoder.masks import as_tensor
from train.tokens import TokenGeometry


def channels_first(clip: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 [T, H, W, 3] or [3, T, H, W] -> uint8 [3, T, H, W].

    A clip whose first and last dimensions are both 3 is read as [T, H, W, 3] (three frames).
    """
    clip = as_tensor(clip)
    if clip.dtype != torch.uint8:
        raise ValueError(
            f"expected uint8 frames (0..255), got {clip.dtype}; convert floats in [0, 1] with "
            "(x * 255).round() cast to uint8"
        )
    if clip.dim() != 4 or 3 not in (clip.shape[0], clip.shape[-1]):
        raise ValueError(
            f"expected a clip of RGB frames shaped [T, H, W, 3] or [3, T, H, W], got "
            f"{tuple(clip.shape)}; a single image is a clip of one frame: [1, H, W, 3]"
        )
    return clip.permute(3, 0, 1, 2) if clip.shape[-1] == 3 else clip


def channels_last(clip: torch.Tensor) -> torch.Tensor:
    """[3, T, H, W] -> [T, H, W, 3] (contiguous), what image and video writers take."""
    return clip.permute(1, 2, 3, 0).contiguous()


def _centre_square(x: torch.Tensor) -> torch.Tensor:
    """Centre crop of the last two dimensions to a square of the shorter side."""
    h, w = x.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return x[..., top : top + side, left : left + side]


def fit_clip(clip: torch.Tensor | np.ndarray, num_frames: int, img_size: int) -> torch.Tensor:
    """Any uint8 clip -> uint8 [3, num_frames, img_size, img_size] for a model.

    Takes the first `num_frames` frames (a shorter clip, or a single image, repeats its last
    frame to fill the clip: the model needs all of them), centre-crops each frame to a square
    and resizes it with antialiasing.
    """
    clip = channels_first(clip)[:, :num_frames]
    if clip.shape[1] < num_frames:
        filler = clip[:, -1:].expand(-1, num_frames - clip.shape[1], -1, -1)
        clip = torch.cat([clip, filler], dim=1)
    square = _centre_square(clip).float()  # [3, T, S, S]
    if square.shape[-1] == img_size:
        return square.to(torch.uint8)
    frames = square.permute(1, 0, 2, 3)  # T as the batch dimension
    resized = F.interpolate(
        frames, size=(img_size, img_size), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(1, 0, 2, 3).contiguous()


def fit_pixel_mask(mask: torch.Tensor | np.ndarray, img_size: int) -> torch.Tensor:
    """A painted H x W mask on the original frames -> bool [img_size, img_size], cropped and
    resized like `fit_clip`. A pixel of the result is painted when any paint falls in it."""
    painted = as_tensor(mask)
    if painted.dim() != 2:
        raise ValueError(f"expected a painted mask [H, W], got shape {tuple(painted.shape)}")
    square = _centre_square(painted.bool().float())[None, None]
    mode = "area" if square.shape[-1] >= img_size else "nearest"
    return F.interpolate(square, size=(img_size, img_size), mode=mode)[0, 0] > 0


def check_model_clip(clip: torch.Tensor | np.ndarray, geometry: TokenGeometry) -> torch.Tensor:
    """The clip as uint8 [3, T, H, W] if it has exactly the model's frames and size."""
    clip = channels_first(clip)
    expected = (geometry.in_chans, geometry.num_frames, geometry.img_size, geometry.img_size)
    if tuple(clip.shape) != expected:
        t, s = geometry.num_frames, geometry.img_size
        raise ValueError(
            f"clip is {clip.shape[1]} frames of {clip.shape[2]}x{clip.shape[3]} px; this model "
            f"takes exactly {t} frames of {s}x{s} px. Fit it first with "
            f"decoder.clips.fit_clip(clip, {t}, {s}) (first {t} frames, centre crop, resize)."
        )
    return clip
