"""The Embeddings tab's labels, filter, neighbour distances and list-file export: scene labels
of the physics world, labels from an uploaded CSV, and a selection exported under the app's
output folder that `read_list_file` (training's and evaluation's reader) reads back."""

from __future__ import annotations

import zipfile

import gradio as gr
import numpy as np
import pytest

from decoder.bundle import load_bundle
from train.data.listfile import read_list_file
from train.data.synthetic import PhysicsWorld
from workbench import clip_table, paths
from workbench.clip_table import FOLDER, DataChoice, export_selection, labels_from_csv
from workbench.maps import cosine_distances, nearest_neighbours
from workbench.tab_embeddings import EmbeddingHandlers, map_figure
from workbench_fixtures import micro_app_context, moving_square_video, write_micro_bundle

IDENTITY = {"path": "micro", "size": 1, "mtime_ns": 1}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(write_micro_bundle(tmp_path_factory.mktemp("b") / "micro.safetensors"))


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(clip_table, "_tables", {})
    monkeypatch.setattr(paths, "_output_dir", tmp_path / "out")  # this test's output folder
    (tmp_path / "out").mkdir()


@pytest.fixture
def physics(bundle):
    return clip_table.clip_table(bundle, IDENTITY, DataChoice(count=16))


def test_physics_clips_are_labelled_by_their_background_and_scene(physics):
    world = PhysicsWorld(
        num_clips=16, num_frames=4, img_size=32, seed=clip_table.EMBEDDING_WORLD_SEED
    )
    names = physics.label_names["background"]
    for row in range(16):
        scene = world.clip_params(row)
        dark = np.mean(scene.background) < 0.5 * 255
        assert names[physics.labels["background"][row]] in (
            ("very dark", "dark") if dark else ("light", "very light")
        )
        assert physics.labels["bar"][row] == int(scene.occluder is not None)
    assert {"shape", "background", "bar", "colour", "size"} <= set(physics.labels)
    assert "background: " in physics.hover[0] and physics.names[0] == "clip 0"


def test_labels_from_a_csv_match_clips_by_name_number_or_file_name():
    names = ["clip 0", "clip 1", "clip 2"]
    title, values, classes = labels_from_csv(b"file,kind\nclip 0,cat\n2,dog\n", names)
    assert title == "csv: kind" and classes == ["cat", "dog", "(unlabelled)"]
    assert values.tolist() == [0, 2, 1]
    videos = ["cats/a.mp4", "dogs/b.mp4"]
    _, values, classes = labels_from_csv(b"a.mp4\tx\nb\ty\n", videos)  # tab, file name, stem
    assert [classes[v] for v in values] == ["x", "y"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00bad", "not UTF-8"),
        (b"name,label\nclip 0\n", "line 2 of the label CSV has no label"),
        (b"name,label\nelsewhere.mp4,cat\n", "none of the 1 names"),
    ],
)
def test_bad_label_csvs_are_refused_with_a_message(data, message):
    with pytest.raises(ValueError, match=message):
        labels_from_csv(data, ["clip 0", "clip 1"])


def test_neighbour_distances_are_the_cosine_distances_neighbours_are_ranked_by():
    features = np.array([[1, 0], [0.9, 0.1], [0, 1], [-1, 0], [0.8, -0.2]], np.float32)
    near = nearest_neighbours(features, [0], k=4)
    distances = cosine_distances(features, [0], near)
    assert near.tolist() == [1, 4, 2, 3]
    np.testing.assert_allclose(distances[2:], [1.0, 2.0], atol=1e-6)  # orthogonal, opposite
    assert np.all(np.diff(distances) >= 0)


def test_the_map_is_filtered_by_the_colour_labels_values(physics):
    names = physics.label_names["bar"]
    figure = map_figure(physics, "PCA", "bar", ["bar"])
    assert [trace.name for trace in figure.data] == ["bar"]
    shown = sorted(figure.data[0].customdata)  # clip numbers, as on the whole map
    assert shown == [r for r in range(16) if names[physics.labels["bar"][r]] == "bar"]
    with pytest.raises(ValueError, match="not a value of 'bar'"):
        map_figure(physics, "PCA", "bar", ["striped"])
    with pytest.raises(ValueError, match="choose a label"):
        map_figure(physics, "PCA", "(none)", ["bar"])


def test_an_exported_physics_selection_reads_back_as_a_list_file(physics, tmp_path):
    rows = [3, 7, 3]
    list_file = export_selection(
        physics, rows, tmp_path / "sel", physics.labels["shape"], physics.label_names["shape"]
    )
    listed = read_list_file(list_file)
    assert [p.name for p in listed.paths] == ["clip-3.mp4", "clip-7.mp4"]
    assert all(p.is_file() and p.parent == list_file.parent for p in listed.paths)
    shapes = [physics.label_names["shape"][physics.labels["shape"][r]] for r in (3, 7)]
    assert [listed.class_names[label] for label in listed.labels] == shapes


def test_an_exported_video_selection_lists_the_videos_with_their_labels(bundle, tmp_path):
    root = tmp_path / "videos"
    for folder in ("big cats", "dogs"):  # a space in a path: labelled lines keep it
        for i in range(2):
            moving_square_video(root / folder / f"{i}.mp4", frames=6, size=48)
    table = clip_table.clip_table(bundle, IDENTITY, DataChoice(source=FOLDER, folder=str(root)))
    labels, names = table.labels["folder"], table.label_names["folder"]
    listed = read_list_file(export_selection(table, [0, 3], tmp_path / "sel", labels, names))
    assert listed.paths == [table.video_paths[0], table.video_paths[3]]
    assert listed.paths[0] == (root / "big cats" / "0.mp4").resolve()
    assert [listed.class_names[label] for label in listed.labels] == ["big_cats", "dogs"]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    ctx = micro_app_context(tmp_path_factory.mktemp("runs"))
    return EmbeddingHandlers(ctx), ctx.registry.default_key()


def test_the_export_button_writes_a_zip_under_the_output_folder(app, tmp_path):
    handlers, key = app
    steps = handlers.map_clips(key, count=12, colour_by="shape", progress=lambda *a, **k: None)
    table_key = next(steps)[1]
    archive, note = handlers.export(table_key, "1, 5", "background")
    assert archive.endswith(".zip") and "2 physics clips, labelled by background" in note
    assert paths.output_dir() in type(tmp_path)(archive).parents
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(tmp_path / "unzipped")
        folder = zipped.namelist()[0].split("/")[0]
    listed = read_list_file(tmp_path / "unzipped" / folder / "selection.txt")
    assert [p.name for p in listed.paths] == ["clip-1.mp4", "clip-5.mp4"]
    with pytest.raises(gr.Error, match="do not exist"):
        handlers.export(table_key, "99", "shape")
    with pytest.raises(gr.Error, match="Map clips"):
        handlers.export(None, "1", "shape")


def test_an_uploaded_csv_colours_and_filters_the_map(app):
    handlers, key = app
    steps = handlers.map_clips(key, count=12, colour_by="shape", progress=lambda *a, **k: None)
    table_key = next(steps)[1]
    uploaded, colours, figure, shown, note = handlers.upload_labels(
        table_key, b"clip,kind\n0,odd\n1,even\n3,odd\n", "PCA"
    )
    assert colours["value"] == "csv: kind" and "csv: kind" in colours["choices"]
    assert shown["choices"] == ["even", "odd", "(unlabelled)"]
    assert "3 of 12 clips labelled" in note
    assert {t.name: sorted(t.customdata) for t in figure.data}["odd"] == [0, 3]
    only = handlers.redraw(table_key, "PCA", "csv: kind", ["odd"], uploaded)
    assert [t.name for t in only.data] == ["odd"]
    with pytest.raises(gr.Error, match="upload a CSV"):
        handlers.upload_labels(table_key, None, "PCA")
    with pytest.raises(gr.Error, match="no label"):
        handlers.redraw(table_key, "PCA", "csv: kind", None, None)  # another map's CSV
    _, near, note = handlers.show_selection(table_key, "0")
    assert near[0][1].startswith("d=") and "cosine distance d" in note
