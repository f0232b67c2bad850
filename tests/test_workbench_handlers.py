"""The tabs' handlers called directly, with numpy inputs and a micro bundle: what each returns,
and that bad input becomes a message (gr.Error) instead of a traceback."""

from __future__ import annotations

import json
import re

import av
import gradio as gr
import numpy as np
import pytest

from train.monitor import MetricsLog
from workbench import clip_table
from workbench.context import AppContext
from workbench.examples import example_names
from workbench.maps import cosine_distances
from workbench.masks_ui import PAINTED, PRESET_REPLACES_PAINT
from workbench.paint_memory import KEPT_NOTE
from workbench.predict import EDITOR_PX
from workbench.tab_embeddings import EmbeddingHandlers
from workbench.tab_features import FeatureHandlers
from workbench.tab_model import ModelHandlers, pretrain_metrics
from workbench.tab_predict import PredictHandlers
from workbench.tab_train import TrainHandlers
from workbench.video_io import write_mp4
from workbench_fixtures import (
    micro_app_context,
    moving_square_video,
    painted_editor,
)


@pytest.fixture(scope="module")
def ctx(tmp_path_factory):
    return micro_app_context(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def key(ctx):
    return ctx.registry.default_key()


@pytest.fixture(scope="module")
def loaded(ctx, key):
    """A physics example loaded into the Predict tab: (clip key, description, controls...)."""
    return PredictHandlers(ctx).load_example(example_names()[0], key)


def _frames(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.name, stream.codec_context.pix_fmt) == ("h264", "yuv420p")
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])


# ---------------------------------------------------------------------------------------------
# Predict.


def test_loading_an_example_sets_the_window_and_the_frame_to_paint(loaded):
    clip_key, description, start, paint_index, _, _, editor, paint = loaded
    assert clip_key and "16 frames of 128x128" in description
    assert start["maximum"] == 16 - 4 and start["value"] == 0  # micro model: 4 frames
    assert paint_index["maximum"] == 3
    assert editor["background"].shape == (EDITOR_PX, EDITOR_PX, 4) and editor["layers"] == []
    assert paint is None and KEPT_NOTE not in description  # nothing painted yet


def test_predict_decodes_inside_the_painted_region_only(ctx, key, loaded):
    editor = painted_editor(EDITOR_PX, (0, 0, 160, 160))  # the top-left quarter
    original, masked, predicted, strip, figure, summary = PredictHandlers(ctx).predict(
        key, loaded[0], 0, 1, editor, extent="frame range", range_start=2, range_stop=3
    )
    before, hidden, after = _frames(original), _frames(masked), _frames(predicted)
    assert before.shape == hidden.shape == after.shape and len(before) == 4
    h = before.shape[1]
    inside = (slice(2, 4), slice(8, h // 2 - 8), slice(8, h // 2 - 8))
    outside = (slice(None), slice(h // 2 + 8, None), slice(h // 2 + 8, None))
    # Inside the painted region of frames 2-3 the prediction replaces the pixels...
    assert np.abs(after[inside].astype(int) - before[inside]).mean() > 10
    # ...the masked input is grey there, and outside it nothing changes (up to compression).
    assert np.abs(hidden[inside].astype(int) - 128).mean() < 6
    assert np.abs(after[outside].astype(int) - before[outside]).mean() < 3
    assert np.abs(after[:2].astype(int) - before[:2]).mean() < 3
    surprise = np.asarray(figure.data[0].y, dtype=float)
    assert np.isnan(surprise[:2]).all() and np.isfinite(surprise[2:]).all()
    assert strip.shape[0] == 3 * 96 + 2 * 4
    assert "Masked 12% of the tokens (4 of 32)" in summary
    # A small painted region uses what the predictor learned for the small blocks, said plainly.
    assert "as it learned to for short-range blocks" in summary and "mask token 0" in summary
    assert PRESET_REPLACES_PAINT not in summary


def test_a_preset_says_it_replaces_the_paint(ctx, key, loaded):
    painted = painted_editor(EDITOR_PX, (0, 0, 160, 160))
    with_paint = PredictHandlers(ctx).predict(key, loaded[0], 0, 1, painted, source="causal")
    assert PRESET_REPLACES_PAINT in with_paint[5]
    # A multiblock run has no future token: half the clip hidden is a long-range problem.
    assert "for long-range blocks" in with_paint[5]
    unpainted = PredictHandlers(ctx).predict(key, loaded[0], 0, 1, None, source="causal")
    assert PRESET_REPLACES_PAINT not in unpainted[5]


@pytest.mark.parametrize(
    ("source", "extent", "active"),
    [  # which of (seed, extent, from frame, to frame) apply
        (PAINTED, "whole clip", (False, True, False, False)),
        (PAINTED, "frame range", (False, True, True, True)),
        (PAINTED, "the future", (False, True, True, False)),
        ("multiblock-long", "frame range", (True, False, False, False)),
        ("causal", "whole clip", (False, False, False, False)),
    ],
)
def test_mask_controls_are_active_only_when_they_apply(ctx, source, extent, active):
    *controls, note = PredictHandlers(ctx).mask_controls(source, extent)
    assert tuple(control["interactive"] for control in controls) == active
    assert (PRESET_REPLACES_PAINT in note["value"]) == note["visible"] == (source != PAINTED)


@pytest.mark.parametrize("preset", ["multiblock-short", "multiblock-long", "random-tube", "causal"])
def test_every_preset_mask_predicts(ctx, key, loaded, preset):
    outputs = PredictHandlers(ctx).predict(key, loaded[0], 0, 1, None, source=preset, seed=3)
    assert all(outputs[:3]) and "Masked" in outputs[5]


@pytest.mark.parametrize(
    ("box", "extent", "message"),
    [
        ((0, 0, 0, 0), "whole clip", "nothing is painted"),
        ((0, 0, EDITOR_PX, EDITOR_PX), "whole clip", "hides every token"),
        ((0, 0, 50, 50), "the future", "at least the first frame"),
    ],
)
def test_bad_masks_become_messages(ctx, key, loaded, box, extent, message):
    with pytest.raises(gr.Error, match=message):
        PredictHandlers(ctx).predict(
            key, loaded[0], 0, 1, painted_editor(EDITOR_PX, box), extent=extent, range_start=0
        )


def test_uploads_that_are_not_usable_videos_become_messages(ctx, key, tmp_path):
    handlers = PredictHandlers(ctx)
    text = tmp_path / "notes.txt"
    text.write_text("not a video")
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(moving_square_video(tmp_path / "ok.mp4").read_bytes()[:300])
    short = write_mp4(np.zeros((2, 32, 32, 3), np.uint8), tmp_path / "short.mp4", fps=4)
    for path, message in [
        (text, "not a video file"),
        (corrupt, "cannot be read"),
        (short, "needs at least 4"),
        (None, "upload a video"),
    ]:
        with pytest.raises(gr.Error, match=message):
            handlers.load_upload(None if path is None else str(path), key)


def test_an_uploaded_video_loads_and_predicts(ctx, key, tmp_path):
    handlers = PredictHandlers(ctx)
    loaded = handlers.load_upload(str(moving_square_video(tmp_path / "square.mp4")), key)
    assert "square.mp4: 12 frames" in loaded[1]
    assert loaded[-1]["value"] is None  # the example picker no longer names the old clip
    window = handlers.refresh_window(key, loaded[0], 8, 2, 1)
    assert window[0]["value"] == 12 - 7  # the start is pulled back so 4 frames 2 apart fit
    outputs = handlers.predict(key, loaded[0], 5, 2, painted_editor(EDITOR_PX, (0, 0, 90, 90)))
    assert len(_frames(outputs[2])) == 4


def test_predict_without_a_clip_or_model_says_what_to_do(ctx, key):
    with pytest.raises(gr.Error, match="no clip loaded"):
        PredictHandlers(ctx).predict(key, None, 0, 1, None, source="causal")
    with pytest.raises(gr.Error, match="no model bundle is selected"):
        PredictHandlers(ctx).predict(None, None, 0, 1, None, source="causal")
    with pytest.raises(gr.Error, match="not one of the available bundles"):
        PredictHandlers(ctx).predict("/etc/passwd", None, 0, 1, None)


# ---------------------------------------------------------------------------------------------
# Features, embeddings, model.


def test_features_show_frames_over_pca_colours(ctx, key, loaded):
    picture, movie, note = FeatureHandlers(ctx).show(key, loaded[0], 0, 1)
    assert picture.shape == (2 * 96 + 4, 4 * 96 + 3 * 4, 3)
    bottom = picture[100:, :96]  # the first frame's PCA colours: 4 x 4 tokens of one colour each
    assert len(np.unique(bottom.reshape(-1, 3), axis=0)) > 1
    assert len(_frames(movie)) == 4 and "principal components" in note


def test_embedding_map_shows_pca_then_umap_and_selections(ctx, key, tmp_path, monkeypatch):
    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path)
    handlers = EmbeddingHandlers(ctx)
    steps = list(
        handlers.map_clips(key, count=40, colour_by="speed", progress=lambda *a, **k: None)
    )
    (pca, table_key, colours, method, status), umap = steps[0], steps[1]
    assert method == "PCA" and umap[3] == "UMAP" and "computing UMAP" in status
    assert colours["value"] == "speed" and "direction" in colours["choices"]
    assert sum(len(trace.x) for trace in pca.data) == 40
    assert {trace.name for trace in pca.data} <= {"slow", "medium", "fast"}
    assert list(tmp_path.glob("clips-*.npz"))  # features cached on disk
    selected, neighbours, note = handlers.show_selection(table_key, "3, 7")
    assert len(selected) == 2 and len(neighbours) == 8 and "2 clips selected" in note
    assert selected[0][1].startswith("clip 3")
    assert all(path.endswith(".gif") for path, _ in selected + neighbours)
    # Each neighbour's caption gives its cosine distance from the selection's mean feature,
    # nearest first, the distance the neighbours are ranked by.
    table = clip_table.cached_table(table_key)
    shown = [re.fullmatch(r"d=(\d\.\d{3}) · clip (\d+)", caption) for _, caption in neighbours]
    assert all(shown), [caption for _, caption in neighbours]
    rows = np.array([int(match[2]) for match in shown])
    distances = [float(match[1]) for match in shown]
    assert distances == sorted(distances) and distances[0] >= 0 and distances[-1] <= 2
    expected = cosine_distances(table.features, [3, 7], rows)
    np.testing.assert_allclose(distances, expected, atol=5e-4)
    # The hovered clip: its number above the image (whole, not cut off), its labels beside.
    image, labels = handlers.show_hover(table_key, "12")
    assert image["label"] == "clip 12" and image["value"].endswith(".gif")
    assert labels.startswith("clip 12: ") and table.hover[12].split(": ")[-1] in labels
    with pytest.raises(gr.Error, match="do not exist"):
        handlers.show_selection(table_key, "40")
    # A lasso's long list comes back as ranges, which select the same clips.
    compact = handlers.compact_selection(table_key, "5, 3, 4, 9, 10, 11, 20")
    assert compact == "3-5, 9-11, 20"
    assert len(handlers.show_selection(table_key, compact)[0]) == 7
    assert handlers.redraw(table_key, "UMAP", "(none)").data[0].name == "clips"


def test_model_tab_describes_the_bundle(ctx, key):
    header, summary, quality, loss, _, provenance = ModelHandlers(ctx).describe(key)
    assert "run: micro/decoder" in header
    assert "pretrained 7 steps" in summary and "2x4x4 tokens" in summary
    assert quality == [["blob", 12.5, "", ""]]
    assert provenance["decoder"]["steps"] == 3 and len(loss.data[0].x) == 0


def test_pretrain_metrics_follow_the_checkpoint_to_its_run(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    log = MetricsLog(tmp_path / "metrics.jsonl")
    for step in (10, 20):
        log.write({"step": step, "loss": 1.0 / step})
    checkpoint = str(tmp_path / "checkpoints" / "latest.pt")
    records = pretrain_metrics({"pretrain": {"checkpoint": checkpoint}})
    assert [r["step"] for r in records] == [10, 20]
    assert pretrain_metrics(json.loads('{"pretrain": {"checkpoint": null}}')) == []


def test_train_tick_sends_figures_and_lists_only_when_they_change(ctx):
    handlers = TrainHandlers(ctx)
    status, loss, physics, _, _, bundles, runs, seen = handlers.tick(None)
    assert status.startswith("No training yet")
    assert loss.layout.title.text == "Loss" and len(loss.data[0].x) == 0
    assert loss.layout.annotations[0].text == "no data yet"
    assert physics.layout.annotations[0].text == "no data yet"
    assert [key for _, key in bundles["choices"]] == [ctx.registry.default_key()]
    assert runs["choices"] == []  # the micro bundle has no training run next to it
    again = handlers.tick(seen)
    assert all(output == gr.skip() for output in again[1:7])


def test_a_fresh_app_opens_the_committed_starter_and_predicts(tmp_path):
    """What `make app` shows first: the starter bundle, ready to decode a preset mask."""
    starter_ctx = AppContext.create(tmp_path / "runs")
    key = starter_ctx.registry.default_key()
    assert key is not None and key.endswith("starter.safetensors")
    clip = PredictHandlers(starter_ctx).load_example(example_names()[0], key)[0]
    original, _, predicted, _, _, summary = PredictHandlers(starter_ctx).predict(
        key, clip, 0, 1, None, source="multiblock-long", seed=0
    )
    before, after = _frames(original), _frames(predicted)
    assert before.shape == after.shape and len(before) == 8
    assert np.abs(after.astype(int) - before).mean() > 1  # the hidden region was replaced
    assert "Masked" in summary
