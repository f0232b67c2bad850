"""Clip transforms: shapes, value ranges, one crop for all frames, seeded randomness."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from train.data.base import denormalize_clip, normalize_clip
from train.data.transforms import (
    Box,
    EvalTransform,
    TrainTransform,
    center_box,
    crop,
    eval_short_side,
    random_resized_box,
    resize,
    resize_short_side,
)


def decoder_layout_clip(frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A random uint8 clip [C, T, H, W] laid out like decoder output ([T, H, W, C] memory)."""
    generator = torch.Generator().manual_seed(seed)
    thwc = torch.randint(0, 256, (frames, height, width, 3), dtype=torch.uint8, generator=generator)
    return thwc.permute(3, 0, 1, 2)


def time_ramp_clip(frames: int, height: int, width: int) -> torch.Tensor:
    """Frame t = a fixed random picture + 8 t, so any shared crop keeps that offset per frame."""
    base = torch.randint(0, 128, (3, 1, height, width), dtype=torch.uint8)
    ramp = (torch.arange(frames, dtype=torch.uint8) * 8).view(1, frames, 1, 1)
    return base + ramp


def test_resize_keeps_dtype_layout_and_range() -> None:
    clip = decoder_layout_clip(4, 50, 70)
    out = resize(clip, 20, 30)
    assert out.shape == (3, 4, 20, 30) and out.dtype == torch.uint8
    white = torch.full((3, 2, 33, 47), 255, dtype=torch.uint8)
    assert resize(white, 64, 90).min() == 255  # no overflow wrap-around when enlarging
    assert resize(white, 7, 9).min() == 255


def test_resize_to_same_size_is_a_no_op() -> None:
    clip = decoder_layout_clip(2, 40, 60)
    assert resize(clip, 40, 60) is clip


def test_downscaling_is_antialiased() -> None:
    # A one-pixel checkerboard shrunk 8x must average to grey, not alias to black or white.
    row = torch.arange(64) % 2
    board = ((row[:, None] + row[None, :]) % 2 * 255).to(torch.uint8)
    clip = board.expand(3, 2, 64, 64)
    out = resize(clip, 8, 8).float()
    assert (out - 127.5).abs().max() < 10


@pytest.mark.parametrize(("height", "width"), [(143, 175), (175, 143), (100, 100)])
def test_resize_short_side_keeps_aspect(height: int, width: int) -> None:
    out = resize_short_side(decoder_layout_clip(2, height, width), 64)
    assert min(out.shape[-2:]) == 64
    assert out.shape[-1] / out.shape[-2] == pytest.approx(width / height, rel=0.02)


def test_center_box_and_crop() -> None:
    clip = torch.arange(10 * 12, dtype=torch.int32).view(1, 1, 10, 12)
    box = center_box(10, 12, 4)
    assert box == Box(3, 4, 4, 4)
    assert crop(clip, box)[0, 0, 0, 0] == 3 * 12 + 4


@settings(max_examples=200, deadline=None)
@given(
    height=st.integers(8, 400),
    width=st.integers(8, 400),
    low=st.floats(0.05, 1.0),
    seed=st.integers(0, 2**31),
)
def test_random_resized_box_lies_inside_the_frame(
    height: int, width: int, low: float, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    box = random_resized_box(height, width, (low, 1.0), (0.75, 1.35), generator)
    assert box.top >= 0 and box.top + box.height <= height
    assert box.left >= 0 and box.left + box.width <= width
    assert box.height >= 1 and box.width >= 1


def test_random_resized_box_follows_scale_and_aspect() -> None:
    generator = torch.Generator().manual_seed(0)
    height, width = 300, 400
    for _ in range(300):
        box = random_resized_box(height, width, (0.3, 1.0), (0.75, 1.35), generator)
        area = box.height * box.width / (height * width)
        assert 0.3 - 0.02 <= area <= 1.0
        # Rounding the sides moves the ratio slightly; the fallback box is clamped in range.
        assert 0.75 - 0.02 <= box.width / box.height <= 1.35 + 0.02


def test_random_resized_box_is_seeded() -> None:
    def boxes(seed: int) -> list[Box]:
        generator = torch.Generator().manual_seed(seed)
        return [random_resized_box(90, 160, (0.3, 1.0), (0.75, 1.35), generator) for _ in range(5)]

    assert boxes(1) == boxes(1)
    assert boxes(1) != boxes(2)


def test_train_transform_shape_and_one_crop_for_all_frames() -> None:
    clip = time_ramp_clip(6, 90, 120)
    out = TrainTransform(32)(clip, torch.Generator().manual_seed(3))
    assert out.shape == (3, 6, 32, 32) and out.dtype == torch.uint8
    # Every frame is the same crop of the same picture, shifted by its own constant.
    offsets = out.int() - out[:, :1].int()
    expected = (torch.arange(6) * 8).view(1, 6, 1, 1).expand_as(offsets)
    assert (offsets - expected).abs().max() <= 1


def test_train_transform_same_generator_same_output_different_seed_different_crop() -> None:
    clip = decoder_layout_clip(4, 120, 160)
    transform = TrainTransform(48)
    first = transform(clip, torch.Generator().manual_seed(5))
    again = transform(clip, torch.Generator().manual_seed(5))
    other = transform(clip, torch.Generator().manual_seed(6))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_train_transform_flips_half_the_time_and_flip_off_keeps_crops() -> None:
    clip = decoder_layout_clip(2, 64, 64)
    # Full-frame crops, so the only difference between calls is the flip.
    flipping = TrainTransform(64, scale=(1.0, 1.0), aspect=(1.0, 1.0), hflip=True)
    steady = TrainTransform(64, scale=(1.0, 1.0), aspect=(1.0, 1.0), hflip=False)
    flips = 0
    for seed in range(40):
        out = flipping(clip, torch.Generator().manual_seed(seed))
        plain = steady(clip, torch.Generator().manual_seed(seed))
        assert torch.equal(plain, clip)
        if not torch.equal(out, clip):
            assert torch.equal(out, clip.flip(-1))
            flips += 1
    assert 8 <= flips <= 32


def test_train_transform_rejects_bad_ranges() -> None:
    with pytest.raises(ValueError, match="scale"):
        TrainTransform(32, scale=(0.0, 1.0))
    with pytest.raises(ValueError, match="aspect"):
        TrainTransform(32, aspect=(1.5, 1.0))


def test_smallest_crop_side() -> None:
    assert TrainTransform(224, scale=(0.3, 1.0)).smallest_crop_side() == pytest.approx(
        224 / math.sqrt(0.3)
    )


@pytest.mark.parametrize(("height", "width"), [(143, 175), (300, 200), (20, 30)])
def test_eval_transform_is_centre_crop_of_resized_clip(height: int, width: int) -> None:
    clip = decoder_layout_clip(3, height, width)
    out = EvalTransform(32)(clip)
    assert out.shape == (3, 3, 32, 32) and out.dtype == torch.uint8
    resized = resize_short_side(clip, eval_short_side(32))
    top = (resized.shape[-2] - 32) // 2
    left = (resized.shape[-1] - 32) // 2
    assert torch.equal(out, resized[..., top : top + 32, left : left + 32])


def test_eval_short_side_follows_the_imagenet_ratio() -> None:
    assert eval_short_side(224) == 256


def test_normalisation_round_trips_rgb_clips():
    clip = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
    assert torch.equal(denormalize_clip(normalize_clip(clip)), clip)


@pytest.mark.parametrize("channels", [1, 4])
def test_normalisation_refuses_clips_that_are_not_rgb(channels):
    """ImageNet statistics are RGB's: one channel used to broadcast silently into three."""
    clip = torch.zeros(2, channels, 4, 8, 8, dtype=torch.uint8)
    with pytest.raises(ValueError, match="expected RGB clips"):
        normalize_clip(clip)
    with pytest.raises(ValueError, match="expected RGB clips"):
        denormalize_clip(clip.float())
