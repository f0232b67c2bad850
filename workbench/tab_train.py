"""Train: a short teaching pretraining in a child process (`python -m train`), its curves live
(loss, the intuitive-physics yardstick against its first value and chance, collapse monitors,
online probe accuracy), Stop and Resume, and a decoder fit afterwards
(or on demand) so the new model shows decoded pixels in the other tabs. One job at a time; the
page stays responsive because the work happens in another process and the page only reads its
metrics.jsonl. Durations shown come from step times measured on this machine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import torch

from train.config import PRESET_DIR
from workbench.context import AppContext
from workbench.guard import user_errors
from workbench.jobs import (
    DEFAULT_DECODER_STEPS,
    DEFAULT_STEPS,
    PHYSICS_RECIPE,
    PHYSICS_SETS_PER_LAW,
    RECIPES,
    TrainRequest,
    core_runs,
    estimate_text,
)
from workbench.paths import shown
from workbench.plots import collapse_figure, loss_figure, probe_figure
from workbench.train_curves import physics_figure, physics_summary

REFRESH_S = 2.0
TEACHING_PRESET = "tiny_cpu"


def presets() -> list[str]:
    names = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))
    return sorted(names, key=lambda n: n != TEACHING_PRESET)  # the teaching preset first


def _given(value: float | None, field: str) -> float:
    """A number box's value; an emptied box arrives as None."""
    if value is None:
        raise ValueError(f"{field} is empty: type a number")
    return value


class TrainHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @user_errors
    def start(
        self,
        preset: str = TEACHING_PRESET,
        steps: int = DEFAULT_STEPS,
        recipe: str = PHYSICS_RECIPE,
        lr: float = 5e-4,
        name: str = "",
        monitors: bool = True,
        fit_decoder: bool = True,
        decoder_steps: int = DEFAULT_DECODER_STEPS,
    ) -> str:
        """`monitors`: the online probe and the intuitive-physics yardstick during the run."""
        request = TrainRequest(
            preset,
            int(_given(steps, "Steps")),
            recipe,
            float(_given(lr, "Learning rate")),
            name or "",
            online_probe=bool(monitors),
            fit_decoder=bool(fit_decoder),
            decoder_steps=int(_given(decoder_steps, "Decoder steps")),
            physics_monitor=bool(monitors),
        )
        job = self.ctx.jobs.start_training(request)
        if preset != TEACHING_PRESET and not torch.cuda.is_available():
            gr.Warning(
                f"{preset} is a GPU-sized preset: on this machine's CPU it takes hours per "
                f"hundred steps. {TEACHING_PRESET} is the one that learns in minutes on a CPU."
            )
        return f"Started training **{job.run_dir.name}** in `{shown(job.run_dir)}`."

    @user_errors
    def fit_decoder(self, run_dir: str | None, steps: int = DEFAULT_DECODER_STEPS) -> str:
        if not run_dir:
            raise ValueError("pick a finished training run to fit a decoder on")
        run = self._allowed_run(run_dir)
        job = self.ctx.jobs.start_decoder_fit(run, int(_given(steps, "Decoder steps")))
        return f"Started a decoder fit on **{job.run_dir.name}** into `{shown(job.out_dir)}`."

    @user_errors
    def fit_decoder_on_this_run(self, steps: int = DEFAULT_DECODER_STEPS) -> str:
        """A decoder fit on the run of the latest job (the one the status is about)."""
        return self.fit_decoder(str(self._this_run()), steps)

    @user_errors
    def resume(self, fit_decoder: bool = True, decoder_steps: int = DEFAULT_DECODER_STEPS) -> str:
        """Continue the latest job's run from its checkpoint."""
        return self._resume(self._this_run(), fit_decoder, decoder_steps)

    @user_errors
    def resume_picked(
        self,
        run_dir: str | None,
        fit_decoder: bool = True,
        decoder_steps: int = DEFAULT_DECODER_STEPS,
    ) -> str:
        """Continue the run picked under "An earlier run"."""
        if not run_dir:
            raise ValueError("pick a stopped training run to resume")
        return self._resume(self._allowed_run(run_dir), fit_decoder, decoder_steps)

    def _resume(self, run: Path, fit_decoder: bool, decoder_steps: int) -> str:
        then = int(_given(decoder_steps, "Decoder steps")) if fit_decoder else None
        job = self.ctx.jobs.resume_training(run, then)
        return f"Resumed **{job.run_dir.name}** at step {job.start_step} / {job.total_steps}."

    def _this_run(self) -> Path:
        run = self.ctx.jobs.last_run
        if run is None:
            raise ValueError(
                'no run yet in this app: start one, or pick one under "An earlier run"'
            )
        return run

    def _allowed_run(self, run_dir: str) -> Path:
        # The page sends a server path: only runs under the app's runs folder are accepted.
        if not Path(run_dir).resolve().is_relative_to(self.ctx.runs_dir.resolve()):
            raise ValueError(
                f"pick a run from the list: only runs in {shown(self.ctx.runs_dir)}/ are "
                "resumed or get a decoder"
            )
        return Path(run_dir)

    def estimate(
        self,
        preset: str = TEACHING_PRESET,
        steps: int | None = DEFAULT_STEPS,
        recipe: str = PHYSICS_RECIPE,
    ) -> str:
        return estimate_text(self.ctx.runs_dir, preset, steps, recipe)

    def stop(self) -> str:
        job = self.ctx.jobs.stop()
        if job is None or not job.stop_requested:
            return "Nothing is running."
        return f"Stopping **{job.run_dir.name}**: it finishes its step and saves a checkpoint."

    def tick(self, seen: dict[str, Any] | None) -> tuple[Any, ...]:
        """Every REFRESH_S: (status, loss, physics, collapse and probe figures, bundle list,
        runs list, what this page has seen). Figures and lists are sent only when they
        changed."""
        seen = dict(seen or {})
        status = self.ctx.jobs.status()
        records = status.records
        job = status.job
        text = status.text
        learned = physics_summary(records) if job is not None and job.kind == "train" else ""
        if learned:
            text += f"\n\nLearning: {learned}."
        curves = [str(job.out_dir) if job else None, len(records)]
        if curves != seen.get("curves"):
            title = "Decoder loss" if job is not None and job.kind == "decoder" else "Loss"
            figures = (
                loss_figure(records, title),
                physics_figure(records),
                collapse_figure(records),
                probe_figure(records),
            )
        else:
            figures = (gr.skip(),) * 4
        bundles, runs = self.ctx.registry.choices(), self.run_choices()
        lists = [[key for _, key in bundles], [path for _, path in runs]]
        changed = lists != seen.get("lists")
        return (
            text,
            *figures,
            gr.update(choices=bundles) if changed else gr.skip(),
            gr.update(choices=runs) if changed else gr.skip(),
            {"curves": curves, "lists": lists},
        )

    def run_choices(self) -> list[tuple[str, str]]:
        runs_dir = self.ctx.runs_dir
        return [(str(p.relative_to(runs_dir)), str(p)) for p in core_runs(runs_dir)]


def build(ctx: AppContext, bundle: gr.Dropdown) -> None:
    handlers = TrainHandlers(ctx)
    gr.Markdown(
        f"Pretrain a small V-JEPA on the physics world; `{TEACHING_PRESET}` is the preset sized "
        "for a CPU. The run is an ordinary `python -m train` run in "
        f"`{shown(ctx.runs_dir)}/`; a stopped run can be resumed. When it ends, a decoder is "
        "fitted on it and the model appears in the **Model** tab; a run without a decoder is "
        'listed there too, as "run (no decoder)".\n\n'
        "**Is it learning?** The loss falls in every run. The intuitive-physics yardstick "
        f"({4 * PHYSICS_SETS_PER_LAW} held-out matched sets, every sixth of the run) rises only "
        "when the model expects objects to persist and keep moving: its curve starts at the "
        "untrained model's value (step 1, dotted) near chance (50%, dashed). The default "
        "recipe, 3-D RoPE with causal masks and a frozen patch embedding (the starter's), is the "
        "one that makes it rise within minutes on a CPU; with the preset's sin-cos positions, "
        '300-step runs ended at 56-67% (docs/results.md, "Levers"). '
        "Measured with the defaults (400 steps) on 2 quiet CPU cores: matched sets 56% at step "
        "1, then 56 / 81 / 72 / 78 / 81% every 66 steps, 81% at step 400, in 7.1 min. Shorter "
        "runs are a gamble: with the patch embedding trained, two 300-step runs ended at 75% "
        "and at 59% (no rise)."
    )
    with gr.Row():
        preset = gr.Dropdown(presets(), value=TEACHING_PRESET, label="Preset")
        steps = gr.Number(
            DEFAULT_STEPS, precision=0, minimum=1, label="Steps", elem_id="train-steps"
        )
        recipe = gr.Radio(
            [(r.label, key) for key, r in RECIPES.items()],
            value=PHYSICS_RECIPE,
            label="Recipe (positions + masks)",
            elem_id="train-recipe",
        )
        lr = gr.Number(5e-4, label="Learning rate (peak)", minimum=0)
    with gr.Row():
        name = gr.Textbox(label="Run name (optional)", placeholder="my-first-run")
        monitors = gr.Checkbox(True, label="Online probe and intuitive-physics yardstick")
        fit_decoder = gr.Checkbox(True, label="Fit a decoder when done")
        decoder_steps = gr.Number(
            DEFAULT_DECODER_STEPS, precision=0, minimum=1, label="Decoder steps"
        )
    # Measured on this machine (an earlier run of the same size), never a constant.
    estimate = gr.Markdown(handlers.estimate(), elem_id="train-estimate")
    with gr.Row():
        start = gr.Button("Start training", variant="primary", elem_id="train-start")
        stop = gr.Button("Stop", variant="stop", elem_id="train-stop")
        resume = gr.Button("Resume", elem_id="train-resume")
        fit_this = gr.Button("Fit a decoder on this run", elem_id="train-fit-this")
    message = gr.Markdown()
    status = gr.Markdown(elem_id="train-status")
    with gr.Row():
        loss = gr.Plot(label="Loss")
        physics = gr.Plot(label="Intuitive physics (matched sets)")
    with gr.Row():
        collapse = gr.Plot(label="Collapse monitors")
        probe = gr.Plot(label="Online probe")
    with gr.Accordion("An earlier run: resume it or fit a decoder", open=False), gr.Row():
        run = gr.Dropdown(handlers.run_choices(), label="Training run")
        run_decoder_steps = gr.Number(
            DEFAULT_DECODER_STEPS, precision=0, minimum=1, label="Decoder steps"
        )
        resume_run = gr.Button("Resume")
        fit = gr.Button("Fit decoder")

    seen = gr.State(None)
    start.click(
        handlers.start,
        [preset, steps, recipe, lr, name, monitors, fit_decoder, decoder_steps],
        message,
        api_name="start_training",
    )
    stop.click(handlers.stop, None, message, api_name="stop_training")
    resume.click(handlers.resume, [fit_decoder, decoder_steps], message, api_name="resume_training")
    resume_run.click(handlers.resume_picked, [run, fit_decoder, decoder_steps], message)
    fit_this.click(
        handlers.fit_decoder_on_this_run,
        decoder_steps,
        message,
        api_name="fit_decoder_on_this_run",
    )
    fit.click(handlers.fit_decoder, [run, run_decoder_steps], message, api_name="fit_decoder")
    for setting in (preset, steps, recipe):
        setting.change(handlers.estimate, [preset, steps, recipe], estimate, show_progress="hidden")
    timer = gr.Timer(REFRESH_S)
    timer.tick(
        handlers.tick,
        seen,
        [status, loss, physics, collapse, probe, bundle, run, seen],
        show_progress="hidden",
        api_name="training_status",
    )
