"""Spatial transforms on whole uint8 clips [C, T, H, W]: one crop for every frame, no PIL loops.

Every resize goes through `torch.nn.functional.interpolate` on the [T, C, H, W] view of the clip.
A clip that comes straight from a decoder ([T, H, W, C] memory, permuted) is channels-last in
that view, which is the layout torch's uint8 bilinear kernels are fastest on, so clips stay uint8
end to end (normalisation happens later, on the device, in `normalize_clip`).

All randomness comes from a `torch.Generator` the caller passes in: the same generator state
gives the same crop and flip, which keeps a `Draw` reproducible.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F

# Evaluation resizes the short side to img_size * 256 / 224 and centre-crops img_size, the
# ImageNet convention: the crop keeps ~87% of the short side.
EVAL_RESIZE_RATIO = 256 / 224


class Box(NamedTuple):
    """A crop rectangle in pixels: top-left corner and size."""

    top: int
    left: int
    height: int
    width: int


def eval_short_side(img_size: int) -> int:
    """The short side the evaluation transform resizes to before its centre crop."""
    return round(img_size * EVAL_RESIZE_RATIO)


def resize(clip: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of every frame of a uint8 clip [C, T, H, W] to (height, width)."""
    _, _, in_h, in_w = clip.shape
    if (in_h, in_w) == (height, width):
        return clip
    frames = clip.permute(1, 0, 2, 3)  # [T, C, H, W], the layout interpolate expects
    # Antialiasing only matters when shrinking; leaving it off when enlarging saves time.
    shrinking = height < in_h or width < in_w
    out = F.interpolate(
        frames, size=(height, width), mode="bilinear", antialias=shrinking, align_corners=False
    )
    return out.permute(1, 0, 2, 3)


def resize_short_side(clip: torch.Tensor, size: int) -> torch.Tensor:
    """Resize so that the shorter spatial side equals `size`, keeping the aspect ratio."""
    height, width = clip.shape[-2:]
    if height <= width:
        return resize(clip, size, max(1, round(width * size / height)))
    return resize(clip, max(1, round(height * size / width)), size)


def crop(clip: torch.Tensor, box: Box) -> torch.Tensor:
    """The same rectangle of every frame (a view, no copy)."""
    return clip[..., box.top : box.top + box.height, box.left : box.left + box.width]


def center_box(height: int, width: int, size: int) -> Box:
    """A centred square of side `size` (clamped to the frame)."""
    crop_h, crop_w = min(size, height), min(size, width)
    return Box((height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)


def _uniform(low: float, high: float, generator: torch.Generator) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _randint(high: int, generator: torch.Generator) -> int:
    """An integer in [0, high]."""
    return int(torch.randint(high + 1, (), generator=generator).item())


def random_resized_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    aspect: tuple[float, float],
    generator: torch.Generator,
    attempts: int = 10,
) -> Box:
    """A box covering `scale` of the frame's area with width/height ratio in `aspect`.

    The ratio is drawn log-uniformly so that 3:4 and 4:3 are equally likely. A draw that does not
    fit in the frame is retried; after `attempts` misses the largest centred box whose ratio lies
    in `aspect` is used, so the function always returns a valid box.
    """
    area = height * width
    log_low, log_high = math.log(aspect[0]), math.log(aspect[1])
    for _ in range(attempts):
        target_area = area * _uniform(scale[0], scale[1], generator)
        ratio = math.exp(_uniform(log_low, log_high, generator))
        box_w = round(math.sqrt(target_area * ratio))
        box_h = round(math.sqrt(target_area / ratio))
        if 0 < box_w <= width and 0 < box_h <= height:
            top = _randint(height - box_h, generator)
            left = _randint(width - box_w, generator)
            return Box(top, left, box_h, box_w)
    # Fallback: the whole frame, trimmed to the nearest allowed aspect ratio.
    ratio = min(max(width / height, aspect[0]), aspect[1])
    if width / height > ratio:  # too wide: keep the full height
        box_h, box_w = height, max(1, round(height * ratio))
    else:  # too tall: keep the full width
        box_h, box_w = max(1, round(width / ratio)), width
    return Box((height - box_h) // 2, (width - box_w) // 2, box_h, box_w)


class TrainTransform:
    """Random resized crop (one box for the whole clip) to img_size², then a random h-flip."""

    def __init__(
        self,
        img_size: int,
        scale: tuple[float, float] = (0.3, 1.0),
        aspect: tuple[float, float] = (0.75, 1.35),
        hflip: bool = True,
    ) -> None:
        if not 0.0 < scale[0] <= scale[1] <= 1.0:
            raise ValueError(f"crop scale {scale} must satisfy 0 < low <= high <= 1")
        if not 0.0 < aspect[0] <= aspect[1]:
            raise ValueError(f"crop aspect {aspect} must satisfy 0 < low <= high")
        self.img_size = img_size
        self.scale = scale
        self.aspect = aspect
        self.hflip = hflip

    def __call__(self, clip: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        height, width = clip.shape[-2:]
        box = random_resized_box(height, width, self.scale, self.aspect, generator)
        out = resize(crop(clip, box), self.img_size, self.img_size)
        # The coin is tossed even with flipping off, so toggling hflip leaves crops unchanged.
        flip = torch.rand((), generator=generator).item() < 0.5
        return out.flip(-1) if self.hflip and flip else out

    def smallest_crop_side(self) -> float:
        """Short side a frame needs so that the smallest crop still has about img_size pixels."""
        return self.img_size / math.sqrt(self.scale[0])


class EvalTransform:
    """Deterministic view: short side to `eval_short_side(img_size)`, then the centre square."""

    def __init__(self, img_size: int) -> None:
        self.img_size = img_size
        self.short_side = eval_short_side(img_size)

    def __call__(self, clip: torch.Tensor) -> torch.Tensor:
        clip = resize_short_side(clip, self.short_side)
        height, width = clip.shape[-2:]
        return crop(clip, center_box(height, width, self.img_size))
