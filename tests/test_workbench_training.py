"""The Train tab's child processes: a micro training followed by its decoder fit, Stop, one job
at a time, a failing child reported with its log, and the overrides the tab passes."""

from __future__ import annotations

import signal
import time

import pytest
import yaml

from conftest import MICRO
from train.config import ConfigError, load_config, to_dict
from workbench.bundles import BundleRegistry
from workbench.training import Job, JobManager, TrainRequest, core_runs, describe, train_overrides

pytestmark = pytest.mark.xdist_group("workbench_training")


def micro_preset(folder, *extra: str) -> str:
    """A preset YAML of the micro model (the tests' `MICRO` overrides on tiny_cpu)."""
    cfg = load_config("tiny_cpu", [*MICRO, "out=runs/unused", *extra])
    path = folder / "micro.yaml"
    path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    return str(path)


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what} did not happen within {timeout} s")


def test_overrides_fit_the_preset_to_a_short_run(tmp_path):
    overrides = train_overrides(TrainRequest(steps=20, strategy="causal", lr=5e-5), tmp_path)
    assert "optim.warmup_steps=2" in overrides  # tiny_cpu warms up for 40 steps
    assert "optim.start_lr=5e-05" in overrides  # the warm-up must not start above the peak
    assert "mask.causal_context_frames=4" in overrides  # half of tiny_cpu's 8 frames
    assert "monitor.online_probe_every=10" in overrides
    assert f"out={tmp_path}" in overrides
    with pytest.raises(ConfigError, match="masking strategy"):
        train_overrides(TrainRequest(strategy="sideways"), tmp_path)
    with pytest.raises(ConfigError, match="optim.lr must be a number"):
        train_overrides(TrainRequest(lr="fast"), tmp_path)  # type: ignore[arg-type]


def test_run_names_are_checked(tmp_path):
    jobs = JobManager(tmp_path)
    with pytest.raises(ConfigError, match="run name"):
        jobs.start_training(TrainRequest(name="../escape"))


@pytest.mark.slow
def test_training_then_decoder_fit_gives_a_selectable_bundle(tmp_path):
    jobs = JobManager(tmp_path / "runs")
    preset = micro_preset(tmp_path)
    request = TrainRequest(preset, steps=4, lr=1e-3, name="micro", online_probe=False)
    request.decoder_steps = 2
    jobs.start_training(request)
    with pytest.raises(ConfigError, match="one job at a time"):
        jobs.start_training(TrainRequest(preset, steps=4, name="second"))
    wait_until(lambda: jobs.status().job.kind == "decoder", 180, "the decoder fit starting")
    assert jobs.wait(180) == 0, jobs.current.log_tail()
    # The decoder fit's own metrics: it logs its first step and its last (log_every is 10).
    assert jobs.current.kind == "decoder"
    assert [r["step"] for r in jobs.current.metrics()] == [1, 2]
    status = jobs.status()
    assert "finished" in status.text and "selectable in the Model tab" in status.text
    run = tmp_path / "runs" / "micro"
    assert core_runs(tmp_path / "runs") == [run.resolve()]
    labels = [label for label, _ in BundleRegistry(tmp_path / "runs").choices()]
    assert "run: micro/decoder" in labels
    assert (run / "train.log").read_text().startswith("$ ")


@pytest.mark.slow
def test_stop_saves_a_checkpoint_and_drops_the_decoder_fit(tmp_path):
    jobs = JobManager(tmp_path / "runs")
    job = jobs.start_training(
        TrainRequest(micro_preset(tmp_path), steps=5000, name="long", online_probe=False)
    )
    wait_until(lambda: len(job.metrics()) >= 2, 180, "the first logged steps")
    jobs.stop()
    assert jobs.wait(120) == 0, job.log_tail()
    assert (job.run_dir / "checkpoints" / "latest.pt").is_file()
    status = jobs.status()
    assert status.job is job and "stopped" in status.text and job.then_fit_decoder is None
    assert status.records and status.records[-1]["step"] < 5000


@pytest.mark.slow
def test_a_failing_child_is_reported_with_its_log(tmp_path):
    empty = tmp_path / "no_videos"
    empty.mkdir()
    preset = micro_preset(tmp_path, "data.source=videos", f"data.path={empty}")
    jobs = JobManager(tmp_path / "runs")
    jobs.start_training(TrainRequest(preset, steps=3, name="broken", online_probe=False))
    assert jobs.wait(120) == 2
    text = jobs.status().text
    assert "failed (exit code 2)" in text and "no video files" in text


def test_status_lines_say_what_happened(tmp_path):
    def job(**state) -> Job:
        fields = {"process": None, "log_path": tmp_path / "train.log", "started": 0.0}
        return Job(
            "train", tmp_path / "run", tmp_path / "run", [], total_steps=10, **fields, **state
        )

    records = [{"step": 4, "loss": 0.5}]
    running = describe(job(), records)
    assert "running: step 4 / 10, loss 0.5000" in running and "min left" in running
    assert "stopped at step 4 / 10" in describe(job(stop_requested=True, returncode=0), records)
    early = describe(job(stop_requested=True, returncode=-signal.SIGTERM), [])
    assert "stopped before its first step" in early
    (tmp_path / "train.log").write_text("line 1\nerror: the reason\n")
    failed = describe(job(returncode=1), [])
    assert "failed (exit code 1)" in failed and "error: the reason" in failed
