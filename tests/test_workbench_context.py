"""Numbers in context: the surprise curve's step-0 reference and units, the comparison row of
Predict (decoded target latents, mean-colour fill, PSNR inside the mask), and the Model tab's
chance levels, step-0 values and baselines."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from decoder.bundle import load_bundle, save_bundle, without_decoder
from decoder.clips import channels_last
from decoder.inference import pixels_to_clips
from decoder.latents import target_latents, token_mask_set
from decoder.masks import TemporalExtent
from decoder.render import render_prediction
from train.data import normalize_clip
from train.eval.physics import PhysicsConfig, evaluate_physics
from workbench.comparison import MEAN_COLOUR, PREDICTION, TARGET, compare
from workbench.context import AppContext
from workbench.examples import example_names, load_example
from workbench.masks_ui import MaskChoice
from workbench.model_context import (
    chance_levels,
    probe_table,
    quick_yardstick,
    recorded_yardstick,
    uniform_chance,
)
from workbench.plots import SURPRISE_UNITS, surprise_figure
from workbench.predict import EDITOR_PX, STRIP_PX, clip_window, predict
from workbench.step0 import untrained_surprise
from workbench.tab_model import NO_CURVES, NOT_MEASURED, ModelHandlers, quality_rows
from workbench.tab_predict import PredictHandlers
from workbench_fixtures import painted_editor, write_micro_bundle

# A square over the top-left quarter of the frames, on every frame.
EDITOR = painted_editor(EDITOR_PX, (0, 0, 160, 160))
# The same quarter of the micro model's 32 x 32 px frames.
QUARTER = np.pad(np.ones((16, 16), bool), ((0, 16), (0, 16)))


def _context(runs, seed: int) -> AppContext:
    write_micro_bundle(runs / "micro" / "decoder" / "bundle.safetensors", seed=seed)
    return AppContext.create(runs, starter=runs / "no-starter")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A micro bundle whose weights differ from its config's step 0 (seed 1, the config's 0)."""
    return _context(tmp_path_factory.mktemp("runs"), seed=1)


@pytest.fixture(scope="module")
def window(trained):
    bundle = trained.registry.load(trained.registry.default_key())
    return clip_window(load_example(example_names()[0]).frames, 0, 1, bundle.num_frames)


def _bundle(ctx):
    return ctx.registry.load(ctx.registry.default_key())


# ---------------------------------------------------------------------------------------------
# The surprise curve.


def test_the_surprise_figure_names_its_units_and_draws_the_step0_curve_dashed():
    trained = np.array([np.nan, np.nan, 0.2, 0.3], np.float32)
    untrained = np.array([np.nan, np.nan, 0.8, 0.9], np.float32)
    fig = surprise_figure(trained, untrained=untrained)
    assert fig.layout.yaxis.title.text == SURPRISE_UNITS and "per masked token" in SURPRISE_UNITS
    assert [trace.name for trace in fig.data] == ["surprise", "untrained (step 0)"]
    assert fig.data[1].line.dash == "dash"
    np.testing.assert_allclose(fig.data[1].y, untrained)
    assert len(surprise_figure(trained).data) == 1  # no reference given: none drawn


def test_predict_draws_the_step0_surprise_beside_the_trained_one(trained, window):
    shown = predict(_bundle(trained), window, MaskChoice(), EDITOR)
    ours, step0 = (np.asarray(trace.y, dtype=float) for trace in shown.surprise.data)
    assert shown.surprise.data[1].name == "untrained (step 0)"
    # The same frames have a value (the same mask), and the curves differ (other weights).
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(step0))
    assert np.isfinite(step0).all() and not np.allclose(ours, step0)
    assert f"step 0: {np.nanmean(step0):.3f}" in shown.summary


def test_the_step0_surprise_of_a_model_still_at_step_0_is_its_own_surprise(tmp_path, window):
    """The micro bundle of seed 0 holds exactly its config's step-0 weights: the reference
    rebuilt from the config must then give the trained curve, value for value."""
    bundle = load_bundle(write_micro_bundle(tmp_path / "step0.safetensors", seed=0))
    clip = bundle.fit_clip(window)
    mask = bundle.painted_mask(QUARTER, TemporalExtent.from_frame(2))
    rendered = render_prediction(bundle, clip, mask)
    step0 = untrained_surprise(bundle, clip, mask, rendered.mask_index)
    np.testing.assert_allclose(step0, rendered.surprise, rtol=1e-5, equal_nan=True)
    assert np.isnan(step0[:2]).all() and np.isfinite(step0[2:]).all()


def test_the_decoder_free_view_also_draws_the_step0_curve(trained, window):
    bundle = _bundle(trained)
    free = without_decoder(bundle.pretrained, bundle.provenance)
    shown = predict(free, window, MaskChoice(), EDITOR)
    assert [trace.name for trace in shown.surprise.data] == ["surprise", "untrained (step 0)"]
    assert shown.comparison is None


# ---------------------------------------------------------------------------------------------
# The comparison row.


def _psnr(filled: np.ndarray, original: np.ndarray, where: np.ndarray) -> float:
    mse = np.mean((filled[where].astype(float) - original[where].astype(float)) ** 2)
    return 10 * math.log10(255**2 / mse)


def test_the_comparison_scores_three_fills_inside_the_mask_only(trained, window):
    bundle = _bundle(trained)
    clip = bundle.fit_clip(window)
    mask = bundle.painted_mask(QUARTER)
    with pytest.raises(ValueError, match="decode_target=True"):
        compare(bundle, clip, render_prediction(bundle, clip, mask))
    rendered = render_prediction(bundle, clip, mask, decode_target=True)
    row = compare(bundle, clip, rendered)
    assert list(row.psnr) == [PREDICTION, TARGET, MEAN_COLOUR]
    assert all(np.isfinite(value) for value in row.psnr.values())
    original, inside = rendered.original, rendered.pixel_mask  # [T, H, W, 3], [T, H, W]
    # The mean-colour fill: the visible pixels' mean colour, scored over the masked pixels.
    colour = np.round(original[~inside].astype(float).mean(0))
    expected = _psnr(np.broadcast_to(colour, original.shape), original, inside)
    assert row.psnr[MEAN_COLOUR] == pytest.approx(expected, abs=1e-6)
    # The prediction's score is the decoded pixels' inside the mask.
    assert row.psnr[PREDICTION] == pytest.approx(_psnr(rendered.decoded, original, inside))
    # Outside the mask every fill is the clip itself (the outline is drawn inside it)...
    for frames in (row.prediction, row.target, row.mean_fill):
        np.testing.assert_array_equal(frames[~inside], original[~inside])
    # The decoded target: the bundle's decoder on the target encoder's latents, scored inside
    # the mask. (The micro decoder is untrained: it loses to the mean colour, which is true.)
    masks = token_mask_set(torch.from_numpy(rendered.token_mask)[None])
    latents = target_latents(bundle.pretrained, normalize_clip(clip[None]), masks)
    pixels = bundle.decoder(latents, masks.target_idx, masks.target_valid)
    decoded = channels_last(pixels_to_clips(pixels, masks, bundle.geometry)[0]).numpy()
    assert row.psnr[TARGET] == pytest.approx(_psnr(decoded, original, inside))
    assert row.psnr[MEAN_COLOUR] > row.psnr[TARGET]


def test_the_predict_button_fills_the_comparison_row(trained):
    handlers = PredictHandlers(trained)
    key = trained.registry.default_key()
    clip_key = handlers.load_example(example_names()[0], key)[0]
    outputs = handlers.predict_view(key, clip_key, 0, 1, EDITOR)
    assert len(outputs) == 7 and "Masked 25% of the tokens" in outputs[5]
    frames, line = outputs[6]
    assert frames.shape[0] == 3 * STRIP_PX + 2 * 4  # prediction / target / mean colour
    assert line.count(" dB") == 3 and "decoded target latents" in line
    strip_update, line_update = handlers.show_comparison(outputs[6])
    assert strip_update["visible"] and line_update["value"] == line
    hidden = handlers.show_comparison(None)
    assert hidden[0]["visible"] is False and hidden[1]["visible"] is False
    # The API's `predict` keeps its six outputs.
    assert len(handlers.predict(key, clip_key, 0, 1, EDITOR)) == 6


# ---------------------------------------------------------------------------------------------
# The Model tab.


def test_chance_is_the_majority_class_share_of_the_labelled_clips():
    balanced = {"shape": np.arange(60) % 6, "direction": np.arange(80) % 8, "speed": [0, 1, 2]}
    levels = chance_levels(balanced)
    assert levels == pytest.approx({"shape": 1 / 6, "direction": 1 / 8, "speed": 1 / 3})
    assert chance_levels({"speed": [2, 2, 0, 1]}) == {"speed": 0.5}
    with pytest.raises(ValueError, match="no labelled clips"):
        chance_levels({"shape": []})


def test_the_physics_worlds_uniform_labels_give_one_over_the_class_count():
    uniform = uniform_chance()
    assert uniform["shape"] == pytest.approx(1 / 6)
    assert uniform["direction"] == pytest.approx(1 / 8)
    assert uniform["speed"] == pytest.approx(1 / 3)


PROBE = {
    "val_clips": 512,
    "accuracy": {"shape": {"mean": 0.42, "std": 0.012}, "speed": {"mean": 0.74, "std": 0.002}},
    "chance": {"shape": 0.18, "speed": 0.34},
}


def test_the_probe_table_shows_chance_and_says_when_step0_is_not_recorded():
    table = probe_table({"probe": PROBE})
    assert "| shape | 42% ± 1.2% | not recorded | 18% | 17% |" in table
    assert "| speed | 74% ± 0.2% | not recorded | 34% | 33% |" in table
    assert "step-0 probe accuracy was not recorded" in table
    recorded = {**PROBE, "step0": {"accuracy": {"shape": {"mean": 0.2}, "speed": {"mean": 0.3}}}}
    table = probe_table({"probe": recorded})
    assert "| shape | 42% ± 1.2% | 20% | 18% | 17% |" in table and "was not recorded" not in table
    assert probe_table({}).startswith("No probe accuracy is recorded")


def test_the_quality_table_puts_the_baselines_under_the_decoder():
    scores = {
        "decoder": {"psnr": 17.39, "ssim": 0.536},
        "mean colour": {"psnr": 17.2136, "ssim": 0.5533},
        "nearest visible copy": {"psnr": 16.0163, "ssim": 0.4137},
    }
    provenance = {
        "decoder": {"held_out": {"blob": {"psnr": 17.2, "ssim": 0.53, "loss": 0.42}}},
        "quality": {"clips_per_family": 64, "scores": {"blob": scores}},
    }
    assert quality_rows(provenance) == [
        ["blob", 17.2, 0.53, 0.42],
        ["blob · decoder (the baselines' 64 clips)", 17.39, 0.536, ""],
        ["blob · mean colour (no learning, 64 clips)", 17.214, 0.553, ""],
        ["blob · nearest visible copy (no learning, 64 clips)", 16.016, 0.414, ""],
    ]


def test_the_model_card_says_why_curves_and_probes_are_missing(trained):
    handlers = ModelHandlers(trained)
    key = trained.registry.default_key()
    _, summary, quality, loss, collapse, _ = handlers.describe(key)
    assert "No probe accuracy is recorded" in summary and NO_CURVES in summary
    assert quality == [["blob", 12.5, "", ""]]  # the micro bundle records no baselines
    for figure in (loss, collapse):
        assert figure.layout.annotations[0].text == "the training run is not on this machine"
    assert handlers.curves_shown(key)["visible"] is False


def test_the_yardstick_button_scores_the_model_beside_step0_and_chance(trained):
    key = trained.registry.default_key()
    bundle = trained.registry.load(key)
    text = quick_yardstick(bundle, "micro", pairs_per_law=2)
    assert "chance 50%" in text and "| trained |" in text and "| step 0 |" in text
    assert "8 pairs" in text  # four laws, two pairs each


def test_a_model_without_a_recorded_yardstick_opens_with_not_measured(trained):
    shown = ModelHandlers(trained).forget_yardstick(trained.registry.default_key())
    assert shown == NOT_MEASURED and shown.startswith("Intuitive physics: not measured")


def test_a_model_opens_with_the_yardstick_its_provenance_records(tmp_path):
    """A bundle built with the yardstick (as the starter's build records it) shows that table,
    matched sets included, as soon as it is selected; nothing is re-measured."""
    runs = tmp_path / "runs"
    path = write_micro_bundle(runs / "micro" / "decoder" / "bundle.safetensors", seed=1)
    bundle = load_bundle(path)
    report = evaluate_physics(bundle.pretrained, PhysicsConfig(pairs_per_law=1), "micro")
    provenance = {**bundle.provenance, "physics": asdict(report)}
    save_bundle(path, bundle.pretrained, bundle.decoder, bundle.decoder_config, provenance)
    ctx = AppContext.create(runs, starter=runs / "no-starter")
    shown = ModelHandlers(ctx).forget_yardstick(ctx.registry.default_key())
    assert shown.startswith(report.table())
    matched = shown.split("Matched sets: share where")[1]
    overall = report.models["trained"]["mean"]["matched"]["overall"]
    low, high = overall["ci95"]
    assert f"{overall['accuracy']:.0%} [{low:.0%}-{high:.0%}] |" in matched.split("| trained |")[1]
    assert "| step 0 |" in matched and "| last frame carried on (no learning) |" in matched
    assert "Recorded when the bundle was built: 1 set per law, beside step 0 and the " in shown
    assert "the button re-measures a quick reading (8 per law)" in shown
    # A record of another format is said so, not a crash.
    assert "this version cannot read" in recorded_yardstick({"physics": {"model": "micro"}})


def test_on_the_starter_the_decoded_truth_beats_the_mean_colour():
    """The committed starter's decoder, told the target latents, does better than the
    no-learning fill on a physics clip: the row can tell a weak predictor from a weak decoder."""
    bundle = load_bundle()
    frames = load_example(example_names()[0]).frames
    shown = predict(
        bundle, clip_window(frames, 0, 1, bundle.num_frames), MaskChoice("causal"), None
    )
    psnr = shown.comparison.psnr
    assert psnr[TARGET] > psnr[MEAN_COLOUR] and all(np.isfinite(list(psnr.values())))
