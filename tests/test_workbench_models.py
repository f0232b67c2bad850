"""Models without a pixel decoder in the workbench: a run directory (as `python -m train` or
`python -m train.released` writes it) opened with `--model` or found under the runs folder.
Every tab works on it; Predict shows the predicted and target latents in PCA colours."""

from __future__ import annotations

import copy
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from conftest import MICRO
from train.checkpoint import save_checkpoint
from train.config import dump_config, load_config, to_dict
from train.masks import num_mask_sets
from train.models import build_encoder, build_predictor
from workbench import clip_table
from workbench import decoder_hint as decoder_hint_module
from workbench.__main__ import main
from workbench.bundles import NO_DECODER, BundleError, BundleRegistry, model_entry
from workbench.context import AppContext
from workbench.decoder_hint import decoder_hint, fit_seconds, size_ratio
from workbench.examples import example_names
from workbench.features import fit_pca, pca_rgb
from workbench.latent_view import latent_view
from workbench.predict import EDITOR_PX
from workbench.tab_embeddings import EmbeddingHandlers
from workbench.tab_features import FeatureHandlers
from workbench.tab_model import ModelHandlers
from workbench.tab_physics import PhysicsHandlers
from workbench.tab_predict import PredictHandlers
from workbench_fixtures import free_port, painted_editor, write_micro_bundle


def write_micro_run(run_dir: Path, seed: int = 0, step: int = 7) -> Path:
    """A core run directory of freshly initialised micro models and no decoder:
    config.yaml and checkpoints/latest.pt, as `python -m train` leaves them."""
    cfg = load_config("tiny_cpu", [*MICRO, f"out={run_dir}"])
    torch.manual_seed(seed)
    encoder = build_encoder(cfg.model)
    predictor = build_predictor(
        cfg.model, encoder.grid_size, num_mask_sets(cfg.mask), encoder.embed_dim
    )
    state = {
        "config": to_dict(cfg),
        "step": step,
        "loss": 0.5,
        "encoder": encoder.state_dict(),
        "predictor": predictor.state_dict(),
        "target_encoder": copy.deepcopy(encoder).state_dict(),
    }
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    dump_config(cfg, run_dir / "config.yaml")
    save_checkpoint(run_dir / "checkpoints", state, keep_copy=False)
    return run_dir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    write_micro_run(runs / "bare")
    write_micro_bundle(runs / "fitted" / "decoder" / "bundle.safetensors")
    write_micro_run(runs / "fitted")  # its decoder is in fitted/decoder: listed as a bundle
    return runs


@pytest.fixture(scope="module")
def ctx(runs):
    return AppContext.create(runs, starter=runs / "no-starter")


@pytest.fixture(scope="module")
def key(runs):
    return str(runs / "bare" / "checkpoints" / "latest.pt")


@pytest.fixture(scope="module")
def loaded(ctx, key):
    return PredictHandlers(ctx).load_example(example_names()[0], key)


# ---------------------------------------------------------------------------------------------
# Listing and opening.


def test_runs_without_a_decoder_are_listed_after_the_bundles(ctx, key):
    choices = ctx.registry.choices()
    assert [label for label, _ in choices] == ["run: fitted/decoder", f"{NO_DECODER}: bare"]
    assert choices[1][1] == key
    bundle = ctx.registry.load(key)
    assert not bundle.has_decoder and bundle.decoder is None
    assert bundle.pretrained.step == 7 and bundle.grid == (2, 4, 4)
    assert ctx.registry.load(key) is bundle  # cached until the checkpoint changes


def test_a_decoder_fit_is_not_listed_as_a_run(tmp_path):
    fit = write_micro_run(tmp_path / "runs" / "fit")
    text = (fit / "config.yaml").read_text().replace("mask:", "masks:", 1)
    (fit / "config.yaml").write_text(text + "latents: predicted\n")
    assert BundleRegistry(tmp_path / "runs", starter=tmp_path / "none").choices() == []


@pytest.mark.parametrize("given", ["run", "checkpoints", "file"])
def test_model_opens_a_run_directory_or_a_checkpoint(runs, tmp_path, given):
    run = runs / "bare"
    path = {"run": run, "checkpoints": run / "checkpoints", "file": run / "checkpoints/latest.pt"}
    ctx = AppContext.create(tmp_path, path[given], starter=tmp_path / "none", model_flag="--model")
    entry = ctx.registry.entries()[0]
    assert entry.path == run / "checkpoints" / "latest.pt" and not entry.has_decoder
    assert entry.label.endswith("(--model, no decoder)")
    assert ctx.registry.default_key() == entry.key
    assert not ctx.registry.load(entry.key).has_decoder


def test_model_opens_the_decoder_a_run_holds_and_a_bundle(runs):
    bundle = runs / "fitted" / "decoder" / "bundle.safetensors"
    assert model_entry(runs / "fitted").path == bundle
    entry = model_entry(bundle)
    assert entry.has_decoder and entry.label == "decoder/bundle.safetensors (--model)"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: tmp / "missing", "no such file or folder"),
        (lambda tmp: tmp, "not a run directory"),
    ],
)
def test_model_with_a_bad_path_exits_2_with_the_reason(tmp_path, capsys, make, message):
    args = ["--model", str(make(tmp_path)), "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--port", str(free_port())]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --model") and message in err


def test_model_with_a_checkpoint_of_something_else_exits_2(tmp_path, capsys):
    other = tmp_path / "released.pt"
    torch.save({"encoder": {"pos_embed": torch.zeros(1)}}, other)
    args = ["--model", str(other), "--runs-dir", str(tmp_path / "runs")]
    assert main([*args, "--port", str(free_port())]) == 2
    assert "python -m train.released FILE RUN_DIR" in capsys.readouterr().err
    with pytest.raises(BundleError, match="not a checkpoint of `python -m train`"):
        BundleRegistry(tmp_path, extra=other).load(str(other))


def test_a_released_safetensors_file_says_to_import_it_first(tmp_path):
    released = tmp_path / "model.safetensors"
    save_file({"encoder.layernorm.weight": torch.ones(4)}, released)
    registry = BundleRegistry(tmp_path, extra=released, extra_flag="--model")
    with pytest.raises(BundleError, match="python -m train.released FILE RUN_DIR"):
        registry.load(str(released))


def test_model_and_bundle_together_are_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--model", str(tmp_path), "--bundle", str(tmp_path)])
    assert stop.value.code == 2 and "not allowed with" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The tabs.


def test_model_tab_says_there_is_no_decoder_and_how_to_fit_one(ctx, key, runs):
    header, summary, quality, _, _, provenance = ModelHandlers(ctx).describe(key)
    assert f"{NO_DECODER}: bare" in header and "pretrained 7 steps" in summary
    assert "**No pixel decoder**" in summary and "python -m decoder" in summary
    assert quality == [] and provenance["decoder"] is None


def test_features_work_without_a_decoder(ctx, key, loaded):
    picture, movie, note = FeatureHandlers(ctx).show(key, loaded[0], 0, 1)
    assert Path(movie).is_file() and picture.shape == (2 * 96 + 4, 4 * 96 + 3 * 4, 3)
    assert len(np.unique(picture[100:, :96].reshape(-1, 3), axis=0)) > 1
    assert "principal components" in note


def test_embeddings_work_without_a_decoder(ctx, key, tmp_path, monkeypatch):
    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path)
    steps = EmbeddingHandlers(ctx).map_clips(key, count=12, progress=lambda *a, **k: None)
    figure, table_key, _, method, _ = next(steps)  # the PCA map; UMAP follows
    assert method == "PCA" and table_key
    assert sum(len(trace.x) for trace in figure.data) == 12


def test_physics_works_without_a_decoder(ctx, key, loaded):
    movie, figure, note = PhysicsHandlers(ctx).show_pair(key, "continuity", 3)
    assert Path(movie).is_file() and "Mean surprise" in note
    assert len(figure.data) == 8  # the matched set: A, C, B, D, and each at step 0
    assert np.isfinite(np.asarray(figure.data[0].y, dtype=float)[2:]).all()
    curve, note = PhysicsHandlers(ctx).video_curve(key, loaded[0], 1)
    assert np.isfinite(np.asarray(curve.data[0].y, dtype=float)[2:]).all()
    assert "Most surprising: frame" in note


def test_predict_without_a_decoder_shows_latents_and_how_to_fit_one(ctx, key, loaded):
    editor = painted_editor(EDITOR_PX, (0, 0, 160, 160))  # the top-left quarter
    original, masked, pair, strip, figure, summary = PredictHandlers(ctx).predict(
        key, loaded[0], 0, 1, editor, extent="frame range", range_start=2, range_stop=3
    )
    assert all(Path(path).is_file() for path in (original, masked, pair))
    assert strip.shape[0] == 4 * 96 + 3 * 4  # original / masked / target / predicted
    surprise = np.asarray(figure.data[0].y, dtype=float)
    assert np.isnan(surprise[:2]).all() and np.isfinite(surprise[2:]).all()
    assert "no pixel decoder" in summary and "same PCA colours" in summary
    assert "python -m decoder" in summary and "bare" in summary and "estimate" in summary.lower()


def test_every_preset_mask_predicts_without_a_decoder(ctx, key, loaded):
    for preset in ("multiblock-short", "random-tube", "causal"):
        *_, summary = PredictHandlers(ctx).predict(key, loaded[0], 0, 1, None, source=preset)
        assert "Mean surprise" in summary


def test_the_latent_view_colours_both_latents_with_the_targets_pca(ctx, key):
    bundle = ctx.registry.load(key)
    clip = torch.randint(0, 256, (3, 4, 32, 32), dtype=torch.uint8)
    mask = torch.zeros(bundle.grid, dtype=torch.bool)
    mask[1, :2, :2] = True
    view = latent_view(bundle, clip, mask)
    for frames in (view.target, view.predicted, view.masked):
        assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert np.isfinite(view.explained).all() and 0 < view.explained.sum() <= 1 + 1e-9
    # Outside the mask (frames 0-1) both show the same dimmed target colours.
    assert np.array_equal(view.target[:2], view.predicted[:2])
    assert view.target[:2].max() < 255 * 0.4
    # Inside it, colours at full brightness; the predictor's differ from the targets'.
    inside = (slice(2, 4), slice(1, 15), slice(1, 15))
    assert not np.array_equal(view.target[inside], view.predicted[inside])
    assert np.isnan(view.surprise[:2]).all() and np.isfinite(view.surprise[2:]).all()
    assert view.surprise[2:].min() > 0


def test_a_fitted_pca_colours_its_own_features_as_pca_rgb_does():
    features = np.random.default_rng(0).normal(size=(2, 4, 4, 16))
    projection = fit_pca(features)
    assert np.array_equal(projection.rgb(features), pca_rgb(features).rgb)
    assert projection.rgb(features[0, :1, :1]).shape == (1, 1, 3)


def test_the_decoder_hint_scales_the_measured_fit_with_the_model(ctx, key):
    bundle = ctx.registry.load(key)
    hint = decoder_hint(bundle)
    assert "`python -m decoder " in hint and "bare`" in hint
    assert "one measurement" in hint and "1.79 s a step" in hint
    # The micro model is far smaller than the teaching one: its estimate is the teaching one's.
    assert size_ratio(bundle) < 0.01 and "this model is smaller" in hint
    assert fit_seconds(bundle) == pytest.approx(1.79 * 1200)
    assert fit_seconds(bundle, steps=2400) == pytest.approx(2 * fit_seconds(bundle))


def test_the_decoder_hint_scales_up_for_a_larger_model(ctx, key, monkeypatch):
    bundle = ctx.registry.load(key)
    monkeypatch.setattr(decoder_hint_module, "TEACHING_PARAMETERS", 1)
    hint = decoder_hint(bundle)
    assert "scaled to this model by parameters x tokens" in hint and "days" in hint
    assert "not a measurement of this model" in hint


def test_a_missing_model_is_a_message(ctx):
    with pytest.raises(gr.Error, match="not one of the available bundles"):
        PredictHandlers(ctx).load_example(example_names()[0], "/etc/passwd")
