"""The Physics tab's handlers with the micro bundle: a pair side by side with its surprise
curves, the surprise over a loaded clip, and bad input as messages."""

from __future__ import annotations

import av
import gradio as gr
import numpy as np
import pytest

from test_workbench_fixtures import micro_app_context
from workbench.examples import example_names
from workbench.tab_physics import PhysicsHandlers
from workbench.tab_predict import PredictHandlers


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return micro_app_context(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def key(ctx):
    return ctx.registry.default_key()


def _frames(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_a_pair_shows_both_twins_their_curves_and_the_violation(ctx, key):
    movie, figure, note = PhysicsHandlers(ctx).show_pair(key, "continuity", 3)
    frames = _frames(movie)
    assert len(frames) == 8  # the micro model's 4 frames, twice
    height, width = frames.shape[1:3]
    assert width > 2 * height - 10  # two clips side by side
    names = [trace.name for trace in figure.data]
    assert names == ["possible", "impossible"]
    possible, impossible = (np.asarray(t.y, dtype=float) for t in figure.data)
    assert np.isnan(possible[:2]).all() and np.isfinite(possible[2:]).all()
    k = int(note.split("from frame ")[1].split(" ")[0])
    # Frames 2-3 are predicted only by the first window (frames 0-3), which the twins share
    # when the law breaks at frame 4 or later.
    assert k < 4 or np.array_equal(possible[2:4], impossible[2:4])
    assert not np.array_equal(possible[k:], impossible[k:])
    assert "**continuity** (jump)" in note and "Mean surprise" in note
    assert figure.layout.shapes  # the violation line


def test_surprise_over_a_loaded_clip_covers_it_all(ctx, key):
    clip_key = PredictHandlers(ctx).load_example(example_names()[0], key)[0]
    figure, note = PhysicsHandlers(ctx).video_curve(key, clip_key, 1)
    values = np.asarray(figure.data[0].y, dtype=float)
    video = ctx.clips.get(clip_key)
    assert len(values) == len(video.frames)
    assert np.isfinite(values[2:]).all() and "Most surprising: frame" in note


@pytest.mark.parametrize(
    ("law", "number", "message"),
    [("gravity", 0, "choose one of permanence"), ("inertia", 500, "must lie in 0..99")],
)
def test_bad_pair_choices_become_messages(ctx, key, law, number, message):
    with pytest.raises(gr.Error, match=message):
        PhysicsHandlers(ctx).show_pair(key, law, number)


def test_a_clip_curve_without_a_clip_says_what_to_do(ctx, key):
    with pytest.raises(gr.Error, match="no clip loaded"):
        PhysicsHandlers(ctx).video_curve(key, None, 1)
