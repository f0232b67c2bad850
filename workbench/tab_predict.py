"""Predict: load a clip, pick the frame window, paint a region (or choose a preset mask), and see
what the model predicts there, decoded into pixels, next to the original and the masked input,
with the per-frame surprise beside the untrained (step-0) model's. Under them, the comparison
row: the decoded target latents and the mean-colour fill, with each one's PSNR inside the mask.
A model without a decoder shows its predicted latents next to the target latents, in the same
PCA colours, and no comparison row.

`PredictHandlers` holds the tab's logic as plain methods (numpy in, files and figures out), so
tests call them without a browser; `build` lays out the components and wires the events.
"""

from __future__ import annotations

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
from workbench.predict import (
    EDITOR_PX,
    STRIP_PX,
    Prediction,
    Progress,
    clip_window,
    editor_value,
    last_start,
    paint_frame,
    predict,
)
from workbench.video_io import Video, read_video

MAX_FRAME_STEP = 8


class PredictHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    # ------------------------------------------------------------------------ loading

    @user_errors
    def load_example(self, name: str, bundle_key: str | None) -> tuple[Any, ...]:
        if not name:
            raise ValueError("pick an example clip")
        return self._loaded(load_example(name), bundle_key)

    @user_errors
    def load_upload(self, path: str | None, bundle_key: str | None) -> tuple[Any, ...]:
        """`_loaded`'s outputs, then the example picker cleared: it no longer names the clip."""
        if not path:
            raise ValueError("upload a video file (mp4, webm, mkv, avi or mov)")
        return (*self._loaded(read_video(path), bundle_key), gr.update(value=None))

    def _loaded(self, video: Video, bundle_key: str | None) -> tuple[Any, ...]:
        """(clip key, description, then the window controls and the editor for frame 0)."""
        bundle = self.ctx.registry.load(bundle_key)
        if len(video.frames) < bundle.num_frames:
            raise ValueError(
                f"{video.name} has {len(video.frames)} frames; this model needs at least "
                f"{bundle.num_frames}: use a longer clip"
            )
        key = self.ctx.clips.put(video)
        return (key, video.describe(), *self._window(bundle, video, 0, 1, 0, reset_range=True))

    # ------------------------------------------------------------------------ the window

    @user_errors
    def refresh_window(
        self, bundle_key: str | None, clip_key: str | None, start: int, step: int, index: int
    ) -> tuple[Any, ...]:
        """After the window or the painted frame changed: controls and editor."""
        if clip_key is None:  # nothing loaded yet: nothing to refresh
            return tuple(gr.skip() for _ in range(5))
        bundle = self.ctx.registry.load(bundle_key)
        return self._window(bundle, self.ctx.clips.get(clip_key), start, step, index)

    @user_errors
    def change_model(
        self, bundle_key: str | None, clip_key: str | None, start: int, step: int, index: int
    ) -> tuple[Any, ...]:
        """After another model was picked: its frame count may differ, so the frame range
        starts afresh."""
        if clip_key is None or bundle_key is None:
            return tuple(gr.skip() for _ in range(5))
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        return self._window(bundle, video, start, step, index, reset_range=True)

    def _window(
        self,
        bundle: Bundle,
        video: Video,
        start: int,
        step: int,
        index: int,
        reset_range: bool = False,
    ) -> tuple[Any, ...]:
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
            editor_value(paint_frame(bundle, window, index)),
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
        """What the Predict button fills: `predict`'s outputs, then the comparison row's
        (strip, PSNR line) for `show_comparison`, or None for a model without a decoder. The
        arguments are `_predict`'s; Gradio fills `progress` (a big model takes seconds)."""
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
        row = shown.comparison
        if row is None:
            return (*_outputs(shown), None)
        frames = strip([row.prediction, row.target, row.mean_fill], STRIP_PX)
        return (*_outputs(shown), (frames, row.line()))

    def show_comparison(self, row: tuple[np.ndarray, str] | None) -> tuple[Any, Any]:
        """(comparison strip, PSNR line), hidden for a model without a decoder."""
        if row is None:
            return gr.update(value=None, visible=False), gr.update(value="", visible=False)
        frames, line = row
        return gr.update(value=frames, visible=True), gr.update(value=line, visible=True)

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


def _outputs(shown: Prediction) -> tuple[str, str, str, np.ndarray, Any, str]:
    videos = [str(shown.videos[name]) for name in ("original", "masked", "prediction")]
    return (*videos, shown.strip, shown.surprise, shown.summary)


# ---------------------------------------------------------------------------------------------
# Layout.


def build(ctx: AppContext, bundle: gr.Dropdown) -> tuple[PredictHandlers, dict[str, Any]]:
    """Lay out the tab (inside a gr.Tab) and wire it; returns the handlers and the components
    other tabs use: the loaded clip's key, the window, the example picker and what loading a
    clip updates."""
    handlers = PredictHandlers(ctx)
    clip_key = gr.State(None)
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
            summary = gr.Markdown(elem_id="predict-summary")
        with gr.Column(scale=1):
            paint_index = gr.Slider(0, 7, value=0, step=1, label="Frame to paint on")
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
    comparison = gr.State(None)

    window_controls = [start, paint_index, range_start, range_stop, editor]
    loaded = [clip_key, info, *window_controls]
    # `input`, not `change`: clearing the picker after an upload must not load anything.
    example.input(handlers.load_example, [example, bundle], loaded, api_name="load_example")
    upload.upload(
        handlers.load_upload, [upload, bundle], [*loaded, example], api_name="load_upload"
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
        control.release(
            handlers.refresh_window, refresh_inputs, window_controls, api_visibility="undocumented"
        )
    bundle.change(
        handlers.change_model, refresh_inputs, window_controls, api_visibility="undocumented"
    )
    # The comparison travels in a State (not part of the API, whose outputs stay the six of
    # `predict`) and is shown once that succeeded.
    run.click(
        handlers.predict_view,
        [bundle, clip_key, start, step, editor, source, extent, range_start, range_stop, seed],
        [original, masked, predicted, frame_strip, surprise, summary, comparison],
        api_name="predict",
    ).success(
        handlers.show_comparison,
        comparison,
        [comparison_strip, comparison_line],
        api_visibility="undocumented",
    )
    shared = {"clip_key": clip_key, "start": start, "step": step, "example": example}
    return handlers, {**shared, "loaded": loaded}
