"""Teaching trainings and decoder fits as child processes, one at a time, followed through
their metrics.jsonl.

The app runs exactly the commands a user would type (`python -m train ...`, then
`python -m decoder RUN ...`), so a run started here is an ordinary run: its directory, config,
metrics and checkpoints outlive the app. Stop sends SIGTERM; the loops finish their step, save
a checkpoint and exit 0. Each child's output goes to a log file next to its metrics.
"""

from __future__ import annotations

import atexit
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from train.checkpoint import LATEST
from train.config import ConfigError, MaskStrategy, load_config
from train.monitor import read_metrics
from train.run_dir import LOCK_NAME, RunLock
from workbench.bundles import BUNDLE_NAME
from workbench.paths import shown
from workbench.runs import core_runs as core_runs  # the Train tab's and tests' import
from workbench.runs import is_core_run

STRATEGIES: tuple[str, ...] = get_args(MaskStrategy)
DECODER_DIR = "decoder"
DEFAULT_DECODER_STEPS = 300
ONLINE_PROBE_CLIPS = 256
LOG_TAIL_LINES = 12
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,80}")
JobKind = Literal["train", "decoder"]


@dataclass
class TrainRequest:
    preset: str = "tiny_cpu"
    steps: int = 450
    strategy: str = "multiblock"
    lr: float = 5e-4
    name: str = ""
    online_probe: bool = True
    fit_decoder: bool = True
    decoder_steps: int = DEFAULT_DECODER_STEPS


def train_overrides(request: TrainRequest, run_dir: Path) -> list[str]:
    """`key=value` overrides for `python -m train PRESET ...`, checked by the core's config
    loader here, so a bad value is reported in the app instead of in a child's log."""
    if request.strategy not in STRATEGIES:
        raise ConfigError(f"masking strategy {request.strategy!r}: choose {', '.join(STRATEGIES)}")
    steps = int(request.steps)
    if steps < 1:
        raise ConfigError(f"steps={steps} must be at least 1")
    # The preset with the learning rate alone first: the core checks the value and its type.
    preset = load_config(request.preset, [f"optim.lr={request.lr}"])
    lr = preset.optim.lr
    overrides = [
        f"steps={steps}",
        f"mask.strategy={request.strategy}",
        f"optim.lr={lr}",
        f"out={run_dir}",
    ]
    # The preset's warm-up must fit inside a shorter run, and must not start above the peak.
    if preset.optim.warmup_steps > steps:
        overrides.append(f"optim.warmup_steps={steps // 10}")
    if preset.optim.start_lr > lr:
        overrides.append(f"optim.start_lr={lr}")
    if request.strategy == "causal":
        # The model sees the first half of the clip and predicts the rest.
        model = preset.model
        half = model.num_frames // 2 // model.tubelet_size * model.tubelet_size
        overrides.append(f"mask.causal_context_frames={max(half, model.tubelet_size)}")
    if request.online_probe:
        every = max(10, steps // 8)
        overrides += [
            f"monitor.online_probe_every={every}",
            f"monitor.online_probe_clips={ONLINE_PROBE_CLIPS}",
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

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log_path.is_file():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
        name = request.name.strip() or f"{request.preset}-{request.strategy}-" + time.strftime(
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
        overrides = train_overrides(request, run_dir)
        command = [self.python, "-m", "train", request.preset, *overrides]
        then = int(request.decoder_steps) if request.fit_decoder else None
        return self._start("train", run_dir, run_dir, command, int(request.steps), then)

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
            with log_path.open("w") as log:
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
        text = describe(job, records)
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


def describe(job: Job, records: list[dict[str, Any]]) -> str:
    """One paragraph of status for the UI."""
    what = "Training" if job.kind == "train" else "Decoder fit for"
    name = job.run_dir.name
    last = records[-1] if records else {}
    step = int(last.get("step", 0))
    progress = f"step {step} / {job.total_steps}"
    if "loss" in last:
        progress += f", loss {last['loss']:.4f}"
    if job.running:
        elapsed = time.time() - job.started
        text = f"{what} **{name}** running: {progress} ({elapsed:.0f} s)"
        if step > 0:
            remaining = elapsed / step * (job.total_steps - step)
            text += f", about {remaining / 60:.1f} min left"
        if job.stop_requested:
            text += ". Stopping: finishing the step and saving a checkpoint..."
        return text + "."
    if job.returncode == 0:
        done = "stopped" if job.stop_requested else "finished"
        text = f"{what} **{name}** {done} at {progress}. Run folder: `{shown(job.out_dir)}`."
        if job.kind == "decoder" and (job.out_dir / BUNDLE_NAME).is_file():
            text += " Its bundle is now selectable in the Model tab."
        return text
    if job.stop_requested and job.returncode == -signal.SIGTERM:
        # Stopped while still starting up, before the loop listens for SIGTERM.
        return f"{what} **{name}** stopped before its first step; nothing was saved."
    return (
        f"{what} **{name}** failed (exit code {job.returncode}). Last lines of "
        f"`{shown(job.log_path)}`:\n\n```\n{job.log_tail()}\n```"
    )
