"""Equal-size multi-block masks (`mask.equal_sizes`): the rule's promises, and the model running
them without an attention mask."""

from __future__ import annotations

import dataclasses
import statistics

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from train.config import BlockSpec, MaskConfig, load_config
from train.data.base import draw_generator
from train.loop import train
from train.masks import MaskSet, build_masker, resize_along_boundary, touching
from train.models import vit
from train.monitor import read_metrics

EQUAL = MaskConfig(equal_sizes=True)
# Documented in docs/training.md: the mean ratio of equal-size masks stays within this distance
# of the padded (un-equalised) masks' mean ratio, per mask set.
RATIO_BAND = 0.02


def draw(cfg: MaskConfig, grid, step: int, slots) -> list[MaskSet]:
    """The masks of `slots` at `step`, seeded as train/batches.py seeds them."""
    masker = build_masker(cfg, grid, tubelet_size=2)
    return masker(draw_generator(step), [draw_generator(1000 * step + s) for s in slots])


def target_grids(mask_set: MaskSet, grid) -> torch.Tensor:
    return mask_set.target_mask(grid[0] * grid[1] * grid[2]).view(-1, *grid)


@settings(max_examples=30, deadline=None)
@given(
    grid=st.tuples(st.integers(1, 6), st.integers(2, 12), st.integers(2, 12)),
    batch=st.integers(1, 6),
    step=st.integers(0, 10_000),
)
def test_every_token_is_context_or_target_and_sizes_are_equal(grid, batch, step):
    num_tokens = grid[0] * grid[1] * grid[2]
    for mask_set in draw(EQUAL, grid, step, range(batch)):
        assert mask_set.padding_fraction() == 0.0
        assert not mask_set.has_padding(num_tokens)
        assert mask_set.context_valid.all() and mask_set.target_valid.all()
        for ctx, tgt in zip(mask_set.context_idx.tolist(), mask_set.target_idx.tolist()):
            assert ctx and tgt
            assert not set(ctx) & set(tgt)
            assert sorted(ctx + tgt) == list(range(num_tokens))


@settings(max_examples=30, deadline=None)
@given(
    grid=st.tuples(st.integers(1, 6), st.integers(2, 12), st.integers(2, 12)),
    batch=st.integers(1, 6),
    step=st.integers(0, 10_000),
)
def test_padding_is_read_from_shapes_as_the_validity_says(grid, batch, step):
    num_tokens = grid[0] * grid[1] * grid[2]
    for mask_set in draw(MaskConfig(), grid, step, range(batch)):
        padded = bool((~mask_set.context_valid).any() or (~mask_set.target_valid).any())
        assert mask_set.has_padding(num_tokens) == padded
        context_valid, target_valid = mask_set.attention_validity(num_tokens)
        assert (context_valid is None) == (target_valid is None) == (not padded)


def test_targets_stay_tubes_when_blocks_span_the_clip():
    grid = (4, 8, 8)
    for mask_set in draw(EQUAL, grid, step=3, slots=range(8)):
        targets = target_grids(mask_set, grid)
        assert (targets == targets[:, :1]).all()  # each spatial position: all time steps or none


def test_short_blocks_resize_token_by_token():
    cfg = MaskConfig(
        multiblock=[BlockSpec(num_blocks=3, temporal_scale=(0.5, 0.5))], equal_sizes=True
    )
    (mask_set,) = draw(cfg, (4, 8, 8), step=5, slots=range(6))
    assert mask_set.padding_fraction() == 0.0


def test_ratios_stay_in_the_documented_band_of_the_padded_masks():
    grid = (4, 8, 8)
    num_tokens = grid[0] * grid[1] * grid[2]
    padded_cfg = dataclasses.replace(EQUAL, equal_sizes=False)
    ratios = {False: [[], []], True: [[], []]}
    for step in range(40):
        for equal, cfg in ((False, padded_cfg), (True, EQUAL)):
            for k, mask_set in enumerate(draw(cfg, grid, step, range(16))):
                ratios[equal][k].append(mask_set.masking_ratio(num_tokens))
    for k in range(2):
        padded, equal = statistics.mean(ratios[False][k]), statistics.mean(ratios[True][k])
        assert abs(equal - padded) < RATIO_BAND, (k, padded, equal)


def test_a_sample_mask_depends_on_seed_step_and_slot_only():
    grid = (4, 8, 8)
    whole = draw(EQUAL, grid, step=7, slots=range(8))
    again = draw(EQUAL, grid, step=7, slots=range(8))
    halves = [draw(EQUAL, grid, step=7, slots=range(0, 4)), draw(EQUAL, grid, 7, range(4, 8))]
    for k, mask_set in enumerate(whole):
        assert torch.equal(mask_set.target_idx, again[k].target_idx)
        joined = torch.cat([halves[0][k].target_idx, halves[1][k].target_idx])
        assert torch.equal(mask_set.target_idx, joined)  # as on 2 ranks or 2 micro-batches
    other_step = draw(EQUAL, grid, step=8, slots=range(8))
    assert not torch.equal(whole[0].target_idx, other_step[0].target_idx)


def test_configs_without_the_key_keep_todays_padded_masks():
    cfg = load_config("tiny_cpu")
    assert cfg.mask.equal_sizes is False
    grid = (4, 8, 8)
    today = draw(MaskConfig(), grid, step=2, slots=range(12))
    assert any(m.padding_fraction() > 0 for m in today)
    assert any(m.has_padding(grid[0] * grid[1] * grid[2]) for m in today)


def test_resize_grows_and_shrinks_along_the_boundary():
    cells = torch.zeros(6, 6, dtype=torch.bool)
    cells[2:4, 2:4] = True
    grown = resize_along_boundary(cells, 7, draw_generator(0))
    assert grown.sum() == 7 and grown[cells].all()
    assert (grown & ~cells & ~touching(cells)).sum() == 0  # new cells touch the old union
    shrunk = resize_along_boundary(cells, 2, draw_generator(0))
    assert shrunk.sum() == 2 and not (shrunk & ~cells).any()
    # A union that covers everything (or nothing) has no boundary: any cell may change.
    assert (
        resize_along_boundary(torch.ones(3, 3, dtype=torch.bool), 4, draw_generator(0)).sum() == 4
    )
    assert (
        resize_along_boundary(torch.zeros(3, 3, dtype=torch.bool), 2, draw_generator(0)).sum() == 2
    )
    with pytest.raises(ValueError, match="no context"):
        resize_along_boundary(cells, 36, draw_generator(0))


def test_unpadded_sets_run_without_an_attention_mask(micro_overrides, monkeypatch):
    masks_seen = []
    original = vit.key_padding_mask

    def recording(valid):
        masks_seen.append(valid is not None)
        return original(valid)

    monkeypatch.setattr(vit, "key_padding_mask", recording)
    cfg = load_config("tiny_cpu", micro_overrides("steps=2", "mask.equal_sizes=true"))
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert records[0]["padding"] == 0.0
    assert masks_seen and not any(masks_seen)
