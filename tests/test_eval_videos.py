"""Frozen evaluation and the online probe on labelled video lists (`path label` lines)."""

from __future__ import annotations

import pytest
import torch

from train.config import load_config
from train.eval.__main__ import main
from train.eval.config import load_eval_config
from train.eval.evaluation import evaluate
from train.eval.online import OnlineProbe
from train.loop import train
from train.models import build_encoder
from video_fixtures import write_video

PROBE = ["probe.kinds=[attentive,knn]", "probe.attentive.steps=5", "seeds=[0]", "fractions=[1.0]"]


def video_list(folder, labels: list[str], name: str = "list.txt"):
    lines = []
    for i, label in enumerate(labels):
        write_video(folder / f"clip{i}.mp4", num_frames=12, size=(40, 32))
        lines.append(f"clip{i}.mp4 {label}" if label else f"clip{i}.mp4")
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def micro_run(micro_overrides):
    return train(load_config("tiny_cpu", micro_overrides("steps=2"))).run_dir


def test_a_labelled_list_is_split_and_probed(micro_run, tmp_path):
    listed = video_list(tmp_path, ["cat", "dog"] * 4)
    cfg = load_eval_config(
        ["data.source=videos", f"data.train_list={listed}", "data.val_fraction=0.25", *PROBE]
    )
    report = evaluate(micro_run, cfg)
    assert (report.data["train_clips"], report.data["val_clips"]) == (6, 2)
    assert [r.label for r in report.results] == ["label", "label"]
    assert report.chance["label"] in (0.5, 1.0)
    assert report.data["train_list"]["path"] == str(listed.resolve())


def test_a_separate_validation_list_must_name_the_same_classes(micro_run, tmp_path, capsys):
    train_list = video_list(tmp_path, ["cat", "dog", "cat", "dog"])
    other = video_list(tmp_path, ["cat", "bird"], name="val.txt")
    args = [str(micro_run), "data.source=videos", f"data.train_list={train_list}", *PROBE]
    assert main([*args, f"data.val_list={other}"]) == 1
    assert "same label set" in capsys.readouterr().err
    same = video_list(tmp_path, ["dog", "cat"], name="val2.txt")
    assert main([*args, f"data.val_list={same}"]) == 0
    assert "4 probe-training clips, accuracy on 2 held-out clips" in capsys.readouterr().out


def test_an_unlabelled_list_cannot_be_evaluated(micro_run, tmp_path, capsys):
    listed = video_list(tmp_path, ["", "", ""])
    assert main([str(micro_run), "data.source=videos", f"data.train_list={listed}"]) == 1
    assert "has no labels: a probe needs a list file of `path label` lines" in (
        capsys.readouterr().err
    )


def test_the_online_probe_reads_the_list_labels(micro_overrides, tmp_path):
    listed = video_list(tmp_path, ["cat", "dog"] * 3)
    cfg = load_config("tiny_cpu", micro_overrides("data.source=videos", f"data.path={listed}"))
    probe = OnlineProbe(cfg, torch.device("cpu"))
    scores = probe.measure(build_encoder(cfg.model).eval())
    assert list(scores) == ["probe_label"] and 0.0 <= scores["probe_label"] <= 1.0
    assert probe.clips.shape[0] == 6  # every video once, fewer than online_probe_clips
