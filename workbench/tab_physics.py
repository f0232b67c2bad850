"""Physics: is the model surprised when the world breaks its laws?

Pick a law and a pair: one scene of the held-out physics world rendered twice, identical until
the violation frame; from there the impossible twin breaks the law (the object vanishes, jumps,
changes shape or colour, stops or turns in mid-air). Both twins go through the model as the
yardstick does (train/eval/surprise.py): windows slide over the clip, the first half of each
predicts the latents of the second half, and the error per frame is the surprise. A model that
learned the law is more surprised by the impossible twin after the violation.

The same curve over the clip loaded in Predict (an upload included) slides over its whole
length.
"""

from __future__ import annotations

import gradio as gr
import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import fit_clip
from train.data.violations import LAWS, PhysicsPair
from train.eval.physics import PhysicsConfig, pair_world
from train.eval.surprise import LatentForecaster, measure_surprise
from workbench.context import AppContext
from workbench.frames import enlarge, side_by_side
from workbench.guard import user_errors
from workbench.paths import new_output_path
from workbench.plots import twin_surprise_figure, video_surprise_figure
from workbench.predict import PLAYBACK_FPS, VIDEO_PX
from workbench.video_io import write_mp4

MAX_PAIR_NUMBER = 99
# The longest stretch of an upload the surprise curve covers (frames after the frame step).
MAX_CURVE_FRAMES = 128
VIOLATION_BORDER = (230, 40, 40)


def _mark_violation(frames: np.ndarray, first: int, width: int = 2) -> np.ndarray:
    """A red border on the frames from `first` on: where the law is broken."""
    marked = frames.copy()
    for edge in (
        np.s_[first:, :width],
        np.s_[first:, -width:],
        np.s_[first:, :, :width],
        np.s_[first:, :, -width:],
    ):
        marked[edge] = VIOLATION_BORDER
    return marked


def _frames(clip: torch.Tensor) -> np.ndarray:
    return clip.permute(1, 2, 3, 0).numpy()


class PhysicsHandlers:
    def __init__(self, ctx: AppContext):
        self.ctx = ctx

    def _pair(self, bundle: Bundle, law: str, number: int) -> tuple[PhysicsPair, int]:
        if law not in LAWS:
            raise ValueError(f"law {law!r}: choose one of {', '.join(LAWS)}")
        number = int(number)
        if not 0 <= number <= MAX_PAIR_NUMBER:
            raise ValueError(f"pair number must lie in 0..{MAX_PAIR_NUMBER}, got {number}")
        world, context = pair_world(bundle.config, PhysicsConfig())
        return world.pair(number, law), context

    @user_errors
    def show_pair(self, bundle_key: str | None, law: str, number: int):
        """(side-by-side mp4 of the twins, their surprise curves, a note)."""
        bundle = self.ctx.registry.load(bundle_key)
        pair, context = self._pair(bundle, law, number)
        forecaster = LatentForecaster(bundle.pretrained)
        clips = torch.stack([pair.possible, pair.impossible])
        surprise = measure_surprise(forecaster, clips, context)
        k = pair.violation_frame
        movie = side_by_side(
            [
                enlarge(_frames(pair.possible), VIDEO_PX),
                enlarge(_mark_violation(_frames(pair.impossible), k), VIDEO_PX),
            ]
        )
        path = write_mp4(movie, new_output_path("physics", ".mp4"), PLAYBACK_FPS)
        possible, impossible = surprise.clip_score("mean").tolist()
        verdict = (
            "more surprised by the impossible twin: the model expected the law to hold"
            if impossible > possible
            else "**not** more surprised by the impossible twin: by this measure it has not "
            "learned the law (or the twins barely differ to it)"
        )
        note = (
            f"**{law}** ({pair.variant}) from frame {k} on, marked in red. Mean surprise over "
            f"the windows: possible {possible:.4f}, impossible {impossible:.4f}; the model is "
            f"{verdict}. The yardstick scores many such pairs: `python -m train.eval.physics "
            "MODEL` (a model that learned nothing sits near 50%)."
        )
        figure = twin_surprise_figure(surprise.per_frame.numpy(), k)
        return str(path), figure, note

    @user_errors
    def video_curve(self, bundle_key: str | None, clip_key: str | None, step: int):
        """(surprise per frame over the Predict tab's clip, a note)."""
        bundle = self.ctx.registry.load(bundle_key)
        video = self.ctx.clips.get(clip_key)
        frames = video.frames[:: max(1, int(step))][:MAX_CURVE_FRAMES]
        if len(frames) < bundle.num_frames:
            raise ValueError(
                f"{video.name} gives {len(frames)} frames at frame step {int(step)}; the model "
                f"needs at least {bundle.num_frames}: use a smaller frame step in Predict"
            )
        clip = fit_clip(frames, len(frames), bundle.img_size)[None]  # [1, 3, T, S, S]
        context = bundle.num_frames // 2
        surprise = measure_surprise(LatentForecaster(bundle.pretrained), clip, context)
        figure = video_surprise_figure(surprise.per_frame[0].numpy(), int(step))
        peak = int(np.nanargmax(surprise.per_frame[0].numpy()))
        note = (
            f"{video.name}: {clip.shape[2]} frames (every {int(step)}. frame"
            f"{', cut to ' + str(MAX_CURVE_FRAMES) if len(frames) == MAX_CURVE_FRAMES else ''}); "
            f"windows of {bundle.num_frames} frames, the first {context} predict the rest. "
            f"Most surprising: frame {peak * int(step)} of the clip."
        )
        return figure, note


def build(ctx: AppContext, bundle: gr.Dropdown, shared: dict) -> None:
    handlers = PhysicsHandlers(ctx)
    gr.Markdown(
        "Two clips of one scene, identical until the red border; from there the right one "
        "breaks a law of physics. The curves are the model's **surprise** per frame: the L1 "
        "distance between the latents it predicts for the coming frames and the latents the "
        "target encoder computes for them."
    )
    with gr.Row():
        law = gr.Dropdown(list(LAWS), value=LAWS[0], label="Law")
        number = gr.Slider(0, MAX_PAIR_NUMBER, value=0, step=1, label="Pair")
        show = gr.Button("Show pair", variant="primary", elem_id="physics-pair-button")
    with gr.Row():
        movie = gr.Video(label="possible | impossible", autoplay=True, loop=True)
        curves = gr.Plot(label="Surprise per frame")
    note = gr.Markdown(elem_id="physics-note")
    show.click(
        handlers.show_pair, [bundle, law, number], [movie, curves, note], api_name="physics_pair"
    )
    gr.Markdown("### Surprise over the clip loaded in Predict (your upload included)")
    with gr.Row():
        run = gr.Button("Surprise over the whole clip", elem_id="physics-video-button")
    video_curve = gr.Plot(label="Surprise per frame of the clip")
    video_note = gr.Markdown()
    run.click(
        handlers.video_curve,
        [bundle, shared["clip_key"], shared["step"]],
        [video_curve, video_note],
        api_name="physics_video",
    )
