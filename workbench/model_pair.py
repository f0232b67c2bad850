"""Two models side by side on the same clip and the same mask (e.g. the starter and a run of
one's own): their decoded predictions, their surprise heatmaps on one colour scale, and a table
of the numbers that say which did better, each beside its no-learning references.

    pair = compare_models(first, second, ("starter", "my run"), window, choice, editor)
    pair.strip        # uint8 [H, W, 3]: original / masked / each model's prediction and heatmap
    pair.table        # Markdown: PSNR inside the mask, surprise, step 0, decoded target, mean fill

Both models must cut the clip into the same tokens (so that one mask means the same thing to
both) and both need a pixel decoder (so that there are predictions to look at);
`pair_problem` says what to do otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from decoder.bundle import Bundle
from workbench.comparison import MEAN_COLOUR, PREDICTION, TARGET
from workbench.frames import strip
from workbench.masks_ui import MaskChoice, token_mask
from workbench.predict import STRIP_PX, Prediction, predict_masked
from workbench.surprise_map import SCALE_WORDS, error_scale, heatmap_frames


def _size(bundle: Bundle) -> str:
    g = bundle.geometry
    grid = "x".join(map(str, g.grid))
    return f"{g.num_frames} frames of {g.img_size} px in {grid} tokens"


def pair_problem(first: Bundle, second: Bundle, labels: tuple[str, str]) -> str | None:
    """Why the two models cannot be compared, and what to do; None when they can."""
    for bundle, label in zip((first, second), labels, strict=True):
        if not bundle.has_decoder:
            return (
                f"{label} has no pixel decoder, so it has no decoded prediction to compare: fit "
                'one on that run in the Train tab ("fit a decoder on this run"), or pick a '
                "model with a decoder"
            )
    if first.geometry != second.geometry:
        return (
            f"{labels[1]} sees {_size(second)}, {labels[0]} {_size(first)}: one mask cannot mean "
            "the same to both. Compare models trained at the same clip size and patch size "
            "(e.g. runs of the same preset)"
        )
    return None


@dataclass
class ModelPair:
    labels: tuple[str, str]
    predictions: tuple[Prediction, Prediction]
    scale: float  # the error shown brightest in both heatmaps
    strip: np.ndarray  # uint8 [H, W, 3]
    rows: list[str]  # what each row of the strip shows, top to bottom

    @property
    def table(self) -> str:
        """Markdown: one line per model, each number beside its references."""
        lines = [
            "| model | PSNR inside the mask: prediction | decoded target latents | mean-colour "
            "fill | mean surprise | untrained (step 0) |",
            "|---|---|---|---|---|---|",
        ]
        for label, shown in zip(self.labels, self.predictions, strict=True):
            psnr = shown.comparison.psnr if shown.comparison is not None else {}
            cells = [f"{psnr[name]:.2f} dB" for name in (PREDICTION, TARGET, MEAN_COLOUR)]
            untrained = float(np.nanmean(shown.untrained))
            lines.append(
                f"| {label} | {' | '.join(cells)} | {shown.mean_surprise:.3f} | {untrained:.3f} |"
            )
        return "\n".join(lines) + (
            "\n\nRows of the picture, top to bottom: "
            + "; ".join(self.rows)
            + f". Heatmaps share one colour scale: {SCALE_WORDS} ({self.scale:.3f}). Higher "
            "PSNR and lower surprise are better; the same clip and mask for both."
        )


def compare_models(
    first: Bundle,
    second: Bundle,
    labels: tuple[str, str],
    window: np.ndarray,
    choice: MaskChoice,
    editor: dict[str, Any] | None,
) -> ModelPair:
    """Both models' predictions under one token mask (built for the first model; each model
    fills it with its own mask token for that kind of mask)."""
    problem = pair_problem(first, second, labels)
    if problem is not None:
        raise ValueError(problem)
    mask, first_index = token_mask(first, choice, editor)
    _, second_index = token_mask(second, choice, editor)
    predictions = (
        predict_masked(first, window, mask, first_index, write_videos=False),
        predict_masked(second, window, mask, second_index, write_videos=False),
    )
    scale = error_scale(*(shown.token_errors for shown in predictions))
    base = predictions[0].rendered
    frames = [base.original, base.masked]
    rows = ["original", "masked context"]
    for label, shown, bundle in zip(labels, predictions, (first, second), strict=True):
        heat = heatmap_frames(shown.rendered.original, shown.token_errors, bundle.geometry, scale)
        frames += [shown.rendered.composited, heat]
        rows += [f"{label}: prediction", f"{label}: surprise heatmap"]
    return ModelPair(labels, predictions, scale, strip(frames, STRIP_PX), rows)
