"""The contract every clip dataset keeps, so masks, loop and evaluation work on any source.

A dataset is map-style (`__len__`, `__getitem__`). `__getitem__` accepts either

* an `int` index: the deterministic *evaluation view* of that item (no augmentation, the centre
  crop, the first of the evenly spaced clips), or
* a `Draw(index, seed)`: the *training view*, where every random choice (clip start, crop, flip)
  comes from a generator seeded with `seed` alone. The sampler derives `seed` from
  (run seed, step, slot in the global batch), which makes a run independent of the number of
  DataLoader workers and lets a resumed run see exactly the batches it would have seen.

and returns a `Sample` dict:

    {"clip": uint8 tensor [C, T, H, W],      # channels first, then time: what the model eats
     "labels": {name: int, ...},             # may be empty; same names for every item
     "skipped": [message, ...]}              # optional: unreadable items replaced by this one

Normalisation to float happens on the device (`normalize_clip`), so workers ship uint8.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, TypedDict

import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DataError(ValueError):
    """The data cannot be used as given; the message names the file or folder and the reason."""


class Draw(NamedTuple):
    """A training-time request for item `index` with augmentation seeded by `seed`."""

    index: int
    seed: int


class Sample(TypedDict, total=False):
    clip: torch.Tensor
    labels: dict[str, int]
    skipped: list[str]


class ClipDataset(Protocol):
    def __len__(self) -> int: ...

    def __getitem__(self, key: int | Draw) -> Sample: ...


def _imagenet_stats(clip: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """ImageNet mean and std shaped to broadcast over `clip` [..., 3, T, H, W]. The statistics
    are RGB's: any other channel count is refused (a single channel would otherwise broadcast
    silently into three)."""
    if clip.dim() < 4 or clip.shape[-4] != len(IMAGENET_MEAN):
        raise ValueError(
            f"expected RGB clips [..., 3, T, H, W] for ImageNet normalisation, got shape "
            f"{tuple(clip.shape)}"
        )
    channel_shape = (len(IMAGENET_MEAN), 1, 1, 1)
    mean = torch.tensor(IMAGENET_MEAN, device=clip.device, dtype=dtype).view(channel_shape)
    std = torch.tensor(IMAGENET_STD, device=clip.device, dtype=dtype).view(channel_shape)
    return mean, std


def normalize_clip(clip: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [..., 3, T, H, W] -> ImageNet-normalised float."""
    mean, std = _imagenet_stats(clip, dtype)
    return (clip.to(dtype) / 255.0 - mean) / std


def denormalize_clip(clip: torch.Tensor) -> torch.Tensor:
    """Inverse of `normalize_clip`, back to uint8."""
    mean, std = _imagenet_stats(clip, clip.dtype)
    return ((clip * std + mean) * 255.0).round().clamp(0, 255).to(torch.uint8)


def draw_generator(seed: int) -> torch.Generator:
    """The one way a dataset turns a Draw's seed into random numbers."""
    return torch.Generator().manual_seed(seed & 0x7FFF_FFFF_FFFF_FFFF)
