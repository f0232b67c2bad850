"""Checkpoints: atomic writes, safe loading."""

from __future__ import annotations

import pickle

import pytest
import torch

from train.checkpoint import CheckpointError, atomic_save, load_checkpoint, save_checkpoint


def test_save_writes_latest_and_kept_copies(tmp_path):
    save_checkpoint(tmp_path, {"step": 5, "w": torch.ones(2)}, keep_copy=True)
    save_checkpoint(tmp_path, {"step": 6, "w": torch.zeros(2)}, keep_copy=False)
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 6
    assert load_checkpoint(tmp_path / "step_0000005.pt")["w"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt", "step_0000005.pt"]


def test_failed_write_leaves_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    atomic_save({"step": 1}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest.pt"]


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with path.open("wb") as f:
        pickle.dump({"encoder": Payload()}, f)
    with pytest.raises(CheckpointError, match="pickled code"):
        load_checkpoint(path)


def test_truncated_file_is_reported(tmp_path):
    path = tmp_path / "latest.pt"
    atomic_save({"w": torch.randn(1000)}, path)
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path)
