"""Training on real footage through `python -m train ... data.source=videos` (issue 3)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from conftest import REPO
from train.config import load_config
from train.loop import train
from train.monitor import read_metrics
from train.runtime import BadDataError
from video_fixtures import SAMPLE_CLIPS, sample_clip, write_broken_files, write_video

pytestmark = pytest.mark.slow


@pytest.fixture
def real_clips(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in SAMPLE_CLIPS:
        shutil.copy(sample_clip(name), folder / name)
    return folder


def test_cli_trains_on_a_folder_of_real_clips(real_clips, micro_overrides):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    args = micro_overrides(
        "data.source=videos", f"data.path={real_clips}", "steps=4", "data.frame_step=2"
    )
    done = subprocess.run(
        [sys.executable, "-m", "train", "tiny_cpu", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    records = read_metrics(load_config("tiny_cpu", args).out + "/metrics.jsonl")
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    assert all(r["skipped"] == 0 for r in records)
    assert records[-1]["loss"] < records[0]["loss"] * 1.05  # finite, not diverging


def test_broken_files_are_skipped_and_counted(real_clips, micro_overrides):
    write_broken_files(real_clips / "broken")  # 6 bad files next to 3 good ones
    cfg = load_config(
        "tiny_cpu",
        micro_overrides(
            "data.source=videos", f"data.path={real_clips}", "steps=3", "data.max_bad_fraction=0.9"
        ),
    )
    with pytest.warns(UserWarning, match="skipped"):
        result = train(cfg)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert records[-1]["skipped"] > 0
    assert records[-1]["skipped"] >= records[0]["skipped"]


def test_too_many_bad_files_stop_the_run_with_a_message(tmp_path, micro_overrides):
    folder = tmp_path / "mostly_broken"
    write_video(folder / "good.mp4", num_frames=40, size=(64, 48))
    write_broken_files(folder / "bad")
    cfg = load_config(
        "tiny_cpu",
        micro_overrides(
            "data.source=videos",
            f"data.path={folder}",
            "steps=200",
            "data.frame_step=1",
            # The check needs 200 draws (25 steps of 8 clips): one checkpoint before it stops.
            "checkpoint_every=10",
        ),
    )
    with pytest.warns(UserWarning), pytest.raises(BadDataError) as err:
        train(cfg)
    message = str(err.value)
    assert "data.max_bad_fraction=10%" in message and "skipped" in message
    assert (tmp_path / "run" / "checkpoints" / "latest.pt").exists()
