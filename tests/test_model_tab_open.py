"""The Model tab's path field: any run, bundle or imported checkpoint under the runs folder or a
data folder opens with the big-model options of the command line (bf16 weights, a smaller clip);
bad paths get messages that say what to do and never name a server path outside those folders.
Real micro model files, written here."""

from __future__ import annotations

import gradio as gr
import pytest
import torch

from test_big_model_options import write_micro_checkpoint
from workbench.context import AppContext
from workbench.tab_model import OPENED_HERE, ModelHandlers
from workbench_fixtures import write_micro_bundle


@pytest.fixture
def app(tmp_path):
    """(handlers, runs folder, data folder, a folder outside both) of an app with one data
    folder and no starter."""
    runs, data, outside = tmp_path / "runs", tmp_path / "data", tmp_path / "private"
    for folder in (runs, data, outside):
        folder.mkdir()
    ctx = AppContext.create(runs, None, starter=tmp_path / "no-starter", data_dirs=[data])
    return ModelHandlers(ctx), runs, data, outside


def error_of(call, *args) -> str:
    with pytest.raises(gr.Error) as err:
        call(*args)
    return err.value.message


def test_a_run_opens_in_bf16_at_a_smaller_clip_and_is_selected(app, monkeypatch):
    handlers, runs, _, _ = app
    monkeypatch.chdir(runs.parent)  # `runs/NAME` is read from the working folder
    write_micro_checkpoint(runs / "imported", "rope")
    update = handlers.open_path("imported", "bf16", 2, 16)
    key = update["value"]
    assert key == str((runs / "imported" / "checkpoints" / "latest.pt").resolve())
    labels = dict((k, label) for label, k in update["choices"])
    assert labels[key] == f"runs/imported ({OPENED_HERE}, no decoder)"
    bundle = handlers.ctx.registry.load(key)
    assert all(p.dtype == torch.bfloat16 for p in bundle.encoder.parameters())
    assert (bundle.num_frames, bundle.img_size) == (2, 16)
    header, summary, *_ = handlers.describe(key)
    assert OPENED_HERE in header and "bfloat16 weights" in summary
    # Opened again with other options: the same entry, now in float32 at the model's own size.
    assert handlers.open_path("runs/imported", "fp32", None, None)["value"] == key
    again = handlers.ctx.registry.load(key)
    assert next(again.encoder.parameters()).dtype == torch.float32
    assert (again.num_frames, again.img_size) == (4, 32)


def test_a_bundle_in_a_data_folder_opens(app):
    handlers, _, data, _ = app
    path = write_micro_bundle(data / "fits" / "bundle.safetensors")
    key = handlers.open_path(str(path), "bf16", None, None)["value"]
    bundle = handlers.ctx.registry.load(key)
    assert bundle.has_decoder and next(bundle.encoder.parameters()).dtype == torch.bfloat16


def test_paths_outside_the_folders_are_refused_without_telling_what_is_there(app):
    handlers, runs, _, outside = app
    write_micro_checkpoint(outside / "secret-run", "rope")
    there = error_of(handlers.open_path, str(outside / "secret-run"), "fp32", None, None)
    absent = error_of(handlers.open_path, str(outside / "nothing"), "fp32", None, None)
    climbing = error_of(handlers.open_path, "../private/secret-run", "fp32", None, None)
    for message in (there, absent, climbing):
        assert "lies outside the folders this app opens models from" in message
        assert "--data-dir" in message and "python -m train.released" in message
    # What the user typed is echoed; where a relative path leads is not.
    assert str(outside) not in climbing
    # A link in the runs folder to a file outside: refused, its target not named.
    checkpoint = outside / "secret-run" / "checkpoints" / "latest.pt"
    (runs / "link.pt").symlink_to(checkpoint)
    linked_file = error_of(handlers.open_path, "link.pt", "fp32", None, None)
    assert linked_file.startswith("link.pt links to a file outside")
    assert str(outside) not in linked_file
    # The same words whether or not the path exists: nothing is told about it.
    assert there.replace("secret-run", "X") == absent.replace("nothing", "X")
    assert handlers.ctx.registry.choices() == []
    # A run folder in the runs folder whose checkpoint links outside is refused as well.
    (runs / "linked" / "checkpoints").mkdir(parents=True)
    (runs / "linked" / "config.yaml").write_text((outside / "secret-run/config.yaml").read_text())
    (runs / "linked" / "checkpoints" / "latest.pt").symlink_to(checkpoint)
    message = error_of(handlers.open_path, "linked", "bf16", None, None)
    assert message.startswith("linked links to a file outside") and str(outside) not in message


def test_bad_models_and_options_say_what_to_do_and_are_not_listed(app):
    handlers, runs, data, _ = app
    empty = error_of(handlers.open_path, " ", "fp32", None, None)
    assert "type the path of a run directory" in empty
    missing = error_of(handlers.open_path, "no-such-run", "fp32", None, None)
    assert "nothing there" in missing and "python -m train.released" in missing
    (runs / "notes").mkdir()
    folder = error_of(handlers.open_path, "notes", "fp32", None, None)
    assert folder.startswith("notes: a folder, but not a run directory")
    (runs / "broken.pt").write_bytes(b"not a checkpoint")
    broken = error_of(handlers.open_path, "broken.pt", "bf16", None, None)
    assert broken.startswith("cannot load checkpoint broken.pt: ")
    write_micro_checkpoint(runs / "ok", "rope")
    odd = error_of(handlers.open_path, "ok", "fp32", 3, None)
    assert "multiple of the tubelet depth" in odd
    fraction = error_of(handlers.open_path, "ok", "fp32", None, 16.5)
    assert "whole number" in fraction
    write_micro_bundle(data / "fit.safetensors")
    decoded = error_of(handlers.open_path, "fit.safetensors", "fp32", 2, None)
    assert "without a pixel decoder" in decoded
    # Resolved paths are named as typed (the allowed folders themselves may be named).
    assert str(runs / "notes") not in folder and str(runs / "broken.pt") not in broken
    # None of the failures left an entry behind (the runs folder lists `ok` by itself).
    assert [label for label, _ in handlers.ctx.registry.choices()] == ["run (no decoder): ok"]
