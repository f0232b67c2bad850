"""The Train tab's child processes: a micro training followed by its decoder fit, Stop, Resume,
a decoder fitted on a stopped run, one job at a time, a failing child reported with its log, the
overrides the tab passes, and the time estimates measured from step times."""

from __future__ import annotations

import itertools
import json
import signal
import time
from pathlib import Path

import pytest
import yaml

from conftest import MICRO
from decoder.starter import STARTER_RECIPE
from train.checkpoint import load_checkpoint
from train.config import ConfigError, load_config, to_dict
from train.monitor import read_metrics
from workbench.bundles import BundleRegistry
from workbench.context import AppContext
from workbench.jobs import (
    DEFAULT_STEPS,
    ETA_MAX_CHANGE,
    PHYSICS_RECIPE,
    PHYSICS_SETS_PER_LAW,
    RECIPES,
    STRATEGIES,
    Job,
    JobManager,
    TrainRequest,
    core_runs,
    describe,
    estimate_text,
    log_cadence,
    remaining_seconds,
    smoothed_seconds_per_step,
    step_intervals,
    train_overrides,
)
from workbench.tab_train import TrainHandlers
from workbench.train_curves import PHYSICS_KEY, physics_points

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
    overrides = train_overrides(TrainRequest(steps=20, recipe="causal", lr=5e-5), tmp_path)
    assert "optim.warmup_steps=2" in overrides  # tiny_cpu warms up for 40 steps
    assert "optim.start_lr=5e-05" in overrides  # the warm-up must not start above the peak
    assert "mask.causal_context_frames=4" in overrides  # half of tiny_cpu's 8 frames
    assert "monitor.online_probe_every=10" in overrides
    assert f"out={tmp_path}" in overrides
    with pytest.raises(ConfigError, match="recipe 'sideways': choose one of physics"):
        train_overrides(TrainRequest(recipe="sideways"), tmp_path)
    with pytest.raises(ConfigError, match="recipe 'sideways'"):
        JobManager(tmp_path).start_training(TrainRequest(recipe="sideways"))
    with pytest.raises(ConfigError, match="optim.lr must be a number"):
        train_overrides(TrainRequest(lr="fast"), tmp_path)  # type: ignore[arg-type]


def recipe_settings(overrides: list[str]) -> tuple[str, str, int | None, bool]:
    """(positions, mask strategy, causal context frames or None, frozen patch embedding) of a
    run started with these overrides on tiny_cpu, as the core's config loader reads them."""
    cfg = load_config("tiny_cpu", overrides)
    context = cfg.mask.causal_context_frames if cfg.mask.strategy == "causal" else None
    return cfg.model.positions, cfg.mask.strategy, context, cfg.optim.freeze_patch_embed


def test_each_recipe_passes_its_positions_and_masks(tmp_path):
    expected = {
        # The starter's: the first 4 frames predict the last 4, the patch embedding frozen.
        "physics": ("rope", "causal", 4, True),
        "multiblock": ("sincos", "multiblock", None, False),
        "random_tube": ("sincos", "random_tube", None, False),
        "causal": ("sincos", "causal", 4, False),
    }
    assert set(RECIPES) == set(expected)
    assert {recipe.strategy for recipe in RECIPES.values()} == set(STRATEGIES)
    for name, settings in expected.items():
        overrides = train_overrides(TrainRequest(recipe=name), tmp_path)
        assert recipe_settings(overrides) == settings, name
        assert ("model.positions=rope" in overrides) == (name == "physics")
    # The tab's default is the recipe that learns physics, the starter's own.
    assert TrainRequest().recipe == PHYSICS_RECIPE == "physics"
    starter = [o for o in STARTER_RECIPE if o.startswith(("model.", "mask.", "optim."))]
    assert recipe_settings(starter) == expected["physics"]
    # The sin-cos recipes keep the preset's own positions (vits16's uniform split, say).
    preset = micro_preset(tmp_path, "model.positions=sincos_uniform")
    kept = train_overrides(TrainRequest(preset, recipe="multiblock"), tmp_path)
    assert load_config(preset, kept).model.positions == "sincos_uniform"
    physics = train_overrides(TrainRequest(preset), tmp_path)
    assert load_config(preset, physics).model.positions == "rope"


def test_the_physics_yardstick_is_on_about_every_minute_of_the_default_run(tmp_path):
    overrides = train_overrides(TrainRequest(), tmp_path)
    cfg = load_config("tiny_cpu", overrides)
    assert cfg.steps == DEFAULT_STEPS == 400
    # Step 1, then every 66 steps (about a minute at 1 s a step on quiet cores), and the last.
    assert cfg.monitor.physics_every == 66
    assert cfg.monitor.physics_pairs_per_law == PHYSICS_SETS_PER_LAW == 8
    off = train_overrides(TrainRequest(physics_monitor=False), tmp_path)
    assert load_config("tiny_cpu", off).monitor.physics_every == 0


def test_the_estimate_counts_only_runs_with_the_recipes_positions(tmp_path):
    runs = tmp_path / "runs"
    write_measured_run(runs, "sincos", "tiny_cpu", [2.0] * 30)
    assert "**sincos**" in estimate_text(runs, "tiny_cpu", 300, "multiblock")
    text = estimate_text(runs, "tiny_cpu", 300, PHYSICS_RECIPE)
    assert "No `tiny_cpu` run with these positions has been measured" in text


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
def test_the_default_recipe_trains_and_logs_the_physics_yardstick(tmp_path):
    """A real micro training through the tab's path with the default recipe: RoPE and causal
    masks in its config, and the matched-set accuracy in its metrics log, which the tab's
    curve draws."""
    jobs = JobManager(tmp_path / "runs")
    request = TrainRequest(micro_preset(tmp_path), steps=3, name="physics", online_probe=False)
    request.fit_decoder = False
    job = jobs.start_training(request)
    assert job.physics_every == 1  # a sixth of 3 steps, at least every step
    assert jobs.wait(240) == 0, job.log_tail()
    cfg = load_config(str(job.run_dir / "config.yaml"), [])
    assert (cfg.model.positions, cfg.mask.strategy) == ("rope", "causal")
    assert cfg.mask.causal_context_frames == 2  # half of the micro model's 4 frames
    records = read_metrics(job.run_dir / "metrics.jsonl")
    measured = [(r["step"], r[PHYSICS_KEY]) for r in records if PHYSICS_KEY in r]
    assert [step for step, _ in measured] == [1, 2, 3]
    assert all(0.0 <= value <= 1.0 for _, value in measured)
    assert physics_points(records) == tuple(map(list, zip(*measured, strict=True)))


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
        # Started 40 s ago: 10 s a step, 6 steps to go.
        started = time.time() - 40
        fields = {"process": None, "log_path": tmp_path / "train.log", "started": started}
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


# ---------------------------------------------------------------------------- time estimates


def records_of(step_times: list[float], setup_s: float = 30.0) -> list[dict]:
    """Metrics records of a run logging every step with these step times; the first step also
    carries the set-up time."""
    elapsed, records = setup_s, []
    for step, seconds in enumerate(step_times, start=1):
        elapsed += seconds
        records.append({"step": step, "loss": 1.0, "elapsed_s": elapsed})
    return records


def test_the_time_per_step_is_smoothed_so_one_slow_step_does_not_jump():
    steady, slow = [2.0] * 20, [2.0] * 20 + [40.0] + [2.0] * 20
    assert smoothed_seconds_per_step(step_intervals(records_of(steady))) == pytest.approx(2.0)
    estimates = [
        smoothed_seconds_per_step(step_intervals(records_of(slow[:n]))) for n in range(2, 42)
    ]
    ratios = [later / earlier for earlier, later in itertools.pairwise(estimates)]
    # A step 20 times slower moves the estimate by 25% at most, and it comes back.
    assert max(ratios) <= ETA_MAX_CHANGE + 1e-9 and min(ratios) >= 1 / ETA_MAX_CHANGE - 1e-9
    assert max(estimates) == pytest.approx(2.5) and estimates[-1] < 2.3
    # A lasting change (the machine got busy) shows within about 20 steps.
    busy = step_intervals(records_of([2.0] * 20 + [4.0] * 20))
    assert smoothed_seconds_per_step(busy) == pytest.approx(4.0, rel=0.15)


def test_step_intervals_leave_out_set_up_and_restart_after_a_resume():
    records = records_of([2.0] * 5, setup_s=60.0)
    assert step_intervals(records) == [(1, 2.0)] * 4  # step 1 holds the set-up: left out
    assert step_intervals(records[:1]) == [(1, 62.0)]  # the only measurement there is
    resumed = [*records, {"step": 8, "elapsed_s": 50.0}, {"step": 10, "elapsed_s": 56.0}]
    assert step_intervals(resumed)[-1] == (2, 6.0)  # elapsed_s went back: a new session
    assert step_intervals(resumed, after_step=5) == [(2, 6.0)]


def test_the_eta_counts_down_between_records_and_uses_measured_steps(tmp_path):
    job = Job("train", tmp_path, tmp_path, [], None, tmp_path / "train.log", 0.0, total_steps=100)
    records = records_of([2.0] * 10, setup_s=300.0)  # a slow start does not count
    assert remaining_seconds(job, records) == pytest.approx(180.0)
    assert remaining_seconds(job, records, since_last_record=1.5) == pytest.approx(178.5)
    assert "about 3 min left" in describe(job, records)


def test_the_physics_measurements_are_timed_apart_from_the_steps(tmp_path):
    # 2 s a step; the yardstick at step 1 and every 10 steps takes 60 s more, which the loop
    # spends after writing the step's record (its elapsed_s is taken before the monitors).
    elapsed, records = 30.0, []
    for step in range(1, 22):
        elapsed += 2.0
        record = {"step": step, "loss": 1.0, "elapsed_s": elapsed}
        if step == 1 or step % 10 == 0:
            record["physics"] = record["physics_matched"] = 0.5
            elapsed += 60.0
        records.append(record)
    job = Job("train", tmp_path, tmp_path, [], None, tmp_path / "train.log", 0.0, 100)
    job.physics_every = 10
    # 79 steps at 2 s, and 8 measurements to come (30, 40, ..., 100) at 60 s each.
    assert remaining_seconds(job, records) == pytest.approx(79 * 2.0 + 8 * 60.0)
    assert step_intervals(records, after_physics=True) == [(1, 62.0)] * 3
    # Right after the first measurement nothing typical is timed yet: no estimate, rather
    # than one 30 times too long.
    assert remaining_seconds(job, records[:2]) is None
    assert remaining_seconds(job, records[:3]) == pytest.approx(97 * 2.0 + 10 * 60.0)
    # Smoothed together with the steps, the first measurement sets off the estimate at 62 s a
    # step, and it is still twice too long 20 steps later.
    job.physics_every = 0
    assert remaining_seconds(job, records) > 1.5 * (79 * 2.0 + 8 * 60.0)


def test_the_log_cadence_gives_a_curve_point_every_few_seconds():
    assert log_cadence(None, 450) == 1  # nothing measured yet: every step
    assert log_cadence(2.6, 450) == 1
    assert log_cadence(0.5, 450) == 6  # one point about every 3 s
    assert log_cadence(0.01, 100_000) == 300
    assert log_cadence(0.5, 100_000) == 100  # at most 1000 points in all
    overrides = train_overrides(TrainRequest(steps=450), Path("runs/x"), log_every=6)
    assert "monitor.log_every=6" in overrides
    assert load_config("tiny_cpu", overrides).monitor.log_every == 6


def write_measured_run(
    runs, name: str, preset: str, step_times: list[float], *overrides: str
) -> Path:
    """A run folder as `python -m train` leaves it, with these step times in its metrics."""
    run = runs / name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "latest.pt").write_bytes(b"not read")
    config = to_dict(load_config(preset, [f"out={run}", *overrides]))
    (run / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lines = [json.dumps(r) for r in records_of(step_times)]
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


def test_the_estimate_before_start_is_measured_on_this_machine(tmp_path):
    runs = tmp_path / "runs"
    assert "No `tiny_cpu` run with these positions" in estimate_text(runs, "tiny_cpu", 450)
    write_measured_run(runs, "earlier", "tiny_cpu", [2.0] * 30, "model.positions=rope")
    text = estimate_text(runs, "tiny_cpu", 450)
    assert "2.00 s a step" in text and "**earlier**" in text
    assert "450 steps take about 15 min" in text
    # A run of another model size says nothing about this preset's steps.
    assert "No `vits16` run with these positions" in estimate_text(runs, "vits16", 450)

    # The measured time also sets the curves' cadence of the next run.
    write_measured_run(runs, "quick", "tiny_cpu", [0.5] * 30, "model.positions=rope")
    jobs = JobManager(runs)
    started = []
    jobs._start = lambda *args, **kwargs: started.append(args)  # no child in this test
    jobs.start_training(TrainRequest(steps=450, name="next"))
    command = started[0][3]
    assert "monitor.log_every=6" in command  # the newest run's 0.5 s a step


def test_after_stop_the_status_names_the_step_the_log_names(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("WARNING train: stopped by signal after step 15; checkpoint saved in x\n")
    job = Job("train", tmp_path, tmp_path, [], None, log, 0.0, total_steps=100)
    job.stop_requested, job.returncode = True, 0
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.pt").write_bytes(b"not read")
    text = describe(job, [{"step": 10, "loss": 0.5}])
    assert "stopped at step 15 / 100." in text and "Resume** continues it from step 15" in text
    assert 'pick "run (no decoder): ' in text


@pytest.mark.slow
def test_stop_resume_and_a_decoder_fit_on_the_stopped_run(tmp_path):
    runs = tmp_path / "runs"
    ctx = AppContext.create(runs, starter=tmp_path / "no-starter")
    handlers, jobs = TrainHandlers(ctx), ctx.jobs
    request = TrainRequest(micro_preset(tmp_path), steps=5000, name="long", online_probe=False)
    request.fit_decoder = False
    job = jobs.start_training(request)
    # Nothing measured yet: every step, but at most 1000 points in all.
    assert "monitor.log_every=5" in job.command
    wait_until(lambda: len(job.metrics()) >= 2, 180, "the first logged steps")
    handlers.stop()
    assert jobs.wait(120) == 0, job.log_tail()
    stopped = job.stopped_step()
    checkpoint = job.run_dir / "checkpoints" / "latest.pt"
    assert stopped == load_checkpoint(checkpoint)["step"]
    assert f"stopped at step {stopped} / 5000" in jobs.status().text

    # Usable without a decoder: the Model tab lists it and it loads (decoder None).
    registry = BundleRegistry(runs, starter=tmp_path / "no-starter")
    labels = dict(registry.choices())
    assert "run (no decoder): long" in labels
    assert registry.load(labels["run (no decoder): long"]).decoder is None

    message = handlers.resume(False, 2)
    assert f"Resumed **long** at step {stopped} / 5000" in message
    resumed = jobs.current
    wait_until(lambda: resumed.metrics()[-1]["step"] >= stopped + 2, 180, "steps after the resume")
    handlers.stop()
    assert jobs.wait(120) == 0, resumed.log_tail()
    assert resumed.start_step == stopped and "resume=true" in resumed.command
    # One run's metrics: up to the checkpoint's step, then on from there.
    steps = [r["step"] for r in read_metrics(job.run_dir / "metrics.jsonl")]
    every = next(int(a.split("=")[1]) for a in resumed.command if "log_every=" in a)
    after = [step for step in steps if step > stopped]
    assert steps == sorted(set(steps)) and after[0] <= stopped + every
    assert f"resumed {job.run_dir} at step {stopped}" in resumed.log_text()
    assert resumed.stopped_step() > stopped
    assert (job.run_dir / "train.log").read_text().count("$ ") == 2  # the log tells it all

    assert "Started a decoder fit on **long**" in handlers.fit_decoder_on_this_run(2)
    assert jobs.wait(180) == 0, jobs.current.log_tail()
    assert jobs.current.kind == "decoder"
    assert [r["step"] for r in jobs.current.metrics()] == [1, 2]
    assert (job.run_dir / "decoder" / "bundle.safetensors").is_file()
    assert "run: long/decoder" in dict(registry.choices())
