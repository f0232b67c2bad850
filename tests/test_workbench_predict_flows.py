"""The Predict tab's flows that must not lose work or hide what a result means: the painted
region survives reloads of the editor, an error leaves the previous results in place, the
surprise heatmap holds the per-token errors the surprise curve averages, and two models compare
on the same clip and mask (or say why they cannot)."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest
import torch

from decoder.bundle import without_decoder
from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.render import render_prediction
from train.data import normalize_clip
from train.pretrained import resized_config
from workbench.examples import example_names
from workbench.masks_ui import MaskChoice, painted_pixels, token_mask
from workbench.model_pair import compare_models, pair_problem
from workbench.paint_memory import KEPT_NOTE, PAINT_ALPHA, editor_value, kept_paint, reproject
from workbench.predict import EDITOR_PX, STRIP_PX, clip_window, predict
from workbench.surprise_map import (
    COLOURS,
    HEAT_OPACITY,
    OUTSIDE_BRIGHTNESS,
    heat_colours,
    heatmap_frames,
)
from workbench.tab_predict import RESULT_OUTPUTS, PredictHandlers
from workbench_fixtures import (
    micro_app_context,
    moving_square_video,
    painted_editor,
    write_micro_bundle,
)

SECOND = "run: micro2/decoder"


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    write_micro_bundle(runs / "micro2" / "decoder" / "bundle.safetensors", seed=1)
    return micro_app_context(runs)


@pytest.fixture(scope="module")
def key(ctx):
    return ctx.registry.default_key()


@pytest.fixture(scope="module")
def second_key(ctx):
    return next(key for label, key in ctx.registry.choices() if label == SECOND)


@pytest.fixture(scope="module")
def clip_key(ctx, key):
    return PredictHandlers(ctx).load_example(example_names()[0], key)[0]


def _box(size: int, top: int, left: int, bottom: int, right: int) -> np.ndarray:
    paint = np.zeros((size, size), bool)
    paint[top:bottom, left:right] = True
    return paint


# ---------------------------------------------------------------------------------------------
# The painted region across reloads.


def test_a_painted_region_is_reprojected_onto_the_same_share_of_a_new_frame():
    small = _box(64, 8, 16, 24, 48)  # rows 8-24, columns 16-48 of 64
    big = reproject(small, EDITOR_PX)
    np.testing.assert_array_equal(big, _box(EDITOR_PX, 40, 80, 120, 240))
    assert reproject(big, EDITOR_PX) is big  # already the editor's size: unchanged


def test_the_new_editor_value_carries_the_region_over_the_new_frame():
    frame = np.full((EDITOR_PX, EDITOR_PX, 3), 90, np.uint8)
    paint = _box(EDITOR_PX, 0, 0, 100, 50)
    value = editor_value(frame, paint)
    np.testing.assert_array_equal(value["background"][..., :3], frame)
    np.testing.assert_array_equal(painted_pixels(value), paint)
    layer = value["layers"][0]
    assert (layer[paint, 3] == PAINT_ALPHA).all() and (layer[~paint] == 0).all()
    # The composite shows the paint (see-through) over the frame, the frame elsewhere.
    assert (value["composite"][paint, 0] > 150).all()
    np.testing.assert_array_equal(value["composite"][~paint][:, :3], frame[~paint])
    assert editor_value(frame)["layers"] == []


def test_the_editors_own_layer_wins_over_the_kept_region_even_when_erased():
    stored = _box(EDITOR_PX, 0, 0, 50, 50)
    painted = painted_editor(EDITOR_PX, (100, 100, 200, 200))
    np.testing.assert_array_equal(kept_paint(painted, stored), _box(EDITOR_PX, 100, 100, 200, 200))
    erased = painted_editor(EDITOR_PX, (0, 0, 0, 0))  # a layer with nothing left on it
    assert kept_paint(erased, stored) is None
    # An editor that has not shown its layer yet (a reload in flight): the kept region.
    no_layer = {**painted, "layers": []}
    np.testing.assert_array_equal(kept_paint(no_layer, stored), stored)
    assert kept_paint(None, None) is None


def test_painting_survives_a_frame_change_and_a_new_clip(ctx, key, clip_key):
    handlers = PredictHandlers(ctx)
    painted = painted_editor(EDITOR_PX, (0, 0, 160, 160))
    paint = handlers.keep_paint(painted, None)
    # Another frame to paint on: a new picture, the same region over it.
    *_, editor, kept = handlers.refresh_window(key, clip_key, 0, 1, 3, paint)
    first_frame = handlers.refresh_window(key, clip_key, 0, 1, 0, paint)[4]
    assert not np.array_equal(editor["background"], first_frame["background"])
    np.testing.assert_array_equal(painted_pixels(editor), _box(EDITOR_PX, 0, 0, 160, 160))
    np.testing.assert_array_equal(kept, paint)
    # Predict uses the reloaded editor as it is: no repainting.
    summary = handlers.predict(key, clip_key, 0, 1, editor)[5]
    assert "Masked 25% of the tokens" in summary
    # A new clip keeps it too, and says so.
    loaded = handlers.load_example(example_names()[1], key, paint)
    assert KEPT_NOTE in loaded[1]
    np.testing.assert_array_equal(painted_pixels(loaded[6]), _box(EDITOR_PX, 0, 0, 160, 160))


# ---------------------------------------------------------------------------------------------
# Errors beside the results.


def test_an_error_leaves_the_previous_results_in_place(ctx, key, clip_key):
    handlers = PredictHandlers(ctx)
    painted = painted_editor(EDITOR_PX, (0, 0, 160, 160))
    shown = handlers.predict_page(key, clip_key, 0, 1, painted, progress=lambda *a, **k: None)
    assert len(shown) == RESULT_OUTPUTS + 1
    assert "Masked" in shown[5] and shown[-1]["visible"] is False
    assert shown[8]["visible"] and shown[8]["value"].shape[0] == STRIP_PX  # the heatmap
    empty = painted_editor(EDITOR_PX, (0, 0, 0, 0))
    refused = handlers.predict_page(key, clip_key, 0, 1, empty, progress=lambda *a, **k: None)
    # Every result stays as it was; the status line says what went wrong and what to do.
    assert all(output == gr.skip() for output in refused[:RESULT_OUTPUTS])
    status = refused[-1]
    assert status["visible"] and "nothing is painted" in status["value"]
    assert "paint the region" in status["value"]
    # The API's predict still answers a mistake as an error.
    with pytest.raises(gr.Error, match="nothing is painted"):
        handlers.predict(key, clip_key, 0, 1, empty)


def test_a_bad_upload_leaves_the_loaded_clip_and_its_paint_in_place(ctx, key, tmp_path):
    handlers = PredictHandlers(ctx)
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    page = handlers.beside(handlers.load_upload, 9, "The video could not be loaded")
    outputs = page(str(text), key, _box(EDITOR_PX, 0, 0, 50, 50))
    assert all(output == gr.skip() for output in outputs[:9])
    status = outputs[-1]
    assert status["visible"] and status["value"].startswith("**The video could not be loaded:**")
    assert "notes.mp4 cannot be read" in status["value"]
    # A good one clears the status line.
    loaded = page(str(moving_square_video(tmp_path / "square.mp4")), key, None)
    assert loaded[-1]["visible"] is False and "square.mp4" in loaded[1]


# ---------------------------------------------------------------------------------------------
# The surprise heatmap.


@pytest.fixture(scope="module")
def rendered(ctx, key, clip_key):
    bundle = ctx.registry.load(key)
    window = clip_window(ctx.clips.get(clip_key).frames, 0, 1, bundle.num_frames)
    mask, index = token_mask(bundle, MaskChoice(), painted_editor(EDITOR_PX, (0, 0, 160, 320)))
    clip = bundle.fit_clip(window)
    return bundle, clip, render_prediction(bundle, clip, mask, index)


def test_the_heatmap_holds_the_per_token_errors_the_surprise_curve_averages(rendered):
    bundle, clip, shown = rendered
    # Recomputed here from the latents, token by token: the rendered errors are these.
    masks = token_mask_set(torch.from_numpy(shown.token_mask)[None])
    clips = normalize_clip(clip[None])
    predicted = predicted_latents(bundle.pretrained, clips, masks, shown.mask_index)[0]
    target = target_latents(bundle.pretrained, clips, masks)[0]
    errors = shown.token_errors
    flat = errors.reshape(-1)[masks.target_idx[0].numpy()]
    np.testing.assert_allclose(flat, (predicted - target).abs().mean(-1).numpy(), rtol=1e-5)
    assert errors.shape == bundle.grid
    np.testing.assert_array_equal(np.isnan(errors), ~shown.token_mask)
    per_step = np.nanmean(errors.reshape(errors.shape[0], -1), axis=1)
    np.testing.assert_allclose(per_step, shown.surprise_per_step, rtol=1e-5)


def test_a_model_without_a_decoder_shows_the_same_heatmap(ctx, key, clip_key, rendered):
    bundle, _, shown = rendered
    bare = without_decoder(bundle.pretrained, {"pretrain": {}, "decoder": None})
    window = clip_window(ctx.clips.get(clip_key).frames, 0, 1, bundle.num_frames)
    editor = painted_editor(EDITOR_PX, (0, 0, 160, 320))
    latents = predict(bare, window, MaskChoice(), editor, write_videos=False)
    decoded = predict(bundle, window, MaskChoice(), editor, write_videos=False)
    assert latents.comparison is None and latents.videos == {} == decoded.videos
    # The same models, the same mask: the same per-token errors, decoder or not.
    np.testing.assert_allclose(latents.token_errors, decoded.token_errors, rtol=1e-5)
    assert latents.heatmap.shape == shown.original.shape
    assert latents.heatmap_scale == pytest.approx(np.nanmax(decoded.token_errors))


def test_heatmap_frames_colour_the_masked_tokens_and_dim_the_rest(rendered):
    bundle, _, shown = rendered
    errors = np.full(bundle.grid, np.nan, np.float32)
    errors[0, 0, 0], errors[1, 0, 0] = 0.0, 2.0  # the top-left token, first and second step
    frames = shown.original
    heat = heatmap_frames(frames, errors, bundle.geometry, scale=2.0)
    patch, tubelet = bundle.geometry.patch_size, bundle.geometry.tubelet_size
    dimmed = np.round(frames.astype(float) * OUTSIDE_BRIGHTNESS).astype(np.uint8)
    np.testing.assert_array_equal(heat[:, patch:, patch:], dimmed[:, patch:, patch:])

    # No error: the darkest colour over the frame; the largest: the brightest.
    def over(colour: np.ndarray, pixel: np.ndarray) -> np.ndarray:
        return np.round(HEAT_OPACITY * colour + (1 - HEAT_OPACITY) * pixel).astype(np.uint8)

    darkest, brightest = over(COLOURS[0], frames[0, 0, 0]), over(COLOURS[-1], frames[tubelet, 0, 0])
    np.testing.assert_array_equal(heat[0, 0, 0], darkest)
    np.testing.assert_array_equal(heat[tubelet, 0, 0], brightest)
    # Values past the scale clip to its end; the colours brighten with the error.
    np.testing.assert_array_equal(heat_colours(np.array([5.0]), 2.0)[0], COLOURS[-1])
    brightness = heat_colours(np.linspace(0, 1, 11), 1.0).astype(int).sum(-1)
    assert (np.diff(brightness) > 0).all()


# ---------------------------------------------------------------------------------------------
# Two models.


def test_two_models_compare_on_the_same_clip_and_mask(ctx, key, second_key, clip_key):
    first, second = ctx.registry.load(key), ctx.registry.load(second_key)
    window = clip_window(ctx.clips.get(clip_key).frames, 0, 1, first.num_frames)
    editor = painted_editor(EDITOR_PX, (0, 0, 160, 160))
    pair = compare_models(first, second, ("A", "B"), window, MaskChoice(), editor)
    alone = predict(first, window, MaskChoice(), editor)
    a, b = pair.predictions
    np.testing.assert_array_equal(a.rendered.token_mask, b.rendered.token_mask)
    np.testing.assert_array_equal(a.rendered.composited, alone.rendered.composited)
    assert a.mean_surprise != b.mean_surprise  # two different models
    assert pair.scale == pytest.approx(max(np.nanmax(a.token_errors), np.nanmax(b.token_errors)))
    rows = 6  # original, masked, and each model's prediction and heatmap
    assert pair.strip.shape[0] == rows * STRIP_PX + (rows - 1) * 4
    table = pair.table
    assert "| A | " in table and "| B | " in table and table.count(" dB") == 6


def test_a_model_that_cannot_be_compared_says_what_to_do(ctx, key):
    bundle = ctx.registry.load(key)
    bare = without_decoder(bundle.pretrained, {"pretrain": {}, "decoder": None})
    message = pair_problem(bundle, bare, ("starter", "my run"))
    assert message.startswith("my run has no pixel decoder") and "fit" in message
    smaller = bundle.with_config(resized_config(bundle.config, None, 16))
    message = pair_problem(bundle, smaller, ("starter", "my run"))
    assert "16 px" in message and "32 px" in message and "same clip size" in message
    assert pair_problem(bundle, bundle, ("a", "b")) is None


def test_the_compare_button_fills_the_pair_or_says_why_not(ctx, key, second_key, clip_key):
    handlers = PredictHandlers(ctx)
    editor = painted_editor(EDITOR_PX, (0, 0, 160, 160))
    picture, table = handlers.compare_pair(key, second_key, clip_key, 0, 1, editor)
    assert picture["visible"] and picture["value"].shape[0] == 6 * STRIP_PX + 5 * 4
    assert SECOND in table and "run: micro/decoder" in table
    for other, words in [(None, "pick a second model"), (key, "is the model in use")]:
        picture, message = handlers.compare_pair(key, other, clip_key, 0, 1, editor)
        assert picture["visible"] is False and message.startswith("**Cannot compare:**")
        assert words in message
    empty = painted_editor(EDITOR_PX, (0, 0, 0, 0))
    assert "nothing is painted" in handlers.compare_pair(key, second_key, clip_key, 0, 1, empty)[1]
    listed = handlers.model_choices(second_key)
    assert listed["value"] == second_key and len(listed["choices"]) == 2
    assert handlers.model_choices("/gone")["value"] is None
