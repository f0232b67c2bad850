"""Predict: load a clip, pick the frame window, paint a region (or choose a preset mask), and see
what the model predicts there, decoded into pixels, next to the original and the masked input,
with the per-frame surprise beside the untrained (step-0) model's. Under them, the comparison
row: the decoded target latents and the mean-colour fill, with each one's PSNR inside the mask;
then the surprise heatmap (each masked token's error over the frames), and a second model on
the same clip and mask, side by side. A model without a decoder shows its predicted latents
next to the target latents, in the same PCA colours, and no comparison row.

The painted region survives reloads of the editor (a new clip, window or frame to paint on:
workbench/paint_memory.py); the editor is locked while it reloads. An error in Predict is shown
beside the results, which stay as they were.

`PredictHandlers` holds the tab's logic as plain methods (numpy in, files and figures out), so
tests call them without a browser; `build` lays out the components and wires the events.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gradio as gr
import numpy as np

from decoder.bundle import Bundle
from workbench.context import AppContext
from workbench.examples import example_names, load_example
from workbench.frames import strip
from workbench.guard import user_errors
from workbench.masks_ui import (
    EXTENT_MODES,
    MASK_SOURCES,
    PAINTED,
    PRESET_REPLACES_PAINT,
    SEEDED_PRESETS,
    MaskChoice,
)
from workbench.model_pair import ModelPair, compare_models
from workbench.paint_memory import KEPT_NOTE, editor_value, kept_paint
from workbench.predict import (
    EDITOR_PX,
    STRIP_PX,
    Prediction,
    Progress,
    clip_window,
    last_start,
    paint_frame,
    predict,
)
from workbench.surprise_map import heatmap_caption
from workbench.video_io import Video, read_video

MAX_FRAME_STEP = 8
# Outputs of the Predict button besides the status line (kept as they are after an error).
RESULT_OUTPUTS = 10

# The editor is locked while it reloads (greyed, no pointer), so that no stroke lands on a
# picture about to be replaced. Reloads can overlap (the first example still loading when a
# video is uploaded), so the lock counts them. The editor hands a stroke to its value a moment
# after the pointer is lifted (longer on a busy machine), so a reload right after a stroke
# waits that moment before the paint is read (`WATCH_STROKES_JS` notes when strokes end).
STROKE_SETTLE_MS = 1200
WATCH_STROKES_JS = """() => {
  document.addEventListener('pointerup', (event) => {
    if (event.target.closest && event.target.closest('#mask-editor')) {
      window.maskStrokeEndedAt = performance.now();
    }
  }, true);
}"""
LOCK_EDITOR_JS = f"""async () => {{
  const editor = document.querySelector('#mask-editor');
  if (editor) {{
    editor.dataset.reloading = String((Number(editor.dataset.reloading) || 0) + 1);
    editor.style.pointerEvents = 'none';
    editor.style.opacity = '0.5';
  }}
  const since = performance.now() - (window.maskStrokeEndedAt ?? -1e9);
  if (since < {STROKE_SETTLE_MS}) {{
    await new Promise((done) => setTimeout(done, {STROKE_SETTLE_MS} - since));
  }}
}}"""
# Unlocked once the editor has its new picture and layer: it fetches them after the value
# arrives and then sets up its canvas, and a stroke made before that would be lost. So the
# unlock waits for the same files to load and for the editor's controls to show.
UNLOCK_EDITOR_JS = """async (value) => {
  const files = [value?.background, ...(value?.layers || [])];
  const urls = files.map((file) => file?.url).filter(Boolean);
  await Promise.all(urls.map((url) => {
    const image = new Image();
    image.src = url;
    return image.decode().catch(() => null);
  }));
  const editor = document.querySelector('#mask-editor');
  if (!editor) return;
  // The editor shows its zoom controls once its picture is set up (seconds on a busy machine).
  for (let waited = 0; waited < 15000; waited += 100) {
    const zoom = editor.querySelector("button[aria-label='Zoom in']");
    if (zoom && zoom.offsetParent !== null) break;
    await new Promise((done) => setTimeout(done, 100));
  }
  await new Promise((done) => setTimeout(done, 300));
  const left = (Number(editor.dataset.reloading) || 1) - 1;
  if (left > 0) {
    editor.dataset.reloading = String(left);
    return;
  }
  delete editor.dataset.reloading;
  editor.style.pointerEvents = '';
  editor.style.opacity = '';
}"""


class PredictHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # ------------------------------------------------------------------------ loading

    @user_errors
    def load_example(
        self, name: str, bundle_key: str | None, paint: np.ndarray | None = None
    ) -> tuple[Any, ...]:
        """`_loaded`'s outputs; `paint`: the region painted so far, laid over the new clip."""
        if not name:
            raise ValueError("pick an example clip")
        return self._loaded(load_example(name), bundle_key, paint)

    @user_errors
    def load_upload(
        self, path: str | None, bundle_key: str | None, paint: np.ndarray | None = None
    ) -> tuple[Any, ...]:
        """`_loaded`'s outputs, then the example picker cleared: it no longer names the clip."""
        if not path:
            raise ValueError("upload a video file (mp4, webm, mkv, avi or mov)")
        return (*self._loaded(read_video(path), bundle_key, paint), gr.update(value=None))

    def _loaded(
        self, video: Video, bundle_key: str | None, paint: np.ndarray | None
    ) -> tuple[Any, ...]:
        """(clip key, description, then the window controls, the editor for frame 0 and the
        painted region). The painted region stays: it covers the same part of the new frames,
        whatever their size, as the editor shows every clip as the model sees it."""
        bundle = self.ctx.registry.load(bundle_key)
        if len(video.frames) < bundle.num_frames:
            raise ValueError(
                f"{video.name} has {len(video.frames)} frames; this model needs at least "
                f"{bundle.num_frames}: use a longer clip"
            )
        key = self.ctx.clips.put(video)
        description = video.describe() + (f"\n\n{KEPT_NOTE}" if paint is not None else "")
        window = self._window(bundle, video, 0, 1, 0, reset_range=True, paint=paint)
        return (key, description, *window)

    def beside(self, handler: Callable[..., tuple[Any, ...]], outputs: int, what: str) -> Any:
        """`handler` as the page calls it: its outputs, then a status line. A user's mistake
        leaves the `outputs` as they were and is said in the status line, beside them, not
        as an error over each of them."""

        def page(*args: Any) -> tuple[Any, ...]:
            try:
                return (*handler(*args), gr.update(value="", visible=False))
            except gr.Error as err:
                status = f"**{what}:** {err.message}. What is shown is unchanged."
                return (*(gr.skip() for _ in range(outputs)), gr.update(value=status, visible=True))

        return page

    # ------------------------------------------------------------------------ the paint

    @user_errors
    def keep_paint(
        self, editor: dict[str, Any] | None, stored: np.ndarray | None
    ) -> np.ndarray | None:
        """Before the editor reloads: the region painted now (or the one kept before)."""
        return kept_paint(editor, stored)

    # ------------------------------------------------------------------------ the window

    @user_errors
    def refresh_window(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        index: int,
        paint: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        """After the window or the painted frame changed: controls, and the editor with the
        new frame under the painted region."""
        if clip_key is None:  # nothing loaded yet: nothing to refresh
            return tuple(gr.skip() for _ in range(6))
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        return self._window(bundle, video, start, step, index, paint=paint)

    @user_errors
    def change_model(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        index: int,
        paint: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        """After another model was picked: its frame count may differ, so the frame range
        starts afresh; the painted region stays."""
        if clip_key is None or bundle_key is None:
            return tuple(gr.skip() for _ in range(6))
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        return self._window(bundle, video, start, step, index, reset_range=True, paint=paint)

    def _window(
        self,
        bundle: Bundle,
        video: Video,
        start: int,
        step: int,
        index: int,
        reset_range: bool = False,
        paint: np.ndarray | None = None,
    ) -> tuple[Any, ...]:
        """(window start, frame to paint on, from-frame, to-frame, the editor: the frame with
        the painted region over it, and the painted region)."""
        frames = bundle.num_frames
        step = int(step)
        latest = last_start(len(video.frames), step, frames)
        if latest < 0:
            raise ValueError(
                f"{video.name} has {len(video.frames)} frames: too few for {frames} frames "
                f"{step} apart; choose a smaller frame step"
            )
        start = min(max(int(start), 0), latest)
        index = min(max(int(index), 0), frames - 1)
        window = clip_window(video.frames, start, step, frames)
        # The range keeps what the user chose, unless a new clip or model starts it afresh.
        frame_range = (
            (
                gr.update(maximum=frames - 1, value=frames // 2),
                gr.update(maximum=frames - 1, value=frames - 1),
            )
            if reset_range
            else (gr.skip(), gr.skip())
        )
        return (
            gr.update(maximum=max(latest, 1), value=start, interactive=latest > 0),
            gr.update(maximum=frames - 1, value=index),
            *frame_range,
            editor_value(paint_frame(bundle, window, index), paint),
            paint,
        )

    # ------------------------------------------------------------------------ the mask

    def mask_controls(self, source: str, extent: str) -> tuple[Any, ...]:
        """(seed, extent, from-frame, to-frame, note): only the controls the chosen mask uses
        stay active. The seed draws the random presets; the extent and the frame range shape
        the painted region ("the future" needs only its first hidden frame)."""
        painted = source == PAINTED
        ranged = painted and extent in ("frame range", "the future")
        first = "First hidden frame (k)" if extent == "the future" else "From frame"
        note = "" if painted else f"Presets ignore any paint: {PRESET_REPLACES_PAINT}."
        return (
            gr.update(interactive=source in SEEDED_PRESETS),
            gr.update(interactive=painted),
            gr.update(interactive=ranged, label=first),
            gr.update(interactive=painted and extent == "frame range"),
            gr.update(value=note, visible=not painted),
        )

    # ------------------------------------------------------------------------ predicting

    @user_errors
    def predict(self, *inputs: Any, **options: Any) -> tuple[str, str, str, np.ndarray, Any, str]:
        """(original, masked, prediction mp4 paths; frame strip; surprise figure; summary);
        the arguments are `_predict`'s."""
        return _outputs(self._predict(*inputs, **options))

    @user_errors
    def predict_view(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        editor: dict[str, Any] | None,
        source: str = PAINTED,
        extent: str = "whole clip",
        range_start: int = 0,
        range_stop: int | None = None,
        seed: int = 0,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> tuple[Any, ...]:
        """What the API's `predict` answers: `predict`'s outputs, then the comparison row's
        (strip, PSNR line) for `show_comparison`, or None for a model without a decoder; a
        mistake is an error. The arguments are `_predict`'s; Gradio fills `progress` (a big
        model takes seconds)."""
        shown = self._predict(
            bundle_key,
            clip_key,
            start,
            step,
            editor,
            source,
            extent,
            range_start,
            range_stop,
            seed,
            progress=lambda share, text: progress(share, desc=text),
        )
        return (*_outputs(shown), _comparison_row(shown))

    def predict_page(
        self,
        *inputs: Any,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's injection idiom)
    ) -> tuple[Any, ...]:
        """What the Predict button fills, from `_predict`'s arguments: `predict`'s six outputs,
        the comparison row (strip, PSNR line), the heatmap (strip, caption), then the status
        line. A mistake (nothing painted, no clip...) leaves every result as it was and is said
        in the status line, beside them, instead of an error over each of them."""
        try:
            shown = user_errors(self._predict)(
                *inputs, progress=lambda share, text: progress(share, desc=text)
            )
        except gr.Error as err:
            status = (
                f"**Predict could not run:** {err.message}. Any results shown are from the "
                "last Predict."
            )
            return (
                *(gr.skip() for _ in range(RESULT_OUTPUTS)),
                gr.update(value=status, visible=True),
            )
        heatmap = strip([shown.heatmap], STRIP_PX)
        return (
            *_outputs(shown),
            *self.show_comparison(_comparison_row(shown)),
            gr.update(value=heatmap, visible=True),
            gr.update(value=heatmap_caption(shown.heatmap_scale), visible=True),
            gr.update(value="", visible=False),
        )

    def show_comparison(self, row: tuple[np.ndarray, str] | None) -> tuple[Any, Any]:
        """(comparison strip, PSNR line), hidden for a model without a decoder."""
        if row is None:
            return gr.update(value=None, visible=False), gr.update(value="", visible=False)
        frames, line = row
        return gr.update(value=frames, visible=True), gr.update(value=line, visible=True)

    # ------------------------------------------------------------------------ two models

    def model_choices(self, chosen: str | None) -> Any:
        """The second-model picker's list, fresh (a training may have added a model)."""
        choices = self.ctx.registry.choices()
        keys = [key for _, key in choices]
        return gr.update(choices=choices, value=chosen if chosen in keys else None)

    def compare_pair(
        self,
        bundle_key: str | None,
        second_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        editor: dict[str, Any] | None,
        source: str = PAINTED,
        extent: str = "whole clip",
        range_start: int = 0,
        range_stop: int | None = None,
        seed: int = 0,
    ) -> tuple[Any, Any]:
        """(strip of both models' predictions and heatmaps, table of their numbers) on the
        loaded clip under the mask Predict uses. When the two cannot be compared the strip is
        hidden and the table's place says why and what to do."""
        try:
            pair = user_errors(self._pair)(
                bundle_key,
                second_key,
                clip_key,
                start,
                step,
                MaskChoice(source, extent, int(range_start), range_stop, int(seed or 0)),
                editor,
            )
        except gr.Error as err:
            return gr.update(visible=False), f"**Cannot compare:** {err.message}."
        return gr.update(value=pair.strip, visible=True), pair.table

    def _pair(
        self,
        bundle_key: str | None,
        second_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        choice: MaskChoice,
        editor: dict[str, Any] | None,
    ) -> ModelPair:
        if not second_key:
            raise ValueError("pick a second model to compare with the model in use")
        if second_key == bundle_key:
            raise ValueError(
                "the second model is the model in use: pick another one (e.g. the starter and "
                "a run of your own)"
            )
        registry = self.ctx.registry
        first, second = registry.load(bundle_key), registry.load(second_key)
        video = self.ctx.clips.get(clip_key)
        window = clip_window(video.frames, int(start), int(step), first.num_frames)
        labels = (registry.entry(bundle_key).label, registry.entry(second_key).label)
        return compare_models(first, second, labels, window, choice, editor)

    def _predict(
        self,
        bundle_key: str | None,
        clip_key: str | None,
        start: int,
        step: int,
        editor: dict[str, Any] | None,
        source: str = PAINTED,
        extent: str = "whole clip",
        range_start: int = 0,
        range_stop: int | None = None,
        seed: int = 0,
        progress: Progress | None = None,
    ) -> Prediction:
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        window = clip_window(video.frames, int(start), int(step), bundle.num_frames)
        choice = MaskChoice(source, extent, int(range_start), range_stop, int(seed or 0))
        if progress is None:
            return predict(bundle, window, choice, editor)
        return predict(bundle, window, choice, editor, progress=progress)


def _comparison_row(shown: Prediction) -> tuple[np.ndarray, str] | None:
    """(strip: prediction / decoded target / mean-colour fill, PSNR line); None without a
    decoder."""
    row = shown.comparison
    if row is None:
        return None
    return strip([row.prediction, row.target, row.mean_fill], STRIP_PX), row.line()


def _outputs(shown: Prediction) -> tuple[str, str, str, np.ndarray, Any, str]:
    videos = [str(shown.videos[name]) for name in ("original", "masked", "prediction")]
    return (*videos, shown.strip, shown.surprise, shown.summary)


# ---------------------------------------------------------------------------------------------
# Layout.


def build(ctx: AppContext, bundle: gr.Dropdown) -> tuple[PredictHandlers, dict[str, Any]]:
    """Lay out the tab (inside a gr.Tab) and wire it; returns the handlers and the components
    other tabs use: the loaded clip's key, the window, the example picker, what loading a
    clip updates, and `first_load(demo)`, which wires a fresh page's first example."""
    handlers = PredictHandlers(ctx)
    clip_key = gr.State(None)
    paint = gr.State(None)  # the painted region, kept across reloads of the editor
    gr.Markdown(
        "Pick an example or upload a video, choose the frames the model sees, **paint the region "
        "to hide** on a frame, and press **Predict**. The model never sees the painted region: "
        "the prediction is decoded from its latents."
    )
    # Three columns (the clip, the mask, the paint), so that Predict and its summary sit above
    # the fold of a 1280 x 800 window, next to the mask controls.
    with gr.Row():
        with gr.Column(scale=1):
            examples = example_names()
            example = gr.Dropdown(
                examples, value=examples[0] if examples else None, label="Example clip"
            )
            upload = gr.Video(
                sources=["upload"],
                format=None,
                label="…or upload a video",
                height=160,
                elem_id="video-upload",
            )
            info = gr.Markdown("No clip loaded yet.", elem_id="clip-info")
            clip_status = gr.Markdown(visible=False, elem_id="clip-status")
            with gr.Row():
                start = gr.Slider(0, 1, value=0, step=1, label="First frame of the window")
                step = gr.Slider(1, MAX_FRAME_STEP, value=1, step=1, label="Frame step")
        with gr.Column(scale=1):
            # Compact controls (a dropdown, the seed beside it), so that Predict stays in view.
            # The seed and the frame range are inactive until they apply (`mask_controls`).
            with gr.Row():
                source = gr.Dropdown(list(MASK_SOURCES), value=PAINTED, label="Mask", scale=2)
                seed = gr.Number(
                    0, precision=0, label="Preset seed", minimum=0, interactive=False, scale=1
                )
            mask_note = gr.Markdown(visible=False, elem_id="mask-note")
            extent = gr.Radio(
                list(EXTENT_MODES), value="whole clip", label="The painted region covers"
            )
            with gr.Row():
                range_start = gr.Slider(
                    0, 7, value=0, step=1, label="From frame", interactive=False
                )
                range_stop = gr.Slider(0, 7, value=0, step=1, label="To frame", interactive=False)
            run = gr.Button("Predict", variant="primary", elem_id="predict-button")
            # Errors go here, beside the results, which stay as they were.
            status = gr.Markdown(visible=False, elem_id="predict-status")
            summary = gr.Markdown(elem_id="predict-summary")
        with gr.Column(scale=1):
            paint_index = gr.Slider(
                0, 7, value=0, step=1, label="Frame to paint on", elem_id="paint-frame"
            )
            editor = gr.ImageEditor(
                type="numpy",
                image_mode="RGBA",
                sources=[],
                transforms=[],
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
                brush=gr.Brush(default_size=24, colors=["#ff3030"], color_mode="fixed"),
                eraser=gr.Eraser(default_size=24),
                canvas_size=(EDITOR_PX, EDITOR_PX),
                label="Paint the region to predict",
                elem_id="mask-editor",
            )
    with gr.Row():
        original = gr.Video(label="Original", autoplay=True, loop=True, elem_id="video-original")
        masked = gr.Video(label="Masked context", autoplay=True, loop=True, elem_id="video-masked")
        predicted = gr.Video(
            label="Prediction (decoded; without a decoder: target | predicted latents)",
            autoplay=True,
            loop=True,
            elem_id="video-prediction",
        )
    # The strips share a row with what explains them, rather than each filling a full-width
    # panel around a small picture.
    strip_height = STRIP_PX * 3 + 60  # three rows of frames and the label
    with gr.Row(equal_height=True):
        frame_strip = gr.Image(
            label="Frames: original / masked context / prediction (without a decoder: target "
            "latents / predicted latents, PCA colours)",
            elem_id="frame-strip",
            height=strip_height,
            scale=1,
        )
        surprise = gr.Plot(label="Surprise (dashed: the same model untrained, at step 0)", scale=1)
    with gr.Row():
        comparison_strip = gr.Image(
            label="Comparison: prediction / decoded target latents (the decoder told the "
            "truth) / mean-colour fill",
            elem_id="comparison-strip",
            height=strip_height,
            visible=False,
            scale=1,
        )
        comparison_line = gr.Markdown(elem_id="comparison-summary", visible=False)
    with gr.Row():
        heatmap = gr.Image(
            label="Surprise heatmap: each masked token's prediction error over the frames",
            elem_id="surprise-heatmap",
            height=STRIP_PX + 60,
            visible=False,
            scale=1,
        )
        heatmap_line = gr.Markdown(elem_id="heatmap-summary", visible=False)
    comparison = gr.State(None)  # the API's `predict` fills it; the page's button does not
    gr.Markdown(
        "### Two models on the same clip and mask\nPick a second model (e.g. the starter "
        "beside a run of your own) and compare their decoded predictions and surprise "
        "heatmaps under the mask above."
    )
    with gr.Row(equal_height=True):
        second = gr.Dropdown(
            ctx.registry.choices(),
            value=None,
            label="Second model",
            elem_id="second-model",
            scale=2,
        )
        compare = gr.Button("Compare the two models", elem_id="compare-button", scale=1)
    with gr.Row():
        pair_strip = gr.Image(
            label="Two models: original / masked / each model's prediction and heatmap",
            elem_id="pair-strip",
            height=STRIP_PX * 6 + 80,
            visible=False,
            scale=1,
        )
        pair_table = gr.Markdown(elem_id="pair-summary")

    window_controls = [start, paint_index, range_start, range_stop, editor, paint]
    loaded = [clip_key, info, *window_controls]
    hidden = {"api_visibility": "undocumented"}

    def reloading(
        trigger: Any,
        handler: Any,
        inputs: list[Any],
        outputs: list[Any],
        what: str,
        api_name: str | None = None,
    ) -> None:
        """`trigger` reloads the editor: lock the editor and keep the paint first, run
        `handler` (which lays the paint over the new picture; a mistake goes to the clip's
        status line), then unlock it. `api_name`: the same handler for scripts, through a
        button never shown, where a mistake is an error."""
        locked = trigger(None, js=LOCK_EDITOR_JS, **hidden)
        kept = locked.then(handlers.keep_paint, [editor, paint], paint, **hidden)
        page = handlers.beside(handler, len(outputs), what)
        kept.then(page, [*inputs, paint], [*outputs, clip_status], **hidden).then(
            None, editor, js=UNLOCK_EDITOR_JS, **hidden
        )
        if api_name is not None:
            gr.Button(visible=False).click(handler, [*inputs, paint], outputs, api_name=api_name)

    # `input`, not `change`: clearing the picker after an upload must not load anything.
    reloading(
        example.input,
        handlers.load_example,
        [example, bundle],
        loaded,
        "The clip could not be loaded",
        api_name="load_example",
    )
    reloading(
        upload.upload,
        handlers.load_upload,
        [upload, bundle],
        [*loaded, example],
        "The video could not be loaded",
        api_name="load_upload",
    )
    # `input` (the user's choices), so the updates to `extent` cannot set off its own event.
    for control in (source, extent):
        control.input(
            handlers.mask_controls,
            [source, extent],
            [seed, extent, range_start, range_stop, mask_note],
            api_visibility="undocumented",
        )
    refresh_inputs = [bundle, clip_key, start, step, paint_index]
    for control in (start, step, paint_index):
        reloading(
            control.release,
            handlers.refresh_window,
            refresh_inputs,
            window_controls,
            "The frames could not be shown",
        )
    reloading(
        bundle.change,
        handlers.change_model,
        refresh_inputs,
        window_controls,
        "The model's frames could not be shown",
    )
    mask_inputs = [editor, source, extent, range_start, range_stop, seed]
    predict_inputs = [bundle, clip_key, start, step, *mask_inputs]
    # The page's button shows errors in the status line and keeps the results; the API's
    # `predict` (for scripts, through a button never shown) answers an error as an error.
    run.click(
        handlers.predict_page,
        predict_inputs,
        [
            original,
            masked,
            predicted,
            frame_strip,
            surprise,
            summary,
            comparison_strip,
            comparison_line,
            heatmap,
            heatmap_line,
            status,
        ],
        **hidden,
    )
    api_predict = gr.Button(visible=False)
    api_predict.click(
        handlers.predict_view,
        predict_inputs,
        [original, masked, predicted, frame_strip, surprise, summary, comparison],
        api_name="predict",
    )
    second.focus(handlers.model_choices, second, second, **hidden)
    compare.click(
        handlers.compare_pair,
        [bundle, second, clip_key, start, step, *mask_inputs],
        [pair_strip, pair_table],
        api_name="compare_models",
    )

    def first_load(demo: gr.Blocks) -> None:
        """On a fresh page: the first example, ready to paint on, the editor locked until
        its frame is in (the page's own `load` event, so `demo` wires it)."""
        demo.load(None, js=WATCH_STROKES_JS, **hidden)
        locked = demo.load(None, js=LOCK_EDITOR_JS, **hidden)
        locked.then(handlers.load_example, [example, bundle], loaded, **hidden).then(
            None, editor, js=UNLOCK_EDITOR_JS, **hidden
        )

    shared = {"clip_key": clip_key, "start": start, "step": step, "example": example}
    return handlers, {**shared, "loaded": loaded, "first_load": first_load}
