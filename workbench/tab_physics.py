"""Physics: is the model surprised when the world breaks its laws?

Pick a law and a pair: one scene of the held-out physics world rendered twice, identical until
the violation frame; from there the impossible twin breaks the law (the object vanishes, jumps,
changes shape or colour, stops or turns in mid-air). The pair is shown completed into its
matched set of four clips (train/data/violations.py): A possible, C impossible, B a possible
clip that shows lawfully what C shows after the violation, and D the violation in reverse (B
before it, A after it). All four go through the model as the yardstick does
(train/eval/surprise.py): windows slide over the clip, the first half of each predicts the
latents of the second half, and the error per frame is the surprise. A model that learned the
law is more surprised by the impossible clips after the violation.

The same curve over the clip loaded in Predict (an upload included) slides over its whole
length.

Beside every trained curve the same architecture at step 0 (workbench/step0.py) is measured on
the same clips, dashed: what the untrained model already "notices" (a vanishing object simply
leaves an easier scene) is not learned physics."""

from __future__ import annotations

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import torch

from decoder.bundle import Bundle
from decoder.clips import fit_clip
from train.data.violations import LAWS, PhysicsPair
from train.eval.physics import MATCHED_SET, PhysicsConfig, pair_world
from train.eval.surprise import LatentForecaster, measure_surprise
from workbench.context import AppContext
from workbench.frames import enlarge, side_by_side
from workbench.guard import user_errors
from workbench.paths import new_output_path
from workbench.plots import PALETTE, twin_surprise_figure, video_surprise_figure
from workbench.predict import PLAYBACK_FPS, VIDEO_PX
from workbench.step0 import untrained_models
from workbench.video_io import write_mp4

MAX_PAIR_NUMBER = 99
# The longest stretch of an upload the surprise curve covers (frames after the frame step).
MAX_CURVE_FRAMES = 128
VIOLATION_BORDER = (230, 40, 40)
# The matched set's clips as shown, in the order of MATCHED_SET: each possible clip followed by
# an impossible one, so the twins A | C stand together and so do B | D.
CLIP_NAMES = ("A possible", "C impossible", "B possible", "D impossible (reversed)")


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


def _yes(more: bool) -> str:
    return "yes" if more else "**no**"


def _step0_line(scores: list[float]) -> str:
    """The step-0 verdicts on the same matched set, in one line (`scores`: A, C, B, D)."""
    a, c, b, d = scores
    return (
        f"- **Step 0** (the same architecture untrained; dashed curves): impossible twin more "
        f"surprising: {_yes(c > a)} (C {c:.4f} vs A {a:.4f}); impossible clips of the set "
        f"more surprising: {_yes(c + d > a + b)} ({c + d:.4f} vs {a + b:.4f})."
    )


def _note(pair: PhysicsPair, scores: list[float], step0: list[float]) -> str:
    """Both verdicts on one matched set, from each clip's mean surprise over the windows
    (`scores` in the order of MATCHED_SET: A, C, B, D), and the same at step 0 (`step0`)."""
    a, c, b, d = scores
    if c > a:
        pair_verdict = "more surprised by C: it expected the law to hold"
    else:
        pair_verdict = "**not** more surprised by C"
    lawful, unlawful = a + b, c + d
    if unlawful > lawful:
        matched_verdict = "the impossible clips surprise it more: it expected the law to hold"
    else:
        matched_verdict = (
            "**not** more surprised by the impossible clips: by this measure it has not "
            "learned the law (or the clips barely differ to it)"
        )
    return (
        f"**{pair.law}** ({pair.variant}) from frame {pair.violation_frame} on, marked in red. "
        f"Mean surprise over the windows: A {a:.4f}, C {c:.4f}, B {b:.4f}, D {d:.4f}.\n\n"
        f"- **Pair**, C {c:.4f} vs A {a:.4f}: the model is {pair_verdict}.\n"
        f"- **Matched set**, S(C) + S(D) {unlawful:.4f} vs S(A) + S(B) {lawful:.4f}: "
        f"{matched_verdict}.\n"
        f"{_step0_line(step0)}\n\n"
        # Why the pair alone misleads: it rewards whatever is easier to predict after k.
        "The matched set is the fairer test: every frame of C and D is a frame of A or B at the "
        "same time, so frames that are simply easier to predict (an empty scene after a "
        "vanishing) cancel, and only the broken law is left. The yardstick scores many such "
        "sets: `python -m train.eval.physics MODEL` (a model that learned nothing sits near "
        "50%)."
    )


STEP0_NAME = "untrained (step 0)"


def _add_step0_curves(figure: go.Figure, per_frame: np.ndarray) -> None:
    """The step-0 surprise of each clip of the set, dashed, in its trained curve's colour, on
    an axis of its own (right): untrained surprise is several times the trained one (0.8
    against 0.2 on the starter), and on one axis it would flatten the trained curves."""
    for index, (values, name) in enumerate(zip(per_frame, CLIP_NAMES, strict=True)):
        figure.add_trace(
            go.Scatter(
                x=list(range(len(values))),
                y=np.asarray(values, dtype=np.float64),
                mode="lines",
                name=f"{name}, {STEP0_NAME}",
                line={"dash": "dash", "width": 1, "color": PALETTE[index]},
                connectgaps=False,
                yaxis="y2",
                hovertemplate=f"{name} at step 0<br>frame %{{x}}<br>surprise %{{y:.4f}}"
                "<extra></extra>",
            )
        )
    figure.update_layout(
        yaxis2={
            "title": "step 0 (dashed)",
            "overlaying": "y",
            "side": "right",
            "rangemode": "tozero",
            "showgrid": False,
        },
        # Eight curves: the legend goes below the plot, clear of the second axis.
        legend={"orientation": "h", "yanchor": "top", "y": -0.25, "x": 0},
        height=460,
        margin={"b": 140},
    )
    # The trained curves in the same colours, so each dashed curve pairs with its clip's.
    for index, trace in enumerate(figure.data[: len(CLIP_NAMES)]):
        trace.line.color = PALETTE[index]


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
        """(side-by-side mp4 of the matched set, its surprise curves, a note)."""
        bundle = self.ctx.registry.load(bundle_key)
        pair, context = self._pair(bundle, law, number)
        clips = [getattr(pair, clip) for clip in MATCHED_SET]
        batch = torch.stack(clips)
        surprise = measure_surprise(LatentForecaster(bundle.pretrained), batch, context)
        untrained = measure_surprise(LatentForecaster(untrained_models(bundle)), batch, context)
        k = pair.violation_frame
        # Every second clip of the set (C, D) is impossible: a red border from k on.
        shown = [_frames(clip) for clip in clips]
        shown[1::2] = [_mark_violation(frames, k) for frames in shown[1::2]]
        movie = side_by_side([enlarge(frames, VIDEO_PX) for frames in shown])
        path = write_mp4(movie, new_output_path("physics", ".mp4"), PLAYBACK_FPS)
        figure = twin_surprise_figure(surprise.per_frame.numpy(), k, CLIP_NAMES)
        _add_step0_curves(figure, untrained.per_frame.numpy())
        note = _note(
            pair, surprise.clip_score("mean").tolist(), untrained.clip_score("mean").tolist()
        )
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
        trained = measure_surprise(LatentForecaster(bundle.pretrained), clip, context)
        untrained = measure_surprise(LatentForecaster(untrained_models(bundle)), clip, context)
        per_frame, step0 = trained.per_frame[0].numpy(), untrained.per_frame[0].numpy()
        figure = video_surprise_figure(per_frame, int(step))
        figure.add_trace(
            go.Scatter(
                x=[i * int(step) for i in range(len(step0))],
                y=step0.astype(np.float64),
                mode="lines",
                name=STEP0_NAME,
                line={"dash": "dash", "color": "grey"},
                connectgaps=False,
                hovertemplate="frame %{x}<br>step-0 surprise %{y:.4f}<extra></extra>",
            )
        )
        peak, peak0 = int(np.nanargmax(per_frame)), int(np.nanargmax(step0))
        note = (
            f"{video.name}: {clip.shape[2]} frames (every {int(step)}. frame"
            f"{', cut to ' + str(MAX_CURVE_FRAMES) if len(frames) == MAX_CURVE_FRAMES else ''}); "
            f"windows of {bundle.num_frames} frames, the first {context} predict the rest. "
            f"Most surprising: frame {peak * int(step)} of the clip (mean surprise "
            f"{np.nanmean(per_frame):.4f}). At step 0, the same architecture untrained (dashed): "
            f"frame {peak0 * int(step)} (mean {np.nanmean(step0):.4f})."
        )
        return figure, note


def build(ctx: AppContext, bundle: gr.Dropdown, shared: dict) -> None:
    handlers = PhysicsHandlers(ctx)
    gr.Markdown(
        "Four clips of one scene, a *matched set* as in IntPhys. **A** is possible; **C** is "
        "the same scene until the red border, from where it breaks a law of physics. **B** is "
        "possible too and shows lawfully what C shows after the border (the object that was "
        "never there, or was always still); **D** is B before the border and A after it: the "
        "violation in reverse. C and D show the same frames as A and B, only in an impossible "
        "order. The curves are the model's **surprise** per frame: the L1 distance between the "
        "latents it predicts for the coming frames and the latents the target encoder computes "
        "for them. The dashed curves are the same architecture untrained (step 0) on the same "
        "clips: a difference it shows too is no learned physics."
    )
    with gr.Row():
        law = gr.Dropdown(list(LAWS), value=LAWS[0], label="Law")
        number = gr.Slider(0, MAX_PAIR_NUMBER, value=0, step=1, label="Pair")
        show = gr.Button("Show pair", variant="primary", elem_id="physics-pair-button")
    with gr.Row():
        movie = gr.Video(label=" | ".join(CLIP_NAMES), autoplay=True, loop=True)
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
