"""Teaching trainings and decoder fits as child processes, one at a time, followed through
their metrics.jsonl.

The app runs exactly the commands a user would type (`python -m train ...`, then
`python -m decoder RUN ...`), so a run started here is an ordinary run: its directory, config,
metrics and checkpoints outlive the app. Stop sends SIGTERM; the loops finish their step, save
a checkpoint and exit 0; Resume runs the same training again with `resume=true`. Each child's
output goes to a log file next to its metrics.

Time estimates come from step times measured on this machine: an earlier run's metrics before a
start, the running job's own metrics while it runs, smoothed so that one slow step (an online
probe, a busy machine for a moment) does not throw the estimate around.
"""

from __future__ import annotations

import atexit
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import torch
import yaml

from train.checkpoint import LATEST
from train.config import ConfigError, MaskStrategy, load_config, to_dict
from train.monitor import read_metrics
from train.run_dir import LOCK_NAME, RunLock
from workbench.bundles import BUNDLE_NAME, NO_DECODER
from workbench.paths import shown
from workbench.runs import core_runs as core_runs  # the Train tab's and tests' import
from workbench.runs import is_core_run

STRATEGIES: tuple[str, ...] = get_args(MaskStrategy)
DECODER_DIR = "decoder"
DEFAULT_DECODER_STEPS = 300
ONLINE_PROBE_CLIPS = 256
# The intuitive-physics yardstick during a run (train/eval/physics.py): this many matched sets
# per law (4 laws), measured at step 1, then every sixth of the run and at the last step: about
# a point a minute at the default length. 32 sets cost about as much as 5-6 training steps of
# the teaching preset (measured in the tab's own run, see tab_train); 64 would double that for
# an interval half as wide.
PHYSICS_SETS_PER_LAW = 8
PHYSICS_POINTS = 6
LOG_TAIL_LINES = 12
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
JobKind = Literal["train", "decoder"]
# Both loops log this line when SIGTERM stops them; its step is the checkpoint's step, which the
# metrics may not hold (only logged steps are written there).
STOPPED_AT = re.compile(r"stopped by signal after step (\d+)")

# The curves should get a point about this often, so they visibly move while the page watches.
CURVE_POINT_S = 3.0
# ... but a long run must not write more points than the page can re-read every refresh.
MAX_CURVE_POINTS = 1000
# Smoothing of the seconds per step: each step pulls the estimate this far towards its own
# time, so a lasting change shows within about ten steps...
ETA_WEIGHT = 0.1
# ... and one record never moves it by more than this factor, however slow its steps were.
ETA_MAX_CHANGE = 1.25


@dataclass(frozen=True)
class Recipe:
    """What a run trains with on top of its preset: positions and masks."""

    label: str  # what the Train tab shows
    positions: str | None  # model.positions; None: the preset's own
    strategy: str  # mask.strategy
    freeze_patch_embed: bool = False  # optim.freeze_patch_embed


# The recipe that learns intuitive physics in minutes on a CPU (decoder.starter's, docs/results.md
# "3-D RoPE is the lever"): rotary positions, the first half of the clip predicting the rest,
# the patch embedding kept at its initialisation.
# The others keep the preset's positions (sin-cos tables in tiny_cpu) with each masking
# strategy: with those, the yardstick does not rise within a teaching run's minutes.
PHYSICS_RECIPE = "physics"
RECIPES: dict[str, Recipe] = {
    PHYSICS_RECIPE: Recipe(
        "physics recipe: 3-D RoPE + causal masks + frozen patch embedding (the starter's)",
        "rope",
        "causal",
        freeze_patch_embed=True,
    ),
    "multiblock": Recipe(
        "preset positions (sin-cos) + multi-block masks (the paper's)", None, "multiblock"
    ),
    "random_tube": Recipe("preset positions (sin-cos) + random tubes", None, "random_tube"),
    "causal": Recipe("preset positions (sin-cos) + causal masks", None, "causal"),
}
# 300 steps showed learning in one run (56 -> 75%) and none in another (59 -> 59%); 400 steps
# rose clearly (59 -> 81%) in 7.6 min on 2 quiet cores, and with the frozen patch embedding
# (56 -> 81%) in 7.1 min.
DEFAULT_STEPS = 400


@dataclass
class TrainRequest:
    preset: str = "tiny_cpu"
    steps: int = DEFAULT_STEPS
    recipe: str = PHYSICS_RECIPE  # a key of RECIPES
    lr: float = 5e-4
    name: str = ""
    online_probe: bool = True
    fit_decoder: bool = True
    decoder_steps: int = DEFAULT_DECODER_STEPS
    physics_monitor: bool = True  # the matched-set yardstick during the run


# ---------------------------------------------------------------------------- step times


def measured_physics(record: dict[str, Any]) -> bool:
    """Whether the loop ran the physics yardstick after this record's step. The record's
    `elapsed_s` is taken before the monitors, so the yardstick's time (tens of steps' worth)
    falls into the interval that follows it."""
    return "physics" in record


def step_intervals(
    records: Iterable[dict[str, Any]], after_step: int = 0, after_physics: bool | None = None
) -> list[tuple[int, float]]:
    """(steps, seconds) between consecutive logged records after `after_step`, from their
    `elapsed_s`. The first record of each session only anchors the next interval: its time
    holds the set-up and first allocations, not a typical step. A resumed run restarts
    `elapsed_s` at 0, so where it goes back a new session starts. With one record only, its
    own time is all there is. `after_physics` True / False keeps only the intervals that
    follow a physics measurement / that do not (None: all, and the one-record fallback)."""
    intervals: list[tuple[int, float]] = []
    first: tuple[int, float] | None = None
    previous: tuple[int, float, bool] | None = None
    for record in records:
        step, elapsed = int(record.get("step", 0)), record.get("elapsed_s")
        if step <= after_step or elapsed is None:
            continue
        if previous is None or elapsed < previous[1] or step <= previous[0]:
            first = first or (step - after_step, float(elapsed))
        elif after_physics is None or after_physics == previous[2]:
            intervals.append((step - previous[0], elapsed - previous[1]))
        previous = (step, float(elapsed), measured_physics(record))
    if not intervals and first is not None and after_physics is None:
        return [first]
    return intervals


def smoothed_seconds_per_step(intervals: Iterable[tuple[int, float]]) -> float | None:
    """Seconds per step, followed through the (steps, seconds) intervals with an exponential
    moving average per step, each interval moving it by at most ETA_MAX_CHANGE; None without
    intervals."""
    estimate: float | None = None
    for steps, seconds in intervals:
        if steps <= 0:
            continue
        rate = max(seconds, 0.0) / steps
        if estimate is None or estimate <= 0:
            estimate = rate
            continue
        weight = 1 - (1 - ETA_WEIGHT) ** steps  # an interval of n steps counts as n steps
        target = estimate + weight * (rate - estimate)
        estimate = min(max(target, estimate / ETA_MAX_CHANGE), estimate * ETA_MAX_CHANGE)
    return estimate


def log_cadence(seconds_per_step: float | None, steps: int) -> int:
    """`monitor.log_every` for a run: a curve point about every CURVE_POINT_S seconds (every
    step while nothing is measured yet), and no more than MAX_CURVE_POINTS points in all."""
    every = 1 if not seconds_per_step else round(CURVE_POINT_S / seconds_per_step)
    return max(1, every, math.ceil(steps / MAX_CURVE_POINTS))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _costs_the_same(run_config: dict[str, Any], preset_config: dict[str, Any]) -> bool:
    """Whether a run's steps cost what the preset's would: same model, batch and precision."""
    keys = (("model",), ("data", "batch_size"), ("data", "source"), ("precision",))

    def pick(config: dict[str, Any], key: tuple[str, ...]) -> Any:
        for part in key:
            config = config.get(part, {}) if isinstance(config, dict) else {}
        return config

    return all(pick(run_config, key) == pick(preset_config, key) for key in keys)


@dataclass
class StepTime:
    seconds_per_step: float
    run_name: str  # the run it was measured in


def measured_step_time(
    runs_dir: Path, preset: str, recipe: str = PHYSICS_RECIPE
) -> StepTime | None:
    """The wall time per step (monitors included) of the newest run under `runs_dir` whose
    steps cost what the preset's do with this recipe's positions, or None when no such run has
    logged two steps."""
    try:
        preset_config = to_dict(load_config(preset, recipe_model_overrides(recipe)))
    except ConfigError:
        return None
    runs = [run for run in core_runs(runs_dir) if (run / "metrics.jsonl").is_file()]
    runs.sort(key=lambda run: (run / "metrics.jsonl").stat().st_mtime, reverse=True)
    for run in runs:
        if not _costs_the_same(_read_yaml(run / "config.yaml"), preset_config):
            continue
        intervals = step_intervals(read_metrics(run / "metrics.jsonl"))
        steps = sum(n for n, _ in intervals)
        if steps > 0:
            return StepTime(sum(s for _, s in intervals) / steps, run.name)
    return None


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    if seconds < 3600:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"


def estimate_text(
    runs_dir: Path, preset: str, steps: int | None, recipe: str = PHYSICS_RECIPE
) -> str:
    """What the tab promises before Start: a duration measured on this machine, or none."""
    measured = measured_step_time(Path(runs_dir), preset, recipe)
    if measured is None:
        what = "with these positions " if recipe_model_overrides(recipe) else ""
        return (
            f"No `{preset}` run {what}has been measured on this machine yet: the time left "
            "appears once the first steps are logged."
        )
    rate = measured.seconds_per_step
    text = f"`{preset}` took {rate:.2f} s a step on this machine (run **{measured.run_name}**)"
    if steps:
        text += f": {int(steps)} steps take {duration_text(rate * int(steps))}"
    return text + ", if the machine is as busy as it was then."


# ---------------------------------------------------------------------------- commands


def checkpoint_step(run_dir: Path) -> int:
    """The step of a run's latest checkpoint. Memory-mapped: only the step is read, so a large
    checkpoint costs no more than a small one."""
    path = run_dir / "checkpoints" / LATEST
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(state["step"])
    except Exception as err:  # whatever makes it unreadable, the user's answer is the same
        raise ConfigError(
            f"cannot read the checkpoint {shown(path)} ({type(err).__name__}); the training "
            "itself reports why with `python -m train CONFIG resume=true`"
        ) from None


def _recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise ConfigError(f"recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def recipe_model_overrides(name: str) -> list[str]:
    """The recipe's overrides that change what a step costs (the model's positions); an
    unknown recipe changes nothing here (train_overrides reports it)."""
    positions = RECIPES[name].positions if name in RECIPES else None
    return [f"model.positions={positions}"] if positions else []


def physics_every(steps: int) -> int:
    """`monitor.physics_every`: PHYSICS_POINTS points after the one at step 1 (the loop also
    measures the last step)."""
    return max(1, steps // PHYSICS_POINTS)


def train_overrides(
    request: TrainRequest, run_dir: Path, log_every: int | None = None
) -> list[str]:
    """`key=value` overrides for `python -m train PRESET ...`, checked by the core's config
    loader here, so a bad value is reported in the app instead of in a child's log.
    `log_every` sets how often the curves get a point (see log_cadence)."""
    recipe = _recipe(request.recipe)
    steps = int(request.steps)
    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    # The preset with the learning rate alone first: the core checks the value and its type.
    preset = load_config(request.preset, [f"optim.lr={request.lr}"])
    lr = preset.optim.lr
    overrides = [
        f"steps={steps}",
        *recipe_model_overrides(request.recipe),
        f"mask.strategy={recipe.strategy}",
        f"optim.lr={lr}",
        f"out={run_dir}",
    ]
    if recipe.freeze_patch_embed:
        overrides.append("optim.freeze_patch_embed=true")
    if log_every is not None:
        overrides.append(f"monitor.log_every={int(log_every)}")
    # The preset's warm-up must fit inside a shorter run, and must not start above the peak.
    if preset.optim.warmup_steps > steps:
        overrides.append(f"optim.warmup_steps={steps // 10}")
    if preset.optim.start_lr > lr:
        overrides.append(f"optim.start_lr={lr}")
    if recipe.strategy == "causal":
        # The model sees the first half of the clip and predicts the rest (the starter's 4 of 8).
        model = preset.model
        half = model.num_frames // 2 // model.tubelet_size * model.tubelet_size
        overrides.append(f"mask.causal_context_frames={max(half, model.tubelet_size)}")
    if request.online_probe:
        every = max(10, steps // 8)
        overrides += [
            f"monitor.online_probe_every={every}",
            f"monitor.online_probe_clips={ONLINE_PROBE_CLIPS}",
        ]
    if request.physics_monitor:
        overrides += [
            f"monitor.physics_every={physics_every(steps)}",
            f"monitor.physics_pairs_per_law={PHYSICS_SETS_PER_LAW}",
        ]
    load_config(request.preset, overrides)  # raises ConfigError naming the key
    return overrides


@dataclass
class Job:
    kind: JobKind
    run_dir: Path  # the core run
    out_dir: Path  # where this job writes metrics.jsonl: the run, or its decoder fit
    command: list[str]
    process: subprocess.Popen
    log_path: Path
    started: float
    total_steps: int
    then_fit_decoder: int | None = None  # decoder steps to run after a training, or None
    start_step: int = 0  # the checkpoint's step a resumed job starts from
    physics_every: int = 0  # the run's monitor.physics_every (0: no yardstick), for the ETA
    log_offset: int = 0  # where this job's output starts in its log (a resume appends)
    stop_requested: bool = False
    returncode: int | None = None
    finished: float | None = None
    notice: str = ""  # something the user should know about this job (shown with its status)

    @property
    def running(self) -> bool:
        return self.returncode is None

    def metrics(self) -> list[dict[str, Any]]:
        path = self.out_dir / "metrics.jsonl"
        return read_metrics(path) if path.is_file() else []

    def log_text(self) -> str:
        """This job's part of its log."""
        if not self.log_path.is_file():
            return ""
        with self.log_path.open("rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def stopped_step(self) -> int | None:
        """The step the child saved when Stop reached it, as its log says; None if it did not
        say (it finished, or was stopped before its loop started)."""
        found = STOPPED_AT.findall(self.log_text())
        return int(found[-1]) if found else None

    def seconds_since_last_record(self) -> float:
        path = self.out_dir / "metrics.jsonl"
        return max(0.0, time.time() - path.stat().st_mtime) if path.is_file() else 0.0


@dataclass
class JobStatus:
    job: Job | None
    text: str
    records: list[dict[str, Any]] = field(default_factory=list)


class JobManager:
    """Starts and follows one child at a time; shared by every browser session of the app."""

    def __init__(self, runs_dir: str | Path = "runs", python: str = sys.executable):
        self.runs_dir = Path(runs_dir)
        self.python = python
        self.current: Job | None = None
        self._lock = threading.Lock()
        atexit.register(self.stop)

    # ------------------------------------------------------------------------ starting

    def start_training(self, request: TrainRequest) -> Job:
        _recipe(request.recipe)  # an unknown recipe is named as such, not as a bad run name
        name = request.name.strip() or f"{request.preset}-{request.recipe}-" + time.strftime(
            "%Y%m%d-%H%M%S"
        )
        if not RUN_NAME.fullmatch(name):
            raise ConfigError(
                f"run name {name!r}: use letters, digits, '.', '_' and '-' (no spaces or '/')"
            )
        run_dir = (self.runs_dir / name).resolve()
        if (run_dir / "checkpoints" / LATEST).exists():
            raise ConfigError(
                f"a run named {name} already exists in {shown(self.runs_dir)}; pick a new name"
            )
        if (run_dir / LOCK_NAME).exists():
            # Another process (a second app, a CLI training) may be in it before its first
            # checkpoint: its lock says so. The child takes the lock itself for its whole run.
            with RunLock(run_dir):
                pass
        measured = measured_step_time(self.runs_dir, request.preset, request.recipe)
        seconds_per_step = measured.seconds_per_step if measured is not None else None
        log_every = log_cadence(seconds_per_step, int(request.steps))
        overrides = train_overrides(request, run_dir, log_every)
        command = [self.python, "-m", "train", request.preset, *overrides]
        then = int(request.decoder_steps) if request.fit_decoder else None
        physics = physics_every(int(request.steps)) if request.physics_monitor else 0
        return self._start(
            "train", run_dir, run_dir, command, int(request.steps), then, physics_every=physics
        )

    def resume_training(self, run_dir: str | Path, then_fit_decoder: int | None = None) -> Job:
        """Continue a stopped run from its checkpoint (`resume=true`) with the config it was
        started with, up to its planned number of steps."""
        run_dir = Path(run_dir).resolve()
        if not is_core_run(run_dir):
            raise ConfigError(f"{shown(run_dir)} is not a training run with checkpoints/{LATEST}")
        config_path = run_dir / "config.yaml"
        total = int(_read_yaml(config_path).get("steps", 0))
        metrics_path = run_dir / "metrics.jsonl"
        records = read_metrics(metrics_path) if metrics_path.is_file() else []
        done = checkpoint_step(run_dir)  # a stopped run's last step may not be logged
        if total and done >= total:
            raise ConfigError(
                f"{run_dir.name} already finished its {total} steps: start a new run to train "
                "longer"
            )
        intervals = step_intervals(records)
        seconds_per_step = smoothed_seconds_per_step(intervals)
        overrides = [
            "resume=true",
            f"out={run_dir}",
            f"monitor.log_every={log_cadence(seconds_per_step, total)}",
        ]
        cfg = load_config(str(config_path), overrides)  # raises ConfigError naming the key
        command = [self.python, "-m", "train", str(config_path), *overrides]
        return self._start(
            "train",
            run_dir,
            run_dir,
            command,
            cfg.steps,
            then_fit_decoder,
            start_step=done,
            physics_every=cfg.monitor.physics_every,
        )

    @property
    def last_run(self) -> Path | None:
        """The core run of the latest job (a training, or the run a decoder was fitted on)."""
        return self.current.run_dir if self.current is not None else None

    def start_decoder_fit(self, run_dir: str | Path, steps: int = DEFAULT_DECODER_STEPS) -> Job:
        run_dir = Path(run_dir).resolve()
        if not is_core_run(run_dir):
            raise ConfigError(f"{shown(run_dir)} is not a training run with checkpoints/{LATEST}")
        steps = int(steps)
        if steps < 1:
            raise ConfigError(f"decoder steps={steps} must be at least 1")
        out_dir = run_dir / DECODER_DIR
        resume = (out_dir / "checkpoints" / LATEST).is_file() and not (
            out_dir / BUNDLE_NAME
        ).is_file()
        command = [
            self.python,
            "-m",
            "decoder",
            str(run_dir),
            f"steps={steps}",
            f"optim.warmup_steps={min(100, steps // 10)}",
            "eval_every=0",
            "eval_clips=16",
            # The curves get about a hundred points, the first and the last included.
            f"log_every={max(1, steps // 100)}",
            f"out={out_dir}",
        ]
        if resume:  # a fit stopped earlier continues where it was
            command.append("resume=true")
        elif out_dir.exists():
            raise ConfigError(
                f"{shown(out_dir)} already holds a finished decoder fit; its bundle is in the "
                "Model tab"
            )
        return self._start("decoder", run_dir, out_dir, command, steps, None)

    def _start(
        self,
        kind: JobKind,
        run_dir: Path,
        out_dir: Path,
        command: Sequence[str],
        total_steps: int,
        then_fit_decoder: int | None,
        start_step: int = 0,
        physics_every: int = 0,
    ) -> Job:
        with self._lock:
            self._poll_locked()
            if self.current is not None and self.current.running:
                raise ConfigError(
                    f"a {self.current.kind} job is running ({self.current.out_dir.name}); "
                    "stop it or wait until it finishes: one job at a time"
                )
            out_dir.mkdir(parents=True, exist_ok=True)
            log_path = out_dir / f"{kind}.log"
            env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONUNBUFFERED": "1"}
            # A resumed job adds to its run's log, so the log tells the run's whole story.
            log_offset = log_path.stat().st_size if start_step and log_path.is_file() else 0
            with log_path.open("a" if log_offset else "w") as log:
                log.write("$ " + " ".join(command) + "\n")
                log.flush()
                process = subprocess.Popen(
                    list(command), stdout=log, stderr=subprocess.STDOUT, env=env
                )
            self.current = Job(
                kind=kind,
                run_dir=run_dir,
                out_dir=out_dir,
                command=list(command),
                process=process,
                log_path=log_path,
                started=time.time(),
                total_steps=total_steps,
                then_fit_decoder=then_fit_decoder,
                start_step=start_step,
                physics_every=physics_every,
                log_offset=log_offset,
            )
            return self.current

    # ------------------------------------------------------------------------ following

    def stop(self) -> Job | None:
        """Ask the running job to save and exit (SIGTERM); a queued decoder fit is dropped."""
        with self._lock:
            job = self.current
            if job is None or not job.running:
                return job
            job.stop_requested = True
            job.then_fit_decoder = None
            if job.process.poll() is None:
                job.process.send_signal(signal.SIGTERM)
            return job

    def poll(self) -> Job | None:
        """Update the current job's state; start the decoder fit that follows a training."""
        with self._lock:
            job = self._poll_locked()
        if job is not None and not job.running and job.returncode == 0 and job.then_fit_decoder:
            steps, job.then_fit_decoder = job.then_fit_decoder, None
            try:
                return self.start_decoder_fit(job.run_dir, steps)
            except ConfigError as err:
                job.notice = f"The decoder fit did not start: {err}"
        return job

    def _poll_locked(self) -> Job | None:
        job = self.current
        if job is not None and job.running:
            code = job.process.poll()
            if code is not None:
                job.returncode = code
                job.finished = time.time()
        return job

    def status(self) -> JobStatus:
        job = self.poll()
        if job is None:
            return JobStatus(None, "No training yet: choose the settings and press Start.")
        records = job.metrics()
        text = describe(job, records, job.seconds_since_last_record())
        return JobStatus(job, f"{text}\n\n{job.notice}" if job.notice else text, records)

    def wait(self, timeout: float) -> int | None:
        """Block until the current child exits (tests, scripts); its return code."""
        job = self.current
        if job is None:
            return None
        try:
            job.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        self.poll()
        return job.returncode


def remaining_seconds(
    job: Job, records: list[dict[str, Any]], since_last_record: float = 0.0
) -> float | None:
    """Time left for a running job: its steps to go at its smoothed seconds per step, less
    the time already spent since the last record (so it counts down between records instead
    of standing still). None before anything is measured."""
    step = int(records[-1].get("step", 0)) if records else 0
    if not job.physics_every:
        seconds_per_step = smoothed_seconds_per_step(step_intervals(records, job.start_step))
        extra = 0.0
    else:
        # The yardstick's measurements are far slower than a step: smoothed with the steps,
        # one of them would throw the estimate around. Steps and measurements are timed apart.
        plain = step_intervals(records, job.start_step, after_physics=False)
        seconds_per_step = smoothed_seconds_per_step(plain)
        if seconds_per_step is None and any(r.get("elapsed_s") is not None for r in records):
            return None  # only a measurement timed so far: no typical step yet
        extra = _physics_seconds_left(job, records, step, seconds_per_step or 0.0)
    if seconds_per_step is None:
        if step <= job.start_step:
            return None
        # Records without elapsed_s: the job's wall time so far, set-up included.
        seconds_per_step = (time.time() - job.started) / (step - job.start_step)
    return max(0.0, (job.total_steps - step) * seconds_per_step + extra - since_last_record)


def _physics_seconds_left(
    job: Job, records: list[dict[str, Any]], step: int, seconds_per_step: float
) -> float:
    """The time of the physics measurements still to come (at multiples of physics_every and
    the last step, as the loop schedules them), at the mean time the run's own measurements
    took beyond their steps; 0 before one is timed."""
    timed = step_intervals(records, job.start_step, after_physics=True)
    if not timed:
        return 0.0
    each = sum(max(0.0, s - n * seconds_per_step) for n, s in timed) / len(timed)
    every, total = job.physics_every, job.total_steps
    to_come = total // every - step // every + (total % every != 0 and step < total)
    return each * max(0, to_come)


def describe(job: Job, records: list[dict[str, Any]], since_last_record: float = 0.0) -> str:
    """One paragraph of status for the UI."""
    what = "Training" if job.kind == "train" else "Decoder fit for"
    name = job.run_dir.name
    last = records[-1] if records else {}
    step = int(last.get("step", 0))
    stopped_at = job.stopped_step() if job.stop_requested and not job.running else None
    if stopped_at is not None:
        # The saved step, which the log names; the curves end at the last logged step before.
        step = stopped_at
    progress = f"step {step} / {job.total_steps}"
    if "loss" in last and (stopped_at is None or stopped_at == last.get("step")):
        progress += f", loss {last['loss']:.4f}"
    if job.running:
        elapsed = time.time() - job.started
        text = f"{what} **{name}** running: {progress} ({elapsed:.0f} s)"
        remaining = remaining_seconds(job, records, since_last_record)
        if remaining is not None and step < job.total_steps:
            text += f", {duration_text(remaining)} left"
        if job.stop_requested:
            text += ". Stopping: finishing the step and saving a checkpoint..."
        return text + "."
    if job.returncode == 0:
        done = "stopped" if job.stop_requested else "finished"
        text = f"{what} **{name}** {done} at {progress}. Run folder: `{shown(job.out_dir)}`."
        if job.kind == "decoder" and (job.out_dir / BUNDLE_NAME).is_file():
            text += " Its bundle is now selectable in the Model tab."
        if job.kind == "train" and (job.run_dir / "checkpoints" / LATEST).is_file():
            if job.stop_requested and step < job.total_steps:
                text += f" **Resume** continues it from step {step}."
            if not (job.run_dir / DECODER_DIR / BUNDLE_NAME).is_file():
                text += (
                    " It is usable now, without a decoder, in Features, Embeddings and the "
                    f'surprise curve (pick "{NO_DECODER}: {name}" in the Model tab); '
                    "**Fit a decoder on this run** adds decoded pixels."
                )
        return text
    if job.stop_requested and job.returncode == -signal.SIGTERM:
        # Stopped while still starting up, before the loop listens for SIGTERM.
        return f"{what} **{name}** stopped before its first step; nothing was saved."
    return (
        f"{what} **{name}** failed (exit code {job.returncode}). Last lines of "
        f"`{shown(job.log_path)}`:\n\n```\n{job.log_tail()}\n```"
    )
