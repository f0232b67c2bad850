"""Region metrics and the two no-learning baselines, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from decoder.masks import token_mask_to_pixels
from decoder.quality import (
    mean_colour_fill,
    nearest_visible_copy,
    nearest_visible_sources,
    psnr_in_region,
    ssim_in_region,
    ssim_map,
)
from train.tokens import TokenGeometry

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


# SSIM against two implementations written apart from decoder/quality.py. scikit-image is not a
# dependency (and not installed offline), so `skimage.metrics.structural_similarity` cannot be
# called here; the first reference is what it computes with gaussian_weights=True, sigma=1.5,
# use_sample_covariance=False: scipy.ndimage's Gaussian filter (truncate 3.5 -> 11 taps) for the
# local moments. Its border mode is "mirror" (d c b | a b c d), which is our reflect padding
# (scikit-image itself uses "reflect", d c b a | a b c d, and leaves the border out of its mean).
# The second is the definition itself (Wang et al. 2004), pixel by pixel with a dense 11 x 11
# window, no separable filtering, no moment identities.
C1, C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2


def scipy_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    def blur(x: np.ndarray) -> np.ndarray:
        return ndimage.gaussian_filter(x, sigma=1.5, truncate=3.5, mode="mirror")

    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    return ((2 * mu_a * mu_b + C1) * (2 * cov + C2)) / (
        (mu_a**2 + mu_b**2 + C1) * (var_a + var_b + C2)
    )


def direct_ssim_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    offsets = np.arange(-5, 6)
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()
    pad_a, pad_b = np.pad(a, 5, mode="reflect"), np.pad(b, 5, mode="reflect")
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        for j in range(a.shape[1]):
            x, y = pad_a[i : i + 11, j : j + 11], pad_b[i : i + 11, j : j + 11]
            mx, my = (window * x).sum(), (window * y).sum()
            vx, vy = (window * (x - mx) ** 2).sum(), (window * (y - my) ** 2).sum()
            cxy = (window * (x - mx) * (y - my)).sum()
            out[i, j] = ((2 * mx * my + C1) * (2 * cxy + C2)) / (
                (mx**2 + my**2 + C1) * (vx + vy + C2)
            )
    return out


def image_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(reconstruction, original) pairs 20 x 28 on 0..255: noise, and structure that SSIM sees."""
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:20, 0:28].astype(np.float64)
    noise = rng.integers(0, 256, (20, 28)).astype(np.float64)
    ramp = 255 * (rows + cols) / (19 + 27)
    checker = 255.0 * ((rows // 4 + cols // 4) % 2)
    return {
        "random vs random": (rng.integers(0, 256, (20, 28)).astype(np.float64), noise),
        "noisy copy": (np.clip(noise + rng.normal(0, 20, noise.shape), 0, 255), noise),
        "brighter ramp": (np.clip(ramp + 30, 0, 255), ramp),
        "blurred checkerboard": (ndimage.uniform_filter(checker, 3), checker),
        "shifted checkerboard": (np.roll(checker, 2, axis=1), checker),
        "flat vs checkerboard": (np.full_like(checker, checker.mean()), checker),
    }


@pytest.mark.parametrize("name", list(image_pairs()))
def test_ssim_map_matches_library_filtering_and_the_definition(name):
    a, b = image_pairs()[name]
    ours = ssim_map(torch.from_numpy(a)[None], torch.from_numpy(b)[None])[0].numpy()
    np.testing.assert_allclose(ours, scipy_ssim_map(a, b), atol=1e-9)
    np.testing.assert_allclose(ours, direct_ssim_map(a, b), atol=1e-9)


def test_ssim_in_region_is_the_reference_map_averaged_over_the_mask():
    pairs = image_pairs()
    (a0, b0), (a1, b1), (a2, b2) = (
        pairs[k] for k in ("noisy copy", "brighter ramp", "random vs random")
    )
    filled = torch.from_numpy(np.stack([a0, a1, a2])).view(3, 1, 20, 28)  # 3 channels, 1 frame
    original = torch.from_numpy(np.stack([b0, b1, b2])).view(3, 1, 20, 28)
    mask = torch.zeros(1, 20, 28, dtype=torch.bool)
    mask[0, 3:15, 10:26] = True
    region = mask[0].numpy()
    expected = np.mean(
        [direct_ssim_map(a, b)[region].mean() for a, b in ((a0, b0), (a1, b1), (a2, b2))]
    )
    assert ssim_in_region(filled, original, mask) == pytest.approx(expected, abs=1e-9)
