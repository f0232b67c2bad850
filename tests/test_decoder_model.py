"""The decoder: shapes, padding, and the property that it never sees the visible pixels."""

from __future__ import annotations

import inspect

import torch

from decoder.inference import decode_clips, region_latents
from decoder.latents import predicted_latents, token_mask_set
from decoder.masks import token_mask_to_pixels
from decoder.model import PixelDecoder
from decoder_fixtures import micro_decoder, micro_pretrained, random_clip
from train.data import normalize_clip
from train.eval.source import initial_encoder
from train.pretrained import initial_models
from train.tokens import TokenGeometry

GRID = (2, 4, 4)


def two_masks() -> torch.Tensor:
    """Two token masks of different sizes (so the batch needs padding)."""
    masks = torch.zeros(2, *GRID, dtype=torch.bool)
    masks[0, :, 1:3, 1:3] = True  # a 2x2 tube: 8 tokens
    masks[1, 1:, :, 2:] = True  # the right half of the second time step: 8 tokens
    masks[1, 0, 0, 0] = True  # plus one: 9 tokens
    return masks


def test_decoder_output_shape_and_decoded_clip_shape():
    pretrained = micro_pretrained()
    decoder = micro_decoder(pretrained)
    clips = torch.stack([random_clip(seed=0), random_clip(seed=1)])
    masks = two_masks()
    sets = token_mask_set(masks)
    latents = region_latents(
        pretrained, normalize_clip(clips), sets, torch.tensor([0, 1]), "predicted"
    )
    assert latents.shape == (2, 9, 32)
    assert decoder(latents, sets.target_idx, sets.target_valid).shape == (2, 9, 2 * 8 * 8 * 3)
    filled = decode_clips(pretrained, decoder, clips, masks, torch.tensor([0, 1]))
    assert filled.shape == clips.shape and filled.dtype == torch.uint8
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    for f, c, m in zip(filled, clips, masks):
        outside = ~token_mask_to_pixels(m, geometry)
        assert torch.equal(f[:, outside], c[:, outside])  # visible pixels untouched
        assert not torch.equal(f[:, ~outside], c[:, ~outside])  # the region was decoded


def test_decoder_takes_latents_and_positions_only():
    parameters = list(inspect.signature(PixelDecoder.forward).parameters)
    assert parameters == ["self", "latents", "target_idx", "target_valid", "grid"]


def test_predicted_latents_ignore_the_masked_pixels_and_follow_the_visible_ones():
    """The decoder's input is the predictor's output, which is a function of the context
    tokens only: rewriting every hidden pixel changes nothing, bit for bit; rewriting visible
    pixels does change it (so this test can fail)."""
    pretrained = micro_pretrained(scrambled=True)
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    clips = torch.stack([random_clip(seed=0), random_clip(seed=1)])
    masks = two_masks()
    hidden = torch.stack([token_mask_to_pixels(m, geometry) for m in masks])[:, None]
    other = torch.stack([random_clip(seed=7), random_clip(seed=8)])
    sets = token_mask_set(masks)
    index = torch.tensor([1, 0])

    def latents(c: torch.Tensor) -> torch.Tensor:
        return predicted_latents(pretrained, normalize_clip(c), sets, index)

    base = latents(clips)
    assert torch.equal(latents(torch.where(hidden, other, clips)), base)
    assert (latents(torch.where(hidden, clips, other)) - base).abs().mean() > 1e-3

    decoder = micro_decoder(pretrained)
    decoded = decode_clips(pretrained, decoder, clips, masks, index)
    repainted = decode_clips(pretrained, decoder, torch.where(hidden, other, clips), masks, index)
    assert torch.equal(decoded[hidden.expand_as(clips)], repainted[hidden.expand_as(clips)])


def test_a_sample_decodes_the_same_alone_and_in_a_padded_batch():
    pretrained = micro_pretrained()
    decoder = micro_decoder(pretrained)
    clips = torch.stack([random_clip(seed=0), random_clip(seed=1)])
    masks = two_masks()
    together = decode_clips(pretrained, decoder, clips, masks, 0)
    alone = decode_clips(pretrained, decoder, clips[:1], masks[:1], 0)
    assert (together[0].int() - alone[0].int()).abs().max() <= 1  # rounding to uint8 only


def test_mask_token_changes_the_prediction():
    pretrained = micro_pretrained(scrambled=True)  # fresh mask tokens are zeros, all alike
    clips = random_clip()[None]
    sets = token_mask_set(two_masks()[:1])
    a = predicted_latents(pretrained, normalize_clip(clips), sets, 0)
    b = predicted_latents(pretrained, normalize_clip(clips), sets, 1)
    assert (a - b).abs().mean() > 0.05


def test_the_untrained_reference_is_the_run_as_initialised():
    pretrained = micro_pretrained()
    untrained = initial_models(pretrained.config)
    initial = initial_encoder(pretrained.config)  # the core evaluation's own reconstruction
    for name, value in initial.state_dict().items():
        assert torch.equal(untrained.encoder.state_dict()[name], value), name
        assert torch.equal(untrained.target_encoder.state_dict()[name], value), name
    state = torch.get_rng_state()
    initial_models(pretrained.config)
    assert torch.equal(torch.get_rng_state(), state)  # the caller's randomness is untouched


def test_micro_geometry_is_what_the_decoder_tests_assume():
    pretrained = micro_pretrained()
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    assert geometry.grid == (2, 4, 4)
    assert geometry.patch_dim == 2 * 8 * 8 * 3
    assert len(pretrained.predictor.mask_tokens) == 2
    assert micro_decoder(pretrained)(torch.zeros(1, 3, 32), torch.tensor([[0, 5, 31]])).shape == (
        1,
        3,
        geometry.patch_dim,
    )
