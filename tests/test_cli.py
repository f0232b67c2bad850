"""`python -m train` as users run it: exit codes, kill and resume, signals, torchrun."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO
from train.checkpoint import load_checkpoint
from train.monitor import read_metrics

TIMING_KEYS = {"data_s", "step_s", "clips_per_s", "elapsed_s"}
pytestmark = pytest.mark.slow


def run_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO)}


def train_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "train", "tiny_cpu", *args],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "train", "tiny_cpu", *args],
        cwd=REPO,
        env=run_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_step(metrics_path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if metrics_path.exists() and any(r["step"] >= step for r in read_metrics(metrics_path)):
            return
        if proc.poll() is not None:
            pytest.fail(f"training exited early: {proc.stderr.read()}")
        time.sleep(0.05)
    pytest.fail(f"step {step} not reached in {timeout} s")


def without_timing(records):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def test_invalid_config_exits_2_with_the_key(micro_overrides):
    done = train_cli(*micro_overrides("optim.lr=fast"))
    assert done.returncode == 2
    assert "error: optim.lr must be a number, got 'fast'" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_presets():
    done = subprocess.run(
        [sys.executable, "-m", "train", "--help"],
        cwd=REPO,
        env=run_env(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "tiny_cpu" in done.stdout


def test_sigkill_then_resume_reproduces_the_uninterrupted_run(micro_overrides, tmp_path):
    common = ["steps=40", "checkpoint_every=5", "data.num_workers=1"]
    reference = train_cli(*micro_overrides(*common, run="reference"))
    assert reference.returncode == 0, reference.stderr

    killed_dir = tmp_path / "killed"
    proc = start_cli(*micro_overrides(*common, run="killed"))
    wait_for_step(killed_dir / "metrics.jsonl", 12, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    saved = load_checkpoint(killed_dir)["step"]
    assert 10 <= saved < 40, "the kill should land mid-run, after a checkpoint"

    resumed = train_cli(*micro_overrides(*common, "resume=true", run="killed"))
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed {killed_dir} at step {saved}" in resumed.stderr
    expected = without_timing(read_metrics(tmp_path / "reference" / "metrics.jsonl"))
    actual = without_timing(read_metrics(killed_dir / "metrics.jsonl"))
    assert [r["step"] for r in actual] == list(range(1, 41))
    assert actual == expected
    final_a = load_checkpoint(tmp_path / "reference")["target_encoder"]["norm.weight"]
    final_b = load_checkpoint(killed_dir)["target_encoder"]["norm.weight"]
    assert torch.equal(final_a, final_b)


def test_sigterm_saves_and_exits_cleanly(micro_overrides, tmp_path):
    proc = start_cli(
        *micro_overrides("steps=100000", "optim.warmup_steps=10", "checkpoint_every=1000")
    )
    wait_for_step(tmp_path / "run" / "metrics.jsonl", 3, proc)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["stopped_early"] is True
    assert load_checkpoint(tmp_path / "run")["step"] == summary["steps_done"] >= 3
    assert "continue with resume=true" in err


def test_torchrun_two_processes_match_one(micro_overrides, tmp_path):
    common = ["steps=6", "checkpoint_every=6"]
    single = train_cli(*micro_overrides(*common, run="single"))
    assert single.returncode == 0, single.stderr
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "train",
        "tiny_cpu",
        *micro_overrides(*common, run="ddp"),
    ]
    ddp = subprocess.run(cmd, cwd=REPO, env=run_env(), capture_output=True, text=True, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a = read_metrics(tmp_path / "single" / "metrics.jsonl")
    b = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    assert [r["step"] for r in b] == list(range(1, 7))
    for x, y in zip(a, b):
        assert y["loss"] == pytest.approx(x["loss"], rel=1e-4)
        assert y["grad_norm"] == pytest.approx(x["grad_norm"], rel=1e-3)
    wa = load_checkpoint(tmp_path / "single")["encoder"]["blocks.0.attn.qkv.weight"]
    wb = load_checkpoint(tmp_path / "ddp")["encoder"]["blocks.0.attn.qkv.weight"]
    assert torch.allclose(wa, wb, atol=1e-5)
