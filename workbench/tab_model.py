"""Model: which model the other tabs use (the committed starter, one of your runs with or
without a decoder, or the one given with `--model`), and where it came from: its geometry,
training steps, decoder quality per mask family, the pretraining curves when its run folder is
here, and the full provenance record. Every number comes with its context (workbench/
model_context.py): probe accuracy beside step 0 and chance, the decoder beside the no-learning
baselines, and the intuitive-physics yardstick on demand beside step 0 and chance 50%."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from train.monitor import read_metrics
from workbench.context import AppContext
from workbench.decoder_hint import decoder_hint
from workbench.guard import USER_ERRORS, user_errors
from workbench.model_context import baseline_rows, probe_table, quick_yardstick
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

    def forget_yardstick(self) -> str:
        return NOT_MEASURED

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
        measure = gr.Button("Measure the intuitive-physics yardstick (about 10 s)", scale=0)
        yardstick = gr.Markdown(NOT_MEASURED, elem_id="model-yardstick")
    with gr.Row() as curves:
        loss = gr.Plot(label="Pretraining loss")
        collapse = gr.Plot(label="Collapse monitors")
    with gr.Accordion("Provenance", open=False):
        provenance = gr.JSON()
    outputs = [header, summary, quality, loss, collapse, provenance]
    bundle.change(handlers.describe, bundle, outputs, api_name="describe_model")
    refresh.click(handlers.refresh, bundle, bundle, api_visibility="undocumented")
    measure.click(handlers.yardstick, bundle, yardstick, api_name="physics_yardstick")
    bundle.change(handlers.forget_yardstick, None, yardstick, api_visibility="undocumented")
    # Whenever the curves are (re)drawn, on page load too: hide them when there are none.
    loss.change(handlers.curves_shown, bundle, curves, api_visibility="undocumented")
    return handlers, outputs
