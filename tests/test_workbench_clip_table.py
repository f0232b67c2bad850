"""Clip features of a dataset for the embedding map: physics-world labels, a folder of videos
labelled by sub-folder (with an unreadable file skipped), and the disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from decoder.bundle import load_bundle
from train.data.synthetic import PhysicsWorld
from workbench import clip_table
from workbench.clip_table import FOLDER, DataChoice
from workbench_fixtures import moving_square_video, write_micro_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return load_bundle(write_micro_bundle(tmp_path_factory.mktemp("b") / "micro.safetensors"))


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(clip_table, "FEATURE_CACHE_DIR", tmp_path / "cache")
    monkeypatch.setattr(clip_table, "_tables", {})
    return tmp_path / "cache"


IDENTITY = {"path": "micro", "size": 1, "mtime_ns": 1}


def test_physics_table_carries_the_worlds_labels_and_is_cached(bundle, cache_dir):
    progress = []
    report = lambda share, text: progress.append((share, text))
    table = clip_table.clip_table(bundle, IDENTITY, DataChoice(count=12), report)
    world = PhysicsWorld(
        num_clips=12, num_frames=4, img_size=32, seed=clip_table.EMBEDDING_WORLD_SEED
    )
    expected = [world.clip_params(i).labels["direction"] for i in range(12)]
    assert table.labels["direction"].tolist() == expected
    assert table.features.shape == (12, 32) and len(table) == 12
    assert table.clip_of(3).shape == (4, 32, 32, 3)
    assert table.hover[0].startswith("clip 0<br>shape: ")
    assert progress[-1] == (1.0, "features of 12 / 12 clips")
    files = list(cache_dir.glob("clips-*.npz"))
    assert len(files) == 1
    clip_table._tables.clear()  # a new process: the table comes from disk, identical
    again = clip_table.clip_table(bundle, IDENTITY, DataChoice(count=12), report)
    np.testing.assert_array_equal(again.features, table.features)
    other = clip_table.clip_table(bundle, {**IDENTITY, "mtime_ns": 2}, DataChoice(count=12))
    assert other.key != table.key  # another bundle file version: extracted afresh
    assert len(list(cache_dir.glob("clips-*.npz"))) == 2


def test_folder_table_labels_by_sub_folder_and_skips_unreadable_files(bundle, tmp_path):
    root = tmp_path / "videos"
    for folder in ("cats", "dogs"):
        for i in range(2):
            moving_square_video(root / folder / f"{i}.mp4", frames=6, size=48)
    (root / "dogs" / "broken.mp4").write_bytes(b"\x00" * 64)
    choice = DataChoice(source=FOLDER, folder=str(root))
    table = clip_table.clip_table(bundle, IDENTITY, choice)
    assert len(table) == 4 and table.label_names == {"folder": ["cats", "dogs"]}
    assert table.labels["folder"].tolist() == [0, 0, 1, 1]
    assert len(table.skipped) == 1 and table.skipped[0].startswith("broken.mp4")
    assert table.hover[2] == "videos/dogs/0.mp4<br>folder: dogs"


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (DataChoice(source=FOLDER, folder=""), "type the path"),
        (DataChoice(source=FOLDER, folder="/no/such/folder"), "does not exist"),
        (DataChoice(count=1), "between 2 and"),
        (DataChoice(source="elsewhere"), "unknown data source"),
    ],
)
def test_bad_choices_are_refused_with_a_message(bundle, choice, message):
    with pytest.raises(ValueError, match=message):
        clip_table.clip_table(bundle, IDENTITY, choice)
