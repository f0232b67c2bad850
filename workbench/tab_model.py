"""Model: which model the other tabs use (the committed starter, one of your runs with or
without a decoder, the one given with `--model`, or one opened here from a path under the runs
or data folders, with the big-model options of the command line), and where it came from: its
geometry, training steps, decoder quality per mask family, the pretraining curves when its run
folder is here, and the full provenance record. Every number comes with its context (workbench/
model_context.py): probe accuracy beside step 0 and chance, the decoder beside the no-learning
baselines, and the intuitive-physics yardstick (as recorded when the bundle was built, or
measured on demand) beside step 0 and chance 50%."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gradio as gr

from decoder.bundle import BundleError
from train.checkpoint import CheckpointError
from train.monitor import read_metrics
from train.pretrained import WEIGHT_DTYPES
from workbench.bundles import OpenOptions, model_entry
from workbench.context import AppContext
from workbench.data_dirs import DataDirs, PathRefused
from workbench.decoder_hint import decoder_hint
from workbench.guard import USER_ERRORS, user_errors
from workbench.model_context import (
    QUICK_DURATION,
    QUICK_PAIRS_PER_LAW,
    baseline_rows,
    probe_table,
    quick_yardstick,
    recorded_yardstick,
)
from workbench.paths import REPO_ROOT, shown
from workbench.plots import collapse_figure, loss_figure

QUALITY_HEADERS = ["mask family", "PSNR (dB)", "SSIM", "loss"]
NOT_MEASURED = (
    "Intuitive physics: not measured yet. The button scores the model in use and its step-0 "
    "weights on matched possible / impossible clip pairs (chance 50%)."
)


def pretrain_metrics(provenance: dict[str, Any]) -> list[dict[str, Any]]:
    """The pretraining run's metrics, when the checkpoint it names is a run on this machine."""
    checkpoint = (provenance.get("pretrain") or {}).get("checkpoint")
    if not checkpoint:
        return []
    path = Path(checkpoint)
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path
    # A relative path was written from wherever the fit ran: usually the checkout.
    for base in (Path.cwd(), REPO_ROOT):
        metrics = base / run_dir / "metrics.jsonl"
        if metrics.is_file():
            return read_metrics(metrics)
    return []


def quality_rows(provenance: dict[str, Any]) -> list[list[Any]]:
    held_out = (provenance.get("decoder") or {}).get("held_out") or {}
    rows = []
    for family, scores in held_out.items():
        if isinstance(scores, dict):
            rows.append([family, *(_rounded(scores.get(k)) for k in ("psnr", "ssim", "loss"))])
            rows += baseline_rows(provenance, family)
    return rows


# Shown instead of the curves when the pretraining run's folder is not here.
NO_CURVES = (
    "The pretraining curves are not shown: they are read from the run folder's metrics.jsonl, "
    "and the run that made this model is not on this machine (a bundle carries its weights "
    "and provenance, not its training log)."
)


def _no_curves(figure: Any) -> Any:
    """An empty figure that says why it is empty."""
    for annotation in figure.layout.annotations:
        annotation.text = "the training run is not on this machine"
    return figure


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, (int, float)) else ""


# How a model opened from the path field is labelled in the list.
OPENED_HERE = "opened in the Model tab"


def model_roots(ctx: AppContext) -> DataDirs:
    """The folders a path typed in the page may open a model from: the runs folder and the
    `--data-dir` folders, nothing else on the server."""
    return DataDirs((ctx.runs_dir.resolve(), *ctx.data_dirs.roots))


def model_path(ctx: AppContext, text: str) -> Path:
    """The run directory, checkpoint or bundle `text` names, resolved; PathRefused when it lies
    outside the allowed folders or is not there. A relative path is tried from the working
    folder (`runs/NAME`) and from each allowed folder (`NAME`). Outside the folders, whether
    the path exists is not told."""
    roots = model_roots(ctx)
    text = (text or "").strip()
    if not text:
        raise PathRefused(
            "type the path of a run directory, a checkpoint (.pt) or a bundle (.safetensors) "
            f"under {roots.describe()}"
        )
    typed = Path(text).expanduser()
    candidates = [typed] if typed.is_absolute() else [Path.cwd() / typed]
    candidates += [] if typed.is_absolute() else [root / typed for root in roots.roots]
    inside = [path.resolve() for path in candidates if roots.contains(path)]
    for path in inside:
        if path.exists():
            return path
    # A link in an allowed folder that leads elsewhere: said so, where it leads is not.
    if any(_lexically_in(path, roots) and path.exists() for path in candidates):
        raise PathRefused(
            f"{text} links to a file outside the folders this app opens models from; the "
            "app does not read it"
        )
    if inside:
        raise PathRefused(
            f"{text}: nothing there under {roots.describe()}. Give a run directory, a "
            "checkpoint (.pt) or a bundle (.safetensors); a released V-JEPA file is imported "
            "first with `python -m train.released FILE runs/NAME`"
        )
    raise PathRefused(
        f"{text} lies outside the folders this app opens models from ({roots.describe()}): "
        "put the model in the runs folder (import a released file there with `python -m "
        "train.released FILE runs/NAME`), or start the app with --data-dir FOLDER"
    )


def _lexically_in(path: Path, roots: DataDirs) -> bool:
    """Whether `path`, links not followed, lies under one of the folders."""
    return any(Path(os.path.abspath(path)).is_relative_to(root) for root in roots.roots)


def _size(value: float | None) -> int | None:
    """A size field: empty keeps the model's own; anything else must be a whole number."""
    if value is None:
        return None
    if float(value) != int(value):
        raise ValueError(f"{value} is not a whole number of frames or pixels")
    return int(value)


class ModelHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    @user_errors
    def describe(self, bundle_key: str | None) -> tuple[str, str, list[list[Any]], Any, Any, dict]:
        """(header line, summary, decoder quality rows, loss figure, collapse figure,
        provenance) of the bundle under `bundle_key`."""
        entry = self.ctx.registry.entry(bundle_key)
        bundle = self.ctx.registry.load(bundle_key)
        provenance = bundle.provenance
        records = pretrain_metrics(provenance)
        decoder = provenance.get("decoder") or {}
        if bundle.has_decoder:
            about_decoder = (
                f"Decoder: {decoder.get('steps', '?')} steps, final loss "
                f"{_rounded(decoder.get('final_loss'))}. Created {provenance.get('created', '?')} "
                f"at commit `{provenance.get('git_commit', '?')}`."
            )
        else:
            about_decoder = (
                "**No pixel decoder**: Features, Physics and Embeddings work as usual; Predict "
                "shows the predicted latents in PCA colours instead of pixels. "
                + decoder_hint(bundle)
            )
        lines = [
            f"**{entry.label}** — `{shown(entry.path)}`",
            "",
            bundle.summary() + ".",
            "",
            about_decoder,
        ]
        lines += ["", probe_table(provenance)]
        if not records:
            lines += ["", NO_CURVES]
        header = f"Model in use: **{entry.label}**"
        loss, collapse = loss_figure(records, "Pretraining loss"), collapse_figure(records)
        if not records:
            loss, collapse = _no_curves(loss), _no_curves(collapse)
        return (header, "\n".join(lines), quality_rows(provenance), loss, collapse, provenance)

    def curves_shown(self, bundle_key: str | None) -> Any:
        """The pretraining curves' row: hidden when the run's metrics are not here."""
        try:
            provenance = self.ctx.registry.load(bundle_key).provenance
        except USER_ERRORS:  # describe() already reports a model that cannot be opened
            return gr.skip()
        return gr.update(visible=bool(pretrain_metrics(provenance)))

    @user_errors
    def yardstick(self, bundle_key: str | None) -> str:
        """The intuitive-physics yardstick on the model in use, beside step 0 and chance."""
        label = self.ctx.registry.entry(bundle_key).label
        return quick_yardstick(self.ctx.registry.load(bundle_key), label)

    @user_errors
    def open_path(
        self, text: str, weights: str | None, frames: float | None, img_size: float | None
    ) -> Any:
        """Open the model at the typed path with the big-model options (as `python -m workbench
        --model PATH --weights W --frames N --img-size S` would) and select it in the list."""
        options = OpenOptions(weights or "fp32", _size(frames), _size(img_size))
        path = model_path(self.ctx, text)
        try:
            # A run's checkpoint may be a link: what is read must lie in the folders too.
            if not model_roots(self.ctx).contains(model_entry(path, OPENED_HERE).path):
                raise PathRefused(
                    f"{text.strip()} links to a file outside the folders this app opens models "
                    "from; the app does not read it"
                )
            entry = self.ctx.registry.open_path(path, options, OPENED_HERE)
        except (BundleError, CheckpointError) as err:
            # The message names the resolved path: name it as the user typed it.
            message = str(err).replace(f"{OPENED_HERE} {path}", text.strip())
            raise type(err)(message.replace(str(path), text.strip())) from None
        return gr.update(choices=self.ctx.registry.choices(), value=entry.key)

    def forget_yardstick(self, bundle_key: str | None) -> str:
        """On selecting a model: the previous model's reading goes; the yardstick recorded in
        this model's provenance is shown, else NOT_MEASURED."""
        try:
            provenance = self.ctx.registry.load(bundle_key).provenance
        except USER_ERRORS:  # describe() already reports a model that cannot be opened
            return NOT_MEASURED
        return recorded_yardstick(provenance) or NOT_MEASURED

    def refresh(self, bundle_key: str | None) -> Any:
        choices = self.ctx.registry.choices()
        keys = [key for _, key in choices]
        value = bundle_key if bundle_key in keys else (keys[0] if keys else None)
        return gr.update(choices=choices, value=value)


def build(
    ctx: AppContext, bundle: gr.Dropdown, header: gr.Markdown
) -> tuple[ModelHandlers, list[Any]]:
    """Lays out the tab; returns its handlers and the outputs of `describe`, which the app
    also fills when a page opens."""
    handlers = ModelHandlers(ctx)
    with gr.Row():
        bundle.render()
        refresh = gr.Button("Refresh list", scale=0)
    summary = gr.Markdown(elem_id="model-summary")
    quality = gr.Dataframe(
        headers=QUALITY_HEADERS,
        label="Decoder quality on held-out clips (masked region), beside the no-learning "
        "baselines where recorded",
    )
    with gr.Row():
        measure = gr.Button(
            f"Measure the intuitive-physics yardstick ({QUICK_PAIRS_PER_LAW} sets per law; "
            f"{QUICK_DURATION})",
            scale=0,
        )
        yardstick = gr.Markdown(NOT_MEASURED, elem_id="model-yardstick")
    with gr.Row() as curves:
        loss = gr.Plot(label="Pretraining loss")
        collapse = gr.Plot(label="Collapse monitors")
    with gr.Accordion("Provenance", open=False):
        provenance = gr.JSON()
    with gr.Accordion("Open a model from a path", open=False):
        gr.Markdown(
            "A run directory, an imported release (`python -m train.released FILE runs/NAME`), "
            "a checkpoint (.pt) or a bundle (.safetensors), under the runs folder or a "
            "`--data-dir` folder. For a big model on a CPU: bf16 weights (half the memory) "
            "and a smaller clip (fewer frames or pixels: a faster Predict; models without a "
            "pixel decoder only). Empty sizes keep the model's own."
        )
        with gr.Row():
            path = gr.Textbox(label="Path", placeholder="runs/NAME", scale=3)
            weights = gr.Radio(list(WEIGHT_DTYPES), value="fp32", label="Weights")
            frames = gr.Number(None, precision=0, label="Frames")
            img_size = gr.Number(None, precision=0, label="Image size (px)")
            open_model = gr.Button("Open", scale=0)
    outputs = [header, summary, quality, loss, collapse, provenance]
    bundle.change(handlers.describe, bundle, outputs, api_name="describe_model")
    refresh.click(handlers.refresh, bundle, bundle, api_visibility="undocumented")
    # Describe again on success: reopening the listed model with other options keeps its key.
    open_model.click(
        handlers.open_path, [path, weights, frames, img_size], bundle, api_name="open_model"
    ).success(handlers.describe, bundle, outputs, api_visibility="undocumented")
    measure.click(handlers.yardstick, bundle, yardstick, api_name="physics_yardstick")
    # No triggers: on page load and whenever another model is selected.
    gr.on(None, handlers.forget_yardstick, bundle, yardstick, api_visibility="undocumented")
    # Whenever the curves are (re)drawn, on page load too: hide them when there are none.
    loss.change(handlers.curves_shown, bundle, curves, api_visibility="undocumented")
    return handlers, outputs
