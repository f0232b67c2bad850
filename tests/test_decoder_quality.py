"""Region metrics and the two no-learning baselines, on cases with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from decoder.masks import TokenGeometry, token_mask_to_pixels
from decoder.quality import (
    mean_colour_fill,
    nearest_visible_copy,
    nearest_visible_sources,
    psnr_in_region,
    ssim_in_region,
)

GEOMETRY = TokenGeometry(num_frames=4, img_size=32, tubelet_size=2, patch_size=8)  # 2 x 4 x 4


def flat(values: list[int]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.uint8)


def test_psnr_counts_only_the_masked_pixels():
    original = torch.full((3, 4, 32, 32), 100, dtype=torch.uint8)
    mask = torch.zeros(4, 32, 32, dtype=torch.bool)
    mask[:, :8, :8] = True
    filled = original.clone()
    filled[:, mask] = 110  # error 10 inside
    filled[:, ~mask] = 0  # huge error outside: must not count
    assert psnr_in_region(filled, original, mask) == pytest.approx(20 * math.log10(255 / 10))
    assert psnr_in_region(original, original, mask) == pytest.approx(100.0)


def test_ssim_is_one_for_a_perfect_fill_and_lower_for_a_flat_one():
    gen = torch.Generator().manual_seed(0)
    original = torch.randint(0, 256, (3, 4, 32, 32), dtype=torch.uint8, generator=gen)
    mask = torch.zeros(4, 32, 32, dtype=torch.bool)
    mask[:, 8:24, 8:24] = True
    assert ssim_in_region(original, original, mask) == pytest.approx(1.0)
    flat_fill = mean_colour_fill(original, mask)
    # Windows on the mask boundary also see original pixels, hence well above 0.
    assert ssim_in_region(flat_fill, original, mask) < 0.3


def test_mean_colour_uses_visible_pixels_only():
    clip = torch.zeros(3, 4, 32, 32, dtype=torch.uint8)
    mask = torch.zeros(4, 32, 32, dtype=torch.bool)
    mask[:, :16] = True
    clip[:, mask] = 255  # hidden pixels are white, visible ones black
    clip[0, ~mask] = 60
    filled = mean_colour_fill(clip, mask)
    assert torch.equal(filled[:, mask][:, 0], flat([60, 0, 0]))
    assert torch.equal(filled[:, ~mask], clip[:, ~mask])


def test_nearest_visible_prefers_the_co_located_token_nearest_in_time():
    mask = torch.zeros(3, 2, 2, dtype=torch.bool)
    mask[1, 0, 0] = True  # visible above and below in time: the earlier one wins the tie
    mask[1:, 1, 1] = True  # visible at t=0 only, two steps away for t=2
    sources = nearest_visible_sources(mask).view(3, 2, 2)
    index = lambda t, h, w: t * 4 + h * 2 + w
    assert sources[1, 0, 0] == index(0, 0, 0)
    assert sources[1, 1, 1] == index(0, 1, 1)
    assert sources[2, 1, 1] == index(0, 1, 1)
    assert sources[0, 0, 1] == index(0, 0, 1)  # visible tokens copy themselves


def test_nearest_visible_falls_back_to_space_when_the_mask_spans_all_time():
    mask = torch.zeros(2, 1, 4, dtype=torch.bool)
    mask[:, 0, 1:3] = True  # a tube: columns 1-2 hidden at every time step
    sources = nearest_visible_sources(mask).view(2, 1, 4)
    assert sources[0, 0, 1] == 0 and sources[1, 0, 1] == 4  # left neighbour, same time
    assert sources[0, 0, 2] == 3 and sources[1, 0, 2] == 7  # right neighbour, same time


def test_nearest_visible_copy_moves_whole_tubelets():
    clip = torch.zeros(3, 4, 32, 32, dtype=torch.uint8)
    clip[:, 0:2, 0:8, 0:8] = 77  # token (0, 0, 0)
    token_mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    token_mask[1, 0, 0] = True  # hidden at t=1, visible at t=0
    filled = nearest_visible_copy(clip, token_mask, GEOMETRY)
    assert (filled[:, 2:4, 0:8, 0:8] == 77).all()
    outside = ~token_mask_to_pixels(token_mask, GEOMETRY)
    assert torch.equal(filled[:, outside], clip[:, outside])
