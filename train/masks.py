"""Spatio-temporal masks: which tokens the encoder sees (context) and which it must predict.

Strategies
- multiblock (V-JEPA): per mask set, the union of `num_blocks` random 3-D blocks is the target and
  its complement the context. Block shape (scale, aspect, duration) is drawn once per batch and
  mask set, positions per sample. The paper uses two sets: short-range (8 blocks of 15% of the
  frame) and long-range (2 blocks of 70%), each spanning the whole clip in time.
- random_tube (VideoMAE-style ablation): a random `tube_ratio` of spatial positions is masked
  through the whole clip.
- causal: the context is the first `causal_context_frames` frames, the target all later ones.

Collation: overlapping blocks make the union's size differ between samples. The original code
truncates every sample's index list to the batch minimum, silently hiding visible tokens from the
context. Here each sample keeps its exact context and target: index lists are padded to the
batch maximum and a validity mask travels with them; attention ignores padded keys and the loss
ignores padded targets. The logged `mask_ratio` is therefore the ratio the model really trained
on. random_tube and causal masks have equal sizes by construction and carry no padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from train.config import BlockSpec, MaskConfig

Grid = tuple[int, int, int]
MAX_PLACEMENT_TRIES = 20


@dataclass
class MaskSet:
    """One mask set for a batch: padded index lists and their validity, all [B, K]."""

    context_idx: torch.Tensor
    context_valid: torch.Tensor
    target_idx: torch.Tensor
    target_valid: torch.Tensor

    @property
    def batch_size(self) -> int:
        return self.context_idx.shape[0]

    def context_counts(self) -> torch.Tensor:
        return self.context_valid.sum(1)

    def target_counts(self) -> torch.Tensor:
        return self.target_valid.sum(1)

    def masking_ratio(self, num_tokens: int) -> float:
        """Mean fraction of tokens hidden from the encoder, over the batch."""
        return 1.0 - self.context_counts().float().mean().item() / num_tokens

    def padding_fraction(self) -> float:
        """Share of index slots that are padding (compute spent on nothing)."""
        slots = self.context_valid.numel() + self.target_valid.numel()
        return 1.0 - (self.context_valid.sum() + self.target_valid.sum()).item() / slots

    @classmethod
    def from_target_masks(cls, masked: Sequence[torch.Tensor]) -> MaskSet:
        """Per-sample boolean target masks (any shape, True = predict) -> padded index lists."""
        flat = [m.reshape(-1).bool() for m in masked]
        for i, m in enumerate(flat):
            if m.all() or not m.any():
                what = "every token" if m.all() else "no token"
                raise ValueError(
                    f"mask of sample {i} hides {what}: the context and the target must both be "
                    "non-empty"
                )
        context_idx, context_valid = _pad([(~m).nonzero().squeeze(1) for m in flat])
        target_idx, target_valid = _pad([m.nonzero().squeeze(1) for m in flat])
        return cls(context_idx, context_valid, target_idx, target_valid)

    def target_mask(self, num_tokens: int) -> torch.Tensor:
        """Back to boolean [B, N] (True = target)."""
        mask = torch.zeros(self.batch_size, num_tokens, dtype=torch.bool)
        rows = torch.arange(self.batch_size)[:, None].expand_as(self.target_idx)
        mask[rows[self.target_valid], self.target_idx[self.target_valid]] = True
        return mask


def _pad(index_lists: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    longest = max(len(ix) for ix in index_lists)
    index = torch.zeros(len(index_lists), longest, dtype=torch.long)
    valid = torch.zeros(len(index_lists), longest, dtype=torch.bool)
    for row, ix in enumerate(index_lists):
        index[row, : len(ix)] = ix
        valid[row, : len(ix)] = True
    return index, valid


# ---------------------------------------------------------------------------------------------
# Per-sample target masks, as boolean [T, H, W] token grids.


def _uniform(gen: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * torch.rand((), generator=gen).item()


def block_shape(spec: BlockSpec, grid: Grid, gen: torch.Generator) -> tuple[int, int, int]:
    """(t, h, w) in tokens: `spatial_scale` of the frame area at aspect h/w, `temporal_scale`
    of the clip's duration; drawn once per batch so every sample masks similar amounts."""
    t_grid, h_grid, w_grid = grid
    area = _uniform(gen, *spec.spatial_scale) * h_grid * w_grid
    aspect = _uniform(gen, *spec.aspect_ratio)
    h = min(h_grid, max(1, round(math.sqrt(area * aspect))))
    w = min(w_grid, max(1, round(math.sqrt(area / aspect))))
    t = min(t_grid, max(1, round(_uniform(gen, *spec.temporal_scale) * t_grid)))
    return t, h, w


def place_blocks(
    grid: Grid, shape: tuple[int, int, int], num_blocks: int, gen: torch.Generator
) -> torch.Tensor:
    """Union of `num_blocks` blocks of `shape` at random positions; re-placed while it would
    leave no context (possible when large blocks overlap to cover the clip)."""
    t, h, w = shape
    for _ in range(MAX_PLACEMENT_TRIES):
        masked = torch.zeros(grid, dtype=torch.bool)
        for _ in range(num_blocks):
            t0 = torch.randint(0, grid[0] - t + 1, (), generator=gen).item()
            h0 = torch.randint(0, grid[1] - h + 1, (), generator=gen).item()
            w0 = torch.randint(0, grid[2] - w + 1, (), generator=gen).item()
            masked[t0 : t0 + t, h0 : h0 + h, w0 : w0 + w] = True
        if not masked.all():
            return masked
    # A block as large as the clip: leave one random token visible rather than loop forever.
    flat = masked.view(-1)
    flat[torch.randint(0, flat.numel(), (), generator=gen)] = False
    return masked


def random_tube(grid: Grid, ratio: float, gen: torch.Generator) -> torch.Tensor:
    """Exactly round(ratio * H * W) spatial positions masked through all time."""
    spatial = grid[1] * grid[2]
    num_masked = min(spatial - 1, max(1, round(ratio * spatial)))
    masked = torch.zeros(spatial, dtype=torch.bool)
    masked[torch.randperm(spatial, generator=gen)[:num_masked]] = True
    return masked.view(1, grid[1], grid[2]).expand(grid).clone()


def causal(grid: Grid, context_steps: int) -> torch.Tensor:
    masked = torch.zeros(grid, dtype=torch.bool)
    masked[context_steps:] = True
    return masked


# ---------------------------------------------------------------------------------------------
# Batch sampling.

BatchMasker = Callable[[torch.Generator, Sequence[torch.Generator]], list[MaskSet]]


def num_mask_sets(cfg: MaskConfig) -> int:
    if cfg.strategy == "multiblock":
        return len(cfg.multiblock)
    if cfg.strategy == "random_tube":
        return cfg.tube_sets
    return 1


def build_masker(cfg: MaskConfig, grid: Grid, tubelet_size: int) -> BatchMasker:
    """A function (batch generator, per-sample generators) -> one MaskSet per mask set.

    The batch generator draws what all samples share (block shapes); each sample's generator
    draws its own positions, so a sample's mask does not depend on which rank or worker made it.
    """
    grid = tuple(grid)

    def multiblock(batch_gen, sample_gens):
        sets = []
        for spec in cfg.multiblock:
            shape = block_shape(spec, grid, batch_gen)
            masks = [place_blocks(grid, shape, spec.num_blocks, g) for g in sample_gens]
            sets.append(MaskSet.from_target_masks(masks))
        return sets

    def tubes(batch_gen, sample_gens):
        return [
            MaskSet.from_target_masks([random_tube(grid, cfg.tube_ratio, g) for g in sample_gens])
            for _ in range(cfg.tube_sets)
        ]

    def causal_set(batch_gen, sample_gens):
        mask = causal(grid, cfg.causal_context_frames // tubelet_size)
        return [MaskSet.from_target_masks([mask] * len(sample_gens))]

    return {"multiblock": multiblock, "random_tube": tubes, "causal": causal_set}[cfg.strategy]
