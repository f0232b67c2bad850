"""The workbench app: a header naming the model in use, and six tabs.

    demo = build_app(AppContext.create(runs_dir="runs"))
    launch(demo, host="127.0.0.1", port=7860)

`build_app` only lays out and wires; every tab's logic lives in its handlers class
(tab_*.py), which tests call directly.
"""

from __future__ import annotations

import logging
import threading

import gradio as gr
import torch

from train.checkpoint import CheckpointError
from workbench import (
    tab_embeddings,
    tab_features,
    tab_model,
    tab_physics,
    tab_predict,
    tab_train,
)
from workbench.clip_table import DataChoice, clip_table
from workbench.context import AppContext
from workbench.maps import start_umap_warm_up
from workbench.video_io import MAX_UPLOAD_BYTES

log = logging.getLogger("workbench")

TITLE = "V-JEPA Workbench"
# Torch threads for the app's own work. One is the fastest for the small models the app shows:
# measured on 2 busy cores, a Predict took 0.08 s on one thread and 2.4 s on two, whose
# threads wait on each other whenever another process holds a core. Trainings run in child
# processes with their own threads.
INTERACTIVE_THREADS = 1
CSS = """
#frame-strip img, #features-strip img { image-rendering: pixelated; }
#mask-editor canvas { image-rendering: pixelated; }
#embedding-selected .caption-label, #embedding-neighbours .caption-label { white-space: normal; }
"""


def build_app(ctx: AppContext) -> gr.Blocks:
    with gr.Blocks(title=TITLE, analytics_enabled=False) as demo:
        with gr.Row():
            gr.Markdown(f"## {TITLE}\nSee what a V-JEPA model predicts under a mask.")
            header = gr.Markdown(
                "Model in use: …"
                if ctx.registry.default_key()
                else "**No model found**: run `make starter`, train a model in the Train tab, "
                "or open one with `--model PATH`, then pick it in the Model tab.",
                elem_id="model-header",
            )
        bundle = gr.Dropdown(
            ctx.registry.choices(),
            value=ctx.registry.default_key(),
            label="Model in use",
            elem_id="bundle",
            render=False,
        )
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                _, shared = tab_predict.build(ctx, bundle)
            with gr.Tab("Features", id="features"):
                tab_features.build(ctx, bundle, shared)
            with gr.Tab("Physics", id="physics"):
                tab_physics.build(ctx, bundle, shared)
            with gr.Tab("Embeddings", id="embeddings"):
                tab_embeddings.build(ctx, bundle)
            with gr.Tab("Train", id="train"):
                tab_train.build(ctx, bundle)
            with gr.Tab("Model", id="model"):
                model, model_outputs = tab_model.build(ctx, bundle, header)
        # A fresh page: describe the model, show the first example ready to paint on.
        hidden = {"api_visibility": "undocumented"}
        demo.load(model.describe, bundle, model_outputs, **hidden)
        shared["first_load"](demo)
        demo.load(None, js=tab_embeddings.BRIDGE_JS, **hidden)
    return demo


def configure_torch(threads: int = INTERACTIVE_THREADS) -> None:
    torch.set_num_threads(max(1, threads))


def launch(
    demo: gr.Blocks,
    host: str = "127.0.0.1",
    port: int | None = 7860,
    prevent_thread_lock: bool = False,
    quiet: bool = False,
    auth: list[tuple[str, str]] | None = None,
) -> tuple:
    """Serve `demo` on host:port (localhost unless told otherwise), with the upload limit, and
    a login page when `auth` gives (user, password) pairs."""
    return demo.queue(default_concurrency_limit=2).launch(
        server_name=host,
        auth=auth,
        server_port=port,
        prevent_thread_lock=prevent_thread_lock,
        quiet=quiet,
        max_file_size=MAX_UPLOAD_BYTES,
        footer_links=["api"],
        theme=gr.themes.Soft(),
        css=CSS,
    )


def start_background_work(ctx: AppContext) -> threading.Thread:
    """Warm UMAP up, then extract (or load from the cache) the default model's physics-clip
    features, so the Embeddings tab answers at once. Runs in a daemon thread."""

    def work() -> None:
        start_umap_warm_up().wait()
        key = ctx.registry.default_key()
        if key is None:
            return
        try:
            clip_table(ctx.registry.load(key), ctx.registry.identity(key), DataChoice())
        except (ValueError, OSError, CheckpointError) as err:
            log.warning("could not precompute clip features for %s: %s", key, err)

    thread = threading.Thread(target=work, name="workbench-warm-up", daemon=True)
    thread.start()
    return thread
