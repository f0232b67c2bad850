"""Reconstruction quality inside the masked region, and the two baselines that need no learning.

Metrics compare a filled-in clip (the method's pixels inside the mask, the original outside)
with the original, on uint8 values (data range 255):

* PSNR over the masked pixels only: 10 log10(255^2 / MSE), MSE over masked pixels and channels.
* SSIM (Wang et al. 2004: Gaussian window sigma 1.5 px, 11 x 11, K1 = 0.01, K2 = 0.03, per RGB
  channel, reflect padding at the frame border) computed frame by frame, averaged over the
  masked pixels. Windows near the mask boundary see some original pixels, identical for every
  method, so the comparison between methods stays fair.

Baselines:

* `mean_colour_fill`: every masked pixel gets the mean colour of the clip's visible pixels.
* `nearest_visible_copy`: every masked tubelet is copied from a visible tubelet. The source is
  the co-located one (same row and column) nearest in time, the earlier one on a tie. Where no
  co-located tubelet is visible at any time (masks that span the whole clip: multiblock,
  tubes), it falls back to the visible tubelet nearest in space (Euclidean on the token grid),
  then nearest in time, then earlier, then the first in token order.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from decoder.masks import token_mask_to_pixels
from train.objectives import patchify, unpatchify
from train.tokens import TokenGeometry

SSIM_SIGMA = 1.5
SSIM_WINDOW = 11
SSIM_K1, SSIM_K2 = 0.01, 0.03
DATA_RANGE = 255.0
# PSNR of a perfect reconstruction would be infinite; this floor on the MSE caps it at 100 dB.
MIN_MSE = DATA_RANGE**2 * 1e-10


def psnr_in_region(filled: torch.Tensor, original: torch.Tensor, pixel_mask: torch.Tensor) -> float:
    """filled, original: [3, T, H, W] (uint8 or 0..255 float); pixel_mask: bool [T, H, W]."""
    diff = filled.double() - original.double()
    mse = diff.square()[:, pixel_mask].mean().item()
    return 10.0 * math.log10(DATA_RANGE**2 / max(mse, MIN_MSE))


def _gaussian_window() -> torch.Tensor:
    """The 1-D Gaussian [k]; the 2-D window is its outer product, applied as two passes (a
    dense 11 x 11 float64 convolution took 30 times longer on CPU, for the same result)."""
    x = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    g = torch.exp(-(x**2) / (2 * SSIM_SIGMA**2))
    return g / g.sum()


def ssim_map(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-pixel SSIM of image stacks [N, H, W] (0..255), same shape out."""
    window = _gaussian_window()
    pad = SSIM_WINDOW // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        padded = F.pad(x[:, None], (pad, pad, pad, pad), mode="reflect")
        rows = F.conv2d(padded, window.view(1, 1, 1, -1))
        return F.conv2d(rows, window.view(1, 1, -1, 1))[:, 0]

    a, b = a.double(), b.double()
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = (SSIM_K1 * DATA_RANGE) ** 2, (SSIM_K2 * DATA_RANGE) ** 2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / (
        (mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2)
    )


def ssim_in_region(filled: torch.Tensor, original: torch.Tensor, pixel_mask: torch.Tensor) -> float:
    """SSIM averaged over the masked pixels; inputs as for `psnr_in_region`."""
    c, t, h, w = original.shape
    if min(h, w) <= SSIM_WINDOW // 2:
        raise ValueError(f"frames of {h}x{w} px are too small for an {SSIM_WINDOW}-px SSIM window")
    per_pixel = ssim_map(filled.reshape(c * t, h, w), original.reshape(c * t, h, w))
    return per_pixel.view(c, t, h, w)[:, pixel_mask].mean().item()


def region_scores(
    filled: torch.Tensor, original: torch.Tensor, pixel_mask: torch.Tensor
) -> dict[str, float]:
    return {
        "psnr": psnr_in_region(filled, original, pixel_mask),
        "ssim": ssim_in_region(filled, original, pixel_mask),
    }


# ---------------------------------------------------------------------------------------------
# Baselines.


def mean_colour_fill(clip: torch.Tensor, pixel_mask: torch.Tensor) -> torch.Tensor:
    """uint8 [3, T, H, W]: masked pixels set to the mean colour of the visible pixels."""
    visible = clip[:, ~pixel_mask].double().mean(1)  # [3]
    colour = visible.round().to(torch.uint8)
    filled = clip.clone()
    filled[:, pixel_mask] = colour[:, None]
    return filled


def nearest_visible_sources(token_mask: torch.Tensor) -> torch.Tensor:
    """For every token of a [T', H', W'] mask, the index of the visible token it copies
    (visible tokens copy themselves). The rule is in the module docstring."""
    grid = token_mask.shape
    coords = torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij")
    t, h, w = (c.reshape(-1) for c in coords)
    hidden = token_mask.reshape(-1)
    space = (h[:, None] - h[None, :]).square() + (w[:, None] - w[None, :]).square()
    dt = (t[:, None] - t[None, :]).abs()
    later = (t[None, :] > t[:, None]).long()
    # Lexicographic (space, |dt|, later) as one integer key; argmin keeps the first on ties.
    key = (space * (2 * grid[0] + 2) + 2 * dt + later).double()
    key[:, hidden] = math.inf
    sources = key.argmin(1)
    sources[~hidden] = torch.arange(hidden.numel())[~hidden]
    return sources


def nearest_visible_copy(
    clip: torch.Tensor, token_mask: torch.Tensor, geometry: TokenGeometry
) -> torch.Tensor:
    """uint8 [3, T, H, W]: every masked tubelet replaced by its nearest visible tubelet."""
    tokens = patchify(clip[None], geometry.tubelet_size, geometry.patch_size)[0]
    copied = tokens[nearest_visible_sources(token_mask)]
    return unpatchify(copied[None], geometry.grid, geometry.tubelet_size, geometry.patch_size)[0]


def baseline_fills(
    clip: torch.Tensor, token_mask: torch.Tensor, geometry: TokenGeometry
) -> dict[str, torch.Tensor]:
    pixel_mask = token_mask_to_pixels(token_mask, geometry)
    return {
        "mean colour": mean_colour_fill(clip, pixel_mask),
        "nearest visible copy": nearest_visible_copy(clip, token_mask, geometry),
    }
