"""Decoder masks and clip fitting: families, painted masks, presets, the mask-token rule, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from decoder.clips import channels_first, check_model_clip, fit_clip, fit_pixel_mask
from decoder.masks import (
    FAMILIES,
    LONG_RANGE_FROM,
    PRESETS,
    TemporalExtent,
    check_token_mask,
    mask_index_for,
    painted_token_mask,
    preset_mask,
    sample_mask,
    token_mask_to_pixels,
)
from train.config import MaskConfig
from train.tokens import TokenGeometry

TINY = TokenGeometry(num_frames=8, img_size=64, tubelet_size=2, patch_size=8)  # 4 x 8 x 8


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_hides_something_and_leaves_context(family):
    for seed in range(20):
        mask, index = sample_mask(family, TINY, MaskConfig(), torch.Generator().manual_seed(seed))
        assert mask.shape == (4, 8, 8) and mask.dtype == torch.bool
        assert mask.any() and not mask.all()
        assert index in (0, 1)


def test_family_shapes_in_time():
    gen = torch.Generator().manual_seed(0)
    tube, _ = sample_mask("tube", TINY, MaskConfig(), gen)
    assert (tube == tube[0]).all()  # the same region at every time step
    future, _ = sample_mask("future", TINY, MaskConfig(), gen)
    steps = future.flatten(1).any(1)
    assert not steps[0] and steps[-1] and (future.flatten(1).all(1) == steps).all()
    blob, _ = sample_mask("blob", TINY, MaskConfig(), gen)
    assert not blob.flatten(1).any(1).all()  # a blob covers some time steps, not all
    long_mask, long_index = sample_mask("multiblock-long", TINY, MaskConfig(), gen)
    _, short_index = sample_mask("multiblock-short", TINY, MaskConfig(), gen)
    assert (long_index, short_index) == (1, 0)  # the run's own tokens for its own mask sets
    assert (long_mask == long_mask[0]).all()  # pretraining blocks span the whole clip


def test_same_seed_same_mask_and_presets_reproduce():
    for name in PRESETS:
        a, ia = preset_mask(name, TINY, MaskConfig(), seed=3)
        b, ib = preset_mask(name, TINY, MaskConfig(), seed=3)
        assert torch.equal(a, b) and ia == ib
    with pytest.raises(ValueError, match="unknown preset mask 'blob'"):
        preset_mask("blob", TINY, MaskConfig())


def test_mask_token_rule_by_hidden_share():
    small = torch.zeros(4, 8, 8, dtype=torch.bool)
    small[:, :2, :2] = True
    large = torch.ones(4, 8, 8, dtype=torch.bool)
    large[:, :3, :] = False  # 5/8 hidden
    assert small.float().mean() < LONG_RANGE_FROM <= large.float().mean()
    assert mask_index_for(small, MaskConfig()) == 0
    assert mask_index_for(large, MaskConfig()) == 1
    # A run with one mask token (tubes here) always uses it.
    assert mask_index_for(large, MaskConfig(strategy="random_tube", tube_sets=1)) == 0


def test_painted_mask_maps_pixels_to_their_tokens_and_frames():
    painted = np.zeros((64, 64), dtype=bool)
    painted[9, 17] = True  # one pixel in token row 1, column 2
    mask = painted_token_mask(painted, TemporalExtent.frames(3, 5), TINY)
    expected = torch.zeros(4, 8, 8, dtype=torch.bool)
    expected[1:3, 1, 2] = True  # frames 3..4 touch tubelets 1 (frames 2-3) and 2 (frames 4-5)
    assert torch.equal(mask, expected)
    whole = painted_token_mask(painted, TemporalExtent.whole_clip(), TINY)
    assert whole[:, 1, 2].all() and whole.sum() == 4
    later = painted_token_mask(painted, TemporalExtent.from_frame(6), TINY)
    assert later[:, 1, 2].tolist() == [False, False, False, True]
    pixels = token_mask_to_pixels(mask, TINY)
    assert (
        pixels.shape == (8, 64, 64) and pixels[2, 8:16, 16:24].all() and pixels.sum() == 2 * 2 * 64
    )  # 2 tokens x 2 frames x 8x8


def test_mask_errors_say_what_to_do():
    with pytest.raises(ValueError, match="hides no token"):
        check_token_mask(torch.zeros(4, 8, 8, dtype=torch.bool), TINY)
    with pytest.raises(ValueError, match="hides every token.*leave part of the clip visible"):
        check_token_mask(torch.ones(256, dtype=torch.bool), TINY)
    with pytest.raises(ValueError, match=r"needs \(4, 8, 8\)"):
        check_token_mask(torch.ones(2, 8, 8, dtype=torch.bool), TINY)
    with pytest.raises(ValueError, match="frames are 64x64"):
        painted_token_mask(np.ones((32, 32), bool), TemporalExtent(), TINY)
    with pytest.raises(ValueError, match="does not fit a clip of 8 frames"):
        painted_token_mask(np.ones((64, 64), bool), TemporalExtent.frames(6, 9), TINY)
    with pytest.raises(ValueError, match="unknown mask family"):
        sample_mask("nope", TINY, MaskConfig(), torch.Generator())


def test_fit_clip_accepts_both_layouts_crops_resizes_and_fills():
    frames = np.zeros((5, 48, 96, 3), dtype=np.uint8)
    frames[:, :, 24:72] = 200  # the centre square is bright, the sides dark
    frames[4] = 50
    fitted = fit_clip(frames, num_frames=8, img_size=32)
    assert fitted.shape == (3, 8, 32, 32) and fitted.dtype == torch.uint8
    assert (fitted[:, :4] == 200).all()  # centre crop kept only the bright part
    assert (fitted[:, 4:] == 50).all()  # the last frame repeats to fill 8 frames
    channel_first = torch.as_tensor(frames).permute(3, 0, 1, 2)
    assert torch.equal(fit_clip(channel_first, 8, 32), fitted)
    assert fit_clip(frames, 2, 48).shape == (3, 2, 48, 48)  # first 2 frames, crop only
    assert torch.equal(fit_clip(frames[:, ::-1], 8, 32), fitted)  # a flipped view (symmetric)


def test_clip_errors_name_the_expected_size():
    with pytest.raises(ValueError, match="exactly 8 frames of 64x64 px.*fit_clip"):
        check_model_clip(torch.zeros(3, 8, 32, 32, dtype=torch.uint8), TINY)
    with pytest.raises(ValueError, match="expected uint8"):
        channels_first(torch.zeros(3, 8, 64, 64))
    with pytest.raises(ValueError, match=r"\[T, H, W, 3\]"):
        channels_first(torch.zeros(8, 64, 64, dtype=torch.uint8))


def test_fit_pixel_mask_keeps_thin_strokes():
    painted = np.zeros((100, 200), dtype=bool)
    painted[50, 50:150] = True  # a one-pixel line through the centre square
    fitted = fit_pixel_mask(painted, 32)
    assert fitted.shape == (32, 32) and fitted[16].all() and fitted.sum() == 32
