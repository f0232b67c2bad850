"""Spatio-temporal masks: which tokens the encoder sees (context) and which it must predict.

Strategies
- multiblock (V-JEPA): per mask set, the union of `num_blocks` random 3-D blocks is the target and
  its complement the context. Block shape (scale, aspect, duration) is drawn once per batch and
  mask set, positions per sample. The paper uses two sets: short-range (8 blocks of 15% of the
  frame) and long-range (2 blocks of 70%), each spanning the whole clip in time.
- random_tube (VideoMAE-style ablation): a random `tube_ratio` of spatial positions is masked
  through the whole clip.
- causal: the context is the first `causal_context_frames` frames, the target all later ones.
- future sets (`future_sets`, added to any strategy): causal masks whose context length is drawn
  per batch, so the predictor also learns to extrapolate in time.

Collation: overlapping blocks make the union's size differ between samples. The original code
truncates every sample's index list to the batch minimum, silently hiding visible tokens from the
context. Here each sample keeps its exact context and target, one of two ways:
- padded (the default, and what configs without `mask.equal_sizes` get): index lists are padded
  to the batch maximum and a validity mask travels with them; attention ignores padded keys and
  the loss ignores padded targets. About a fifth of the index slots are padding.
- equal sizes (`mask.equal_sizes: true`): every sample's union is grown or shrunk along its own
  boundary to one size per batch and mask set (see `equalise` below). The final union is the
  whole target and its complement the whole context, so no slot is padding and no token is
  dropped: the model sees or predicts every token of the clip.
Either way the logged `mask_ratio` is the ratio the model really trained on. random_tube and
causal masks have equal sizes by construction and carry no padding.
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
    """One mask set for a batch: padded index lists and their validity, all [B, K].

    Each sample's valid context and target indices partition its tokens (from_target_masks
    builds them so); `has_padding` relies on that.
    """

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

    def has_padding(self, num_tokens: int) -> bool:
        """Whether any index slot is padding, read from shapes alone (no device sync).

        A mask set splits each sample's `num_tokens` tokens into context and target, so the two
        list widths (the batch maxima) sum to `num_tokens` exactly when every sample has the
        same split, and to more when some sample is padded.
        """
        return self.context_idx.shape[1] + self.target_idx.shape[1] != num_tokens

    def attention_validity(
        self, num_tokens: int
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(context_valid, target_valid) for the model, or (None, None) when nothing is padded:
        attention then runs without a mask, and SDPA may pick its fastest kernel."""
        if self.has_padding(num_tokens):
            return self.context_valid, self.target_valid
        return None, None

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


def uniform(gen: torch.Generator, lo: float, hi: float, dtype: torch.dtype | None = None) -> float:
    """Uniform in [lo, hi); `dtype` of the draw (None: torch's default float)."""
    return lo + (hi - lo) * torch.rand((), generator=gen, dtype=dtype).item()


def random_int(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (), generator=gen).item())


def block_shape(spec: BlockSpec, grid: Grid, gen: torch.Generator) -> tuple[int, int, int]:
    """(t, h, w) in tokens: `spatial_scale` of the frame area at aspect h/w, `temporal_scale`
    of the clip's duration; drawn once per batch so every sample masks similar amounts."""
    t_grid, h_grid, w_grid = grid
    area = uniform(gen, *spec.spatial_scale) * h_grid * w_grid
    aspect = uniform(gen, *spec.aspect_ratio)
    h = min(h_grid, max(1, round(math.sqrt(area * aspect))))
    w = min(w_grid, max(1, round(math.sqrt(area / aspect))))
    t = min(t_grid, max(1, round(uniform(gen, *spec.temporal_scale) * t_grid)))
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


def causal_context_steps(cfg: MaskConfig, time_steps: int, tubelet_size: int) -> int:
    """Visible time steps of a causal mask: `causal_context_frames` when it fits a clip of
    `time_steps` (always, for a validated causal run), else the first half (a run trained on
    another strategy, whose causal setting was never checked against its clips)."""
    steps = cfg.causal_context_frames // tubelet_size
    if cfg.causal_context_frames % tubelet_size or not 0 < steps < time_steps:
        steps = time_steps // 2
    return steps


def sample_target_mask(
    cfg: MaskConfig,
    grid: Grid,
    tubelet_size: int,
    set_index: int,
    gen: torch.Generator,
    shape: tuple[int, int, int] | None = None,
) -> torch.Tensor:
    """One sample's target mask [T, H, W] of mask set `set_index` of the strategy `cfg`.

    multiblock: `shape` is the block shape the batch shares (drawn with `gen` when None, for a
    sample on its own); positions are drawn with `gen`. random_tube: the positions too.
    causal: fixed by the config.
    """
    if cfg.strategy == "multiblock":
        spec = cfg.multiblock[set_index]
        shape = shape if shape is not None else block_shape(spec, grid, gen)
        return place_blocks(grid, shape, spec.num_blocks, gen)
    if cfg.strategy == "random_tube":
        return random_tube(grid, cfg.tube_ratio, gen)
    return causal(grid, causal_context_steps(cfg, grid[0], tubelet_size))


# ---------------------------------------------------------------------------------------------
# Equal sizes by construction (`mask.equal_sizes`).
#
# The rule: blocks are placed per sample as above. One target size per batch and mask set is
# drawn with the batch generator: the median union of REFERENCE_UNIONS placements of the batch's
# block shape, so it follows the same distribution as the samples' own unions and does not
# depend on which other samples share the micro-batch. Each sample's union then grows into the
# context cells that touch it, or gives back its cells that touch the context, at random
# positions drawn with the sample's own generator, until it has exactly that size. The result
# is the sample's whole target and its complement the whole context: nothing visible is hidden
# and nothing hidden is shown. When blocks span the clip in time the unit is a tube (one spatial
# position through every time step), so the target stays a set of tubes as the paper's blocks
# are; otherwise single tokens.

REFERENCE_UNIONS = 15  # odd: the median is one of the drawn sizes


def touching(cells: torch.Tensor) -> torch.Tensor:
    """Cells (any dimension) that share a face with a True cell of `cells`."""
    near = torch.zeros_like(cells)
    for dim, length in enumerate(cells.shape):
        if length > 1:
            near.narrow(dim, 1, length - 1).logical_or_(cells.narrow(dim, 0, length - 1))
            near.narrow(dim, 0, length - 1).logical_or_(cells.narrow(dim, 1, length - 1))
    return near


def resize_along_boundary(masked: torch.Tensor, size: int, gen: torch.Generator) -> torch.Tensor:
    """`masked` with exactly `size` True cells: grown into the cells touching it, or shrunk from
    its cells touching the rest, a random choice of boundary cells per round."""
    masked = masked.clone()
    flat = masked.view(-1)
    if not 0 < size < flat.numel():
        raise ValueError(f"target size {size} leaves no context or no target of {flat.numel()}")
    while (count := int(flat.sum())) != size:
        grow = count < size
        # An empty union, or an empty rest, touches nothing: then any cell may change.
        if grow:
            candidates = ~masked & touching(masked) if count else ~masked
        else:
            candidates = masked & touching(~masked) if count < flat.numel() else masked
        cells = candidates.view(-1).nonzero().squeeze(1)
        chosen = cells[torch.randperm(len(cells), generator=gen)[: abs(size - count)]]
        flat[chosen] = grow
    return masked


def spans_time(shape: tuple[int, int, int], grid: Grid) -> bool:
    """Whether blocks of this shape span the clip in time (then the unit of resizing is a tube)."""
    return shape[0] == grid[0]


def equalise(
    masked: torch.Tensor, units: int, through_time: bool, gen: torch.Generator
) -> torch.Tensor:
    """A [T, H, W] target resized to `units` tubes (through_time) or tokens."""
    if not through_time:
        return resize_along_boundary(masked, units, gen)
    spatial = resize_along_boundary(masked.any(0), units, gen)
    return spatial.expand_as(masked).clone()


def common_size(
    grid: Grid, shape: tuple[int, int, int], num_blocks: int, gen: torch.Generator
) -> int:
    """The batch's target size in units (tubes or tokens): the median of reference unions."""
    through_time = spans_time(shape, grid)
    sizes = []
    for _ in range(REFERENCE_UNIONS):
        union = place_blocks(grid, shape, num_blocks, gen)
        sizes.append(int((union.any(0) if through_time else union).sum()))
    units = grid[1] * grid[2] if through_time else math.prod(grid)
    return min(units - 1, max(1, sorted(sizes)[REFERENCE_UNIONS // 2]))


# ---------------------------------------------------------------------------------------------
# Batch sampling.

BatchMasker = Callable[[torch.Generator, Sequence[torch.Generator]], list[MaskSet]]


def num_strategy_sets(cfg: MaskConfig) -> int:
    """Mask sets of the strategy alone, before any future-prediction sets."""
    if cfg.strategy == "multiblock":
        return len(cfg.multiblock)
    if cfg.strategy == "random_tube":
        return cfg.tube_sets
    return 1


def num_mask_sets(cfg: MaskConfig) -> int:
    """Mask sets per batch, which is also the number of the predictor's learned mask tokens."""
    return num_strategy_sets(cfg) + cfg.future_sets


def future_mask_index(cfg: MaskConfig) -> int:
    """The predictor mask token that fits "predict the frames after the context": the first
    future set's when the run trained some, the causal set's for the causal strategy, else the
    strategy's last set (multiblock: the long-range one, the largest hidden region)."""
    if cfg.future_sets:
        return num_strategy_sets(cfg)
    return num_strategy_sets(cfg) - 1


def future_context_steps(cfg: MaskConfig, time_steps: int, tubelet_size: int) -> tuple[int, int]:
    """The range (inclusive, in token time steps) of a future set's context length."""
    if cfg.future_context_frames is None:
        return 1, time_steps - 1
    lo, hi = cfg.future_context_frames
    return lo // tubelet_size, hi // tubelet_size


def build_masker(cfg: MaskConfig, grid: Grid, tubelet_size: int) -> BatchMasker:
    """A function (batch generator, per-sample generators) -> one MaskSet per mask set.

    The batch generator draws what all samples share (block shapes); each sample's generator
    draws its own positions, so a sample's mask does not depend on which rank or worker made it.
    """
    grid = tuple(grid)

    def sample(set_index, gens, shape=None):
        return [sample_target_mask(cfg, grid, tubelet_size, set_index, g, shape) for g in gens]

    def multiblock(batch_gen, sample_gens):
        sets = []
        for index, spec in enumerate(cfg.multiblock):
            shape = block_shape(spec, grid, batch_gen)
            masks = sample(index, sample_gens, shape)
            if cfg.equal_sizes:
                units = common_size(grid, shape, spec.num_blocks, batch_gen)
                through_time = spans_time(shape, grid)
                masks = [equalise(m, units, through_time, g) for m, g in zip(masks, sample_gens)]
            sets.append(MaskSet.from_target_masks(masks))
        return sets

    def one_per_set(batch_gen, sample_gens):  # random_tube and causal: nothing shared
        return [
            MaskSet.from_target_masks(sample(index, sample_gens))
            for index in range(num_strategy_sets(cfg))
        ]

    strategy = multiblock if cfg.strategy == "multiblock" else one_per_set
    if not cfg.future_sets:
        return strategy
    steps_range = future_context_steps(cfg, grid[0], tubelet_size)

    def with_future(batch_gen, sample_gens):
        sets = strategy(batch_gen, sample_gens)
        for _ in range(cfg.future_sets):
            # One context length per batch: every sample of the set has the same sizes.
            steps = random_int(batch_gen, *steps_range)
            sets.append(MaskSet.from_target_masks([causal(grid, steps)] * len(sample_gens)))
        return sets

    return with_future
