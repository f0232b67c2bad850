"""The Physics tab's handlers with the micro bundle: a pair's matched set side by side with its
surprise curves and both verdicts, each beside the same architecture at step 0, the surprise
over a loaded clip, and bad input as messages."""

from __future__ import annotations

import re

import av
import gradio as gr
import numpy as np
import pytest
import torch

from train.eval.physics import MATCHED_SET, PhysicsConfig, pair_world
from train.eval.surprise import LatentForecaster, measure_surprise
from workbench.context import AppContext
from workbench.examples import example_names
from workbench.frames import GAP_PX
from workbench.step0 import untrained_models
from workbench.tab_physics import CLIP_NAMES, STEP0_NAME, PhysicsHandlers
from workbench.tab_predict import PredictHandlers
from workbench_fixtures import micro_app_context, write_micro_bundle


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return micro_app_context(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def key(ctx):
    return ctx.registry.default_key()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro bundle whose weights differ from its config's step 0 (seed 1, the config's 0):
    the micro bundle of `ctx` holds exactly its step-0 weights."""
    runs = tmp_path_factory.mktemp("trained")
    write_micro_bundle(runs / "micro" / "decoder" / "bundle.safetensors", seed=1)
    return AppContext.create(runs, starter=runs / "no-starter")


def _frames(path):
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _mean_surprises(note):
    """The note's mean surprise of A, C, B and D, as numbers."""
    listed = note.split("Mean surprise over the windows: ")[1].split(".\n")[0]
    return {name: float(value) for name, value in re.findall(r"([ABCD]) ([\d.]+)", listed)}


def test_a_pair_shows_its_matched_set_their_curves_and_the_violation(ctx, key):
    movie, figure, note = PhysicsHandlers(ctx).show_pair(key, "continuity", 3)
    frames = _frames(movie)
    assert len(frames) == 8  # the micro model's 4 frames, twice
    height, width = frames.shape[1:3]
    assert width == 4 * height + 3 * GAP_PX  # four square clips side by side
    names = [trace.name for trace in figure.data]
    assert names == [*CLIP_NAMES, *(f"{name}, {STEP0_NAME}" for name in CLIP_NAMES)]
    # The possible clips dotted, the impossible ones solid; their step-0 curves dashed.
    assert [trace.line.dash for trace in figure.data] == ["dot", None, "dot", None] + ["dash"] * 4
    a, c = (np.asarray(t.y, dtype=float) for t in figure.data[:2])
    assert np.isnan(a[:2]).all() and np.isfinite(a[2:]).all()
    k = int(note.split("from frame ")[1].split(" ")[0])
    # Frames 2-3 are predicted only by the first window (frames 0-3), which the twins share
    # when the law breaks at frame 4 or later.
    assert k < 4 or np.array_equal(a[2:4], c[2:4])
    assert not np.array_equal(a[k:], c[k:])
    assert "**continuity** (jump)" in note and "Mean surprise" in note
    assert figure.layout.shapes  # the violation line

    # The movie's right-most clip is D: B before k, A from k on, with the red border from k.
    side = height
    d_left = 3 * (side + GAP_PX)
    border = frames[:, side // 2, d_left]  # the middle of D's left edge, every frame
    red = (border[:, 0] > 180) & (border[:, 1] < 90) & (border[:, 2] < 90)
    assert not red[:k].any() and red[k:].all()


def test_the_note_gives_both_verdicts_with_the_measured_numbers(ctx, key):
    """The numbers in the note are those of an independent measurement of the four clips."""
    bundle = ctx.registry.load(key)
    world, context = pair_world(bundle.config, PhysicsConfig())
    pair = world.pair(0, "permanence")
    clips = torch.stack([getattr(pair, clip) for clip in MATCHED_SET])
    surprise = measure_surprise(LatentForecaster(bundle.pretrained), clips, context)
    a, c, b, d = surprise.clip_score("mean").tolist()
    _, figure, note = PhysicsHandlers(ctx).show_pair(key, "permanence", 0)
    shown = _mean_surprises(note)
    assert shown == pytest.approx({"A": a, "C": c, "B": b, "D": d}, abs=1e-4)
    assert f"C {c:.4f} vs A {a:.4f}" in note
    assert f"S(C) + S(D) {c + d:.4f} vs S(A) + S(B) {a + b:.4f}" in note
    pair_line = note.split("- **Pair**")[1].split("\n")[0]
    matched_line = note.split("- **Matched set**")[1].split("\n")[0]
    assert ("**not**" not in pair_line) == (c > a)
    assert ("**not**" not in matched_line) == (c + d > a + b)
    assert "fairer test" in note and "python -m train.eval.physics MODEL" in note
    # The figure draws the same four clips' curves, in the same order.
    drawn = np.stack([np.asarray(trace.y, dtype=float) for trace in figure.data[:4]])
    np.testing.assert_allclose(drawn, surprise.per_frame.numpy(), rtol=1e-5, equal_nan=True)


def _measured(bundle, models, law, number):
    world, context = pair_world(bundle.config, PhysicsConfig())
    pair = world.pair(number, law)
    clips = torch.stack([getattr(pair, clip) for clip in MATCHED_SET])
    return measure_surprise(LatentForecaster(models), clips, context)


def test_a_pair_shows_the_step0_curves_and_verdicts_beside_the_trained_ones(trained):
    key = trained.registry.default_key()
    bundle = trained.registry.load(key)
    _, figure, note = PhysicsHandlers(trained).show_pair(key, "permanence", 1)
    ours = np.stack([np.asarray(trace.y, dtype=float) for trace in figure.data[:4]])
    step0 = np.stack([np.asarray(trace.y, dtype=float) for trace in figure.data[4:]])
    # The dashed curves are the untrained architecture's surprise on the same four clips...
    untrained = _measured(bundle, untrained_models(bundle), "permanence", 1)
    np.testing.assert_allclose(step0, untrained.per_frame.numpy(), rtol=1e-5, equal_nan=True)
    # ...on the same frames as the trained curves, with other values (other weights).
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(step0))
    assert not np.allclose(ours[np.isfinite(ours)], step0[np.isfinite(step0)])
    # Each dashed curve in its clip's colour.
    colours = [trace.line.color for trace in figure.data]
    assert colours[:4] == colours[4:] and len(set(colours[:4])) == 4
    # On an axis of their own, so the larger untrained surprise does not flatten the trained.
    assert [trace.yaxis for trace in figure.data] == [None] * 4 + ["y2"] * 4
    assert figure.layout.yaxis2.overlaying == "y"
    # One step-0 line with both verdicts, from the step-0 numbers.
    a, c, b, d = untrained.clip_score("mean").tolist()
    line = note.split("- **Step 0**")[1].split("\n")[0]
    verdicts = re.findall(r"more surprising: (yes|\*\*no\*\*)", line)
    assert verdicts == ["yes" if c > a else "**no**", "yes" if c + d > a + b else "**no**"]
    assert f"C {c:.4f} vs A {a:.4f}" in line and f"({c + d:.4f} vs {a + b:.4f})" in line
    trained_a = _mean_surprises(note)["A"]
    assert trained_a != pytest.approx(a, abs=1e-4)  # the trained verdict's numbers differ


def test_surprise_over_a_loaded_clip_covers_it_all(ctx, key):
    clip_key = PredictHandlers(ctx).load_example(example_names()[0], key)[0]
    figure, note = PhysicsHandlers(ctx).video_curve(key, clip_key, 1)
    values = np.asarray(figure.data[0].y, dtype=float)
    video = ctx.clips.get(clip_key)
    assert len(values) == len(video.frames)
    assert np.isfinite(values[2:]).all() and "Most surprising: frame" in note


def test_the_clip_curve_has_its_step0_curve_beside_it(trained):
    key = trained.registry.default_key()
    clip_key = PredictHandlers(trained).load_example(example_names()[0], key)[0]
    figure, note = PhysicsHandlers(trained).video_curve(key, clip_key, 2)
    assert [trace.name for trace in figure.data] == ["surprise", STEP0_NAME]
    assert figure.data[1].line.dash == "dash"
    ours, step0 = (np.asarray(trace.y, dtype=float) for trace in figure.data)
    assert list(figure.data[1].x) == list(figure.data[0].x)  # frames of the video, step 2
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(step0))
    assert not np.allclose(ours[np.isfinite(ours)], step0[np.isfinite(step0)])
    assert f"(mean {np.nanmean(step0):.4f})" in note and "At step 0" in note


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
