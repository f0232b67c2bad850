"""The Features tab's options on synthetic token features whose truth is known: a position
component that flips the first PCA colour between time steps (and its removal), the map blended
over the frames, and a foreground found by thresholding the first component."""

from __future__ import annotations

import gradio as gr
import numpy as np
import pytest

from workbench.features import (
    POSITION_MEAN,
    POSITION_OPTIONS,
    POSITION_PROJECT,
    blend,
    foreground_mask,
    pca_rgb,
    project_out_time,
    subtract_position_mean,
    time_share,
)
from workbench.predict import STRIP_PX
from workbench.tab_features import FeatureHandlers
from workbench_fixtures import micro_app_context

T, H, W, D = 2, 4, 4, 16
SQUARE = (slice(1, 3), slice(1, 3))  # the foreground tokens of every time step


def scene(rng: np.random.Generator, square: tuple[slice, slice] = SQUARE) -> np.ndarray:
    """Tokens [T, H, W, D]: an object (a square of one feature) on a background, plus noise."""
    content = np.zeros((T, H, W, D))
    content[:, :, :, 0] = 1.0  # background
    content[:, square[0], square[1], 0] = 0.0
    content[:, square[0], square[1], 1] = 1.0  # object
    return content + 0.05 * rng.normal(size=content.shape)


# What every clip has at each time step: larger than the scene's own contrast, as in a model
# whose tokens carry their position.
POSITION = np.zeros((T, 1, 1, D))
POSITION[0, ..., 5], POSITION[1, ..., 5] = 3.0, -3.0


def red_by_time_and_place(features: np.ndarray) -> np.ndarray:
    """Mean red (component 1) of [background, object] tokens at each time step: [T, 2]."""
    red = pca_rgb(features).rgb[..., 0].astype(float)
    inside = np.zeros((H, W), bool)
    inside[SQUARE] = True
    return np.stack([[red[t][~inside].mean(), red[t][inside].mean()] for t in range(T)])


def test_the_position_component_flips_colours_in_time_until_it_is_removed():
    rng = np.random.default_rng(0)
    tokens = scene(rng) + POSITION
    # Raw: component 1 is time. Every token of step 0 is one colour, every one of step 1 another,
    # object or not: the flip the tab showed.
    assert time_share(tokens) > 0.95
    raw = red_by_time_and_place(tokens)
    assert abs(raw[0, 0] - raw[1, 0]) > 200 and abs(raw[0, 0] - raw[0, 1]) < 30
    # Reference clips: the object anywhere, so their mean at a position is the position itself.
    corners = rng.integers(0, 3, size=(64, 2))
    reference = np.mean(
        [scene(rng, (slice(y, y + 2), slice(x, x + 2))) + POSITION for y, x in corners], axis=0
    )
    for cleaned in (project_out_time(tokens), subtract_position_mean(tokens, reference)):
        assert time_share(cleaned) < 0.05
        red = red_by_time_and_place(cleaned)
        assert abs(red[0, 0] - red[1, 0]) < 30  # the background keeps its colour over time...
        assert abs(red[0, 0] - red[0, 1]) > 150  # ...and the object stands out from it
    with pytest.raises(ValueError, match="does not fit"):
        subtract_position_mean(tokens, reference[:1])


def test_thresholding_the_first_component_finds_the_foreground():
    tokens = scene(np.random.default_rng(1))
    expected = np.zeros((T, H, W), bool)
    expected[:, SQUARE[0], SQUARE[1]] = True
    np.testing.assert_array_equal(foreground_mask(tokens, 0.5), expected)
    np.testing.assert_array_equal(foreground_mask(-tokens, 0.5), expected)  # either sign
    with pytest.raises(ValueError, match="threshold must lie between 0 and 1"):
        foreground_mask(tokens, 1.5)


def test_the_map_blends_over_the_frames():
    frames = np.full((1, 2, 2, 3), 100, np.uint8)
    colours = np.full((1, 2, 2, 3), 200, np.uint8)
    assert blend(frames, colours, 0.0).max() == 100 and blend(frames, colours, 1.0).min() == 200
    assert np.all(blend(frames, colours, 0.25) == 125)
    with pytest.raises(ValueError, match="opacity must be a number"):
        blend(frames, colours, "half")


@pytest.fixture(scope="module")
def tab(tmp_path_factory):
    from workbench.examples import example_names
    from workbench.tab_predict import PredictHandlers

    ctx = micro_app_context(tmp_path_factory.mktemp("runs"))
    key = ctx.registry.default_key()
    clip_key = PredictHandlers(ctx).load_example(example_names()[0], key)[0]
    return FeatureHandlers(ctx), key, clip_key


@pytest.mark.parametrize("position", POSITION_OPTIONS)
def test_the_micro_model_shows_features_with_each_position_option(tab, position):
    handlers, key, clip_key = tab
    picture, _, note = handlers.show(key, clip_key, 0, 1, position=position)
    assert "between time steps in the raw features" in note
    if position in (POSITION_MEAN, POSITION_PROJECT):
        assert note.rstrip(".").endswith("%") and "with " in note
    if position == POSITION_PROJECT:  # the per-step means become equal: nothing left in time
        assert note.endswith(", 0%.")
    assert picture.shape[0] == 2 * STRIP_PX + 4


def test_the_micro_model_blends_and_separates_a_foreground(tab):
    handlers, key, clip_key = tab
    frames_only, _, _ = handlers.show(key, clip_key, 0, 1, opacity=0.0)
    top, bottom = frames_only[:STRIP_PX], frames_only[STRIP_PX + 4 :]
    np.testing.assert_array_equal(top, bottom)  # opacity 0: the map is the frames themselves
    picture, _, note = handlers.show(key, clip_key, 0, 1, foreground=True, threshold=0.5)
    assert "Foreground: " in note and "the rest is black" in note
    assert (picture[STRIP_PX + 4 :].sum(-1) == 0).any()  # background tokens are black


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"position": "sideways"}, "position component 'sideways'"),
        ({"opacity": 2}, "opacity must lie between 0 and 1"),
        ({"foreground": True, "threshold": -0.1}, "threshold must lie between 0 and 1"),
    ],
)
def test_bad_feature_options_are_refused_with_a_message(tab, options, message):
    handlers, key, clip_key = tab
    with pytest.raises(gr.Error, match=message):
        handlers.show(key, clip_key, 0, 1, **options)
