"""The Predict tab's work, without the UI: pick a window of frames, fit it to the model, build
the mask, decode the prediction and turn it into videos, a frame strip and a surprise curve.
The surprise curve carries the same model's step-0 surprise on the same clip and mask as its
reference (workbench/step0.py); a model with a decoder also gets the comparison row (the decoded
target latents and the mean-colour fill, workbench/comparison.py). A model without a decoder
shows its predicted and target latents in PCA colours instead (workbench/latent_view.py), with a
note on fitting a decoder. Both show the surprise heatmap: each masked token's error over the
frames (workbench/surprise_map.py).

    window = clip_window(video.frames, start=0, step=1, num_frames=bundle.num_frames)
    shown = predict(bundle, window, MaskChoice(), editor_value)   # or MaskChoice("causal")
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image

from decoder.bundle import Bundle
from decoder.render import Rendered, render_prediction
from workbench.comparison import Comparison, compare
from workbench.decoder_hint import decoder_hint
from workbench.frames import enlarge, side_by_side, strip
from workbench.latent_view import LatentView, latent_view
from workbench.masks_ui import (
    PAINTED,
    PRESET_REPLACES_PAINT,
    MaskChoice,
    has_paint,
    mask_token_role,
    token_mask,
)
from workbench.paths import new_output_path
from workbench.plots import surprise_figure
from workbench.step0 import untrained_surprise
from workbench.surprise_map import error_scale, heatmap_frames
from workbench.video_io import write_mp4

VIDEO_PX = 256  # shown videos are enlarged to about this size
STRIP_PX = 96  # one frame in the strip
EDITOR_PX = 320  # the frame people paint on
PLAYBACK_FPS = 4.0  # slow enough to follow a short clip frame by frame

# (share done in [0, 1], what runs now): a big model's Predict takes seconds on a CPU, so the
# tab shows its stages (Gradio's progress bar).
Progress = Callable[[float, str], None]
# The stages' shares of the time: the model's pass and the step-0 reference cost about the same.
PREDICTING = (0.0, "predicting the masked tokens: encoder, predictor, target encoder")
REFERENCE = (0.45, "the same model untrained (step 0), for the reference curve")
WRITING = (0.9, "writing the videos")


def _no_progress(_share: float, _text: str) -> None:
    pass


def clip_window(frames: np.ndarray, start: int, step: int, num_frames: int) -> np.ndarray:
    """`num_frames` frames of `frames` [T, H, W, 3] from `start`, every `step`-th one."""
    start, step = int(start), int(step)
    if step < 1:
        raise ValueError(f"frame step must be at least 1, got {step}")
    needed = (num_frames - 1) * step + 1
    available = len(frames) - start
    if len(frames) < needed:
        raise ValueError(
            f"the clip has {len(frames)} frames; this model needs {num_frames} frames "
            f"{step} apart ({needed} frames): use a longer clip or a smaller frame step"
        )
    if start < 0 or available < needed:
        raise ValueError(
            f"a window starting at frame {start} runs past the end of the clip "
            f"({len(frames)} frames): start at frame {len(frames) - needed} or earlier"
        )
    return frames[start : start + needed : step]


def last_start(total_frames: int, step: int, num_frames: int) -> int:
    """The latest window start that still fits (-1 when no window fits)."""
    return total_frames - ((num_frames - 1) * int(step) + 1)


def model_frames(bundle: Bundle, window: np.ndarray) -> np.ndarray:
    """The window as the model sees it: uint8 [T, S, S, 3], centre-cropped and resized."""
    return bundle.fit_clip(window).permute(1, 2, 3, 0).numpy()


def paint_frame(bundle: Bundle, window: np.ndarray, index: int) -> np.ndarray:
    """Frame `index` of the window as the model sees it, enlarged for the brush."""
    frames = model_frames(bundle, window)
    index = min(max(int(index), 0), len(frames) - 1)
    # Exactly EDITOR_PX whatever the model's size, so the brush feels the same for every model.
    image = Image.fromarray(frames[index]).resize((EDITOR_PX, EDITOR_PX), Image.Resampling.NEAREST)
    return np.asarray(image)


@dataclass
class Prediction:
    rendered: Rendered | LatentView  # LatentView: the model has no decoder
    videos: dict[str, Path]  # "original", "masked", "prediction" -> mp4
    # uint8 [H, W, 3]: rows original / masked / prediction; without a decoder original /
    # masked / target latents / predicted latents
    strip: np.ndarray
    surprise: go.Figure  # the trained model's curve, and the step-0 one dashed
    summary: str
    token_errors: np.ndarray  # float32 [T', H', W']: each masked token's surprise, NaN where seen
    heatmap: np.ndarray  # uint8 [T, H, W, 3]: token_errors over the frames, on heatmap_scale
    heatmap_scale: float  # the error shown brightest: the largest one
    untrained: np.ndarray  # float32 [T]: the step-0 surprise per frame, the curve's reference
    comparison: Comparison | None = None  # None: the model has no decoder

    @property
    def mean_surprise(self) -> float:
        return float(np.nanmean(self.rendered.surprise))


def predict(
    bundle: Bundle,
    window: np.ndarray,
    choice: MaskChoice,
    editor: dict[str, Any] | None,
    frame_numbers: list[int] | None = None,
    progress: Progress = _no_progress,
    write_videos: bool = True,
) -> Prediction:
    """Decode the model's prediction under the chosen mask for a window of frames (without a
    decoder: show its latents, see `predict_latents`); `progress` hears of each stage.
    `write_videos=False` leaves `videos` empty (a comparison shows frames only)."""
    mask, mask_index = token_mask(bundle, choice, editor)
    # Said, not silent: a preset ignores what was painted.
    replaced = choice.source != PAINTED and has_paint(editor)
    note = f" Note: {PRESET_REPLACES_PAINT}." if replaced else ""
    return predict_masked(
        bundle, window, mask, mask_index, frame_numbers, progress, note, write_videos
    )


def predict_masked(
    bundle: Bundle,
    window: np.ndarray,
    mask: Any,
    mask_index: int,
    frame_numbers: list[int] | None = None,
    progress: Progress = _no_progress,
    note: str = "",
    write_videos: bool = True,
) -> Prediction:
    """`predict` under a token mask [T', H', W'] already built (two models compared share one);
    `note` follows the sentence on the mask."""
    if not bundle.has_decoder:
        return predict_latents(
            bundle, window, mask, mask_index, frame_numbers, progress, note, write_videos
        )
    clip = bundle.fit_clip(window)
    progress(*PREDICTING)
    rendered = render_prediction(bundle, clip, mask, mask_index, decode_target=True)
    progress(*REFERENCE)
    untrained = untrained_surprise(bundle, clip, rendered.token_mask, rendered.mask_index)
    progress(*WRITING)
    shown = {
        "original": rendered.original,
        "masked": rendered.masked,
        "prediction": rendered.composited,
    }
    videos = (
        {
            name: write_mp4(enlarge(frames, VIDEO_PX), new_output_path(name, ".mp4"), PLAYBACK_FPS)
            for name, frames in shown.items()
        }
        if write_videos
        else {}
    )
    summary = (
        f"{_masked_sentence(bundle, rendered.token_mask, rendered.mask_index)}{note} "
        f"{_surprise_sentence(rendered.surprise, untrained)}"
    )
    return Prediction(
        rendered=rendered,
        videos=videos,
        strip=strip(list(shown.values()), STRIP_PX),
        surprise=surprise_figure(rendered.surprise, frame_numbers, untrained),
        summary=summary,
        **_heatmap(bundle, rendered.original, rendered.token_errors),
        untrained=untrained,
        comparison=compare(bundle, clip, rendered),
    )


def _heatmap(bundle: Bundle, frames: np.ndarray, errors: np.ndarray) -> dict[str, Any]:
    """Prediction's heatmap fields, on the scale of its own largest error."""
    scale = error_scale(errors)
    return {
        "token_errors": errors,
        "heatmap": heatmap_frames(frames, errors, bundle.geometry, scale),
        "heatmap_scale": scale,
    }


def _masked_sentence(bundle: Bundle, token_mask: np.ndarray, mask_index: int) -> str:
    """How much was hidden, and which of its learned placeholders the predictor filled it with
    (its technical index last, as the configs and logs count them)."""
    role = mask_token_role(bundle.config.mask, mask_index)
    return (
        f"Masked {token_mask.mean():.0%} of the tokens ({int(token_mask.sum())} of "
        f"{token_mask.size}). The predictor filled them in as it learned to for {role}; "
        f"technically, mask token {mask_index}."
    )


def _surprise_sentence(surprise: np.ndarray, untrained: np.ndarray) -> str:
    return (
        f"Mean surprise {np.nanmean(surprise):.3f} (mean L1 per masked token; the same model "
        f"untrained, at step 0: {np.nanmean(untrained):.3f})."
    )


def predict_latents(
    bundle: Bundle,
    window: np.ndarray,
    mask: Any,
    mask_index: int,
    frame_numbers: list[int] | None = None,
    progress: Progress = _no_progress,
    note: str = "",
    write_videos: bool = True,
) -> Prediction:
    """The decoder-free view: the "prediction" video shows the target latents (left) and the
    predicted latents (right) of the masked region in the same PCA colours. `note` follows the
    sentence on the mask."""
    clip = bundle.fit_clip(window)
    progress(*PREDICTING)
    view = latent_view(bundle, clip, mask, mask_index)
    progress(*REFERENCE)
    untrained = untrained_surprise(bundle, clip, view.token_mask, view.mask_index)
    progress(*WRITING)
    pair = side_by_side([enlarge(view.target, VIDEO_PX), enlarge(view.predicted, VIDEO_PX)])
    shown = {
        "original": enlarge(view.original, VIDEO_PX),
        "masked": enlarge(view.masked, VIDEO_PX),
        "prediction": pair,
    }
    videos = (
        {
            name: write_mp4(frames, new_output_path(name, ".mp4"), PLAYBACK_FPS)
            for name, frames in shown.items()
        }
        if write_videos
        else {}
    )
    explained = ", ".join(f"{share:.0%}" for share in view.explained)
    summary = (
        f"**This model has no pixel decoder**, so the prediction is shown as latents: left the "
        f"target encoder's latents of the masked region, right the predictor's, in the same "
        f"PCA colours (fitted on the target latents of this clip; its three components hold "
        f"{explained} of their variance). Alike colours mean a prediction close to the clip. "
        f"{_masked_sentence(bundle, view.token_mask, view.mask_index)}{note} "
        f"{_surprise_sentence(view.surprise, untrained)}\n\n{decoder_hint(bundle)}"
    )
    rows = [view.original, view.masked, view.target, view.predicted]
    return Prediction(
        rendered=view,
        videos=videos,
        strip=strip(rows, STRIP_PX),
        surprise=surprise_figure(view.surprise, frame_numbers, untrained),
        summary=summary,
        **_heatmap(bundle, view.original, view.token_errors),
        untrained=untrained,
    )
