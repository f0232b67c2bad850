"""Small helpers the notebooks share: frames as matplotlib figures, plain-text tables, masked
regions painted onto clips, and fresh run folders under `runs/notebooks/`.

Everything returns ordinary objects (matplotlib figures, strings, numpy arrays), so a notebook
cell stays a few lines long and the same picture can be made from a script.

    fig = frame_rows({"clip": frames, "prediction": composited})   # one row per entry
    print(text_table(["method", "PSNR"], [["copy", 21.3]]))
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.figure import Figure

from decoder.batches import DecoderBatch
from decoder.evaluation import Method
from decoder.masks import token_mask_to_pixels
from train.tokens import TokenGeometry
from workbench.frames import GAP_PX, strip
from workbench.paths import REPO_ROOT

NOTEBOOK_RUNS = REPO_ROOT / "runs" / "notebooks"
MASK_COLOUR = (230, 60, 60)
# How strongly the mask colour covers a masked pixel: the clip stays visible underneath.
MASK_OPACITY = 0.6
FRAME_PX = 96
DPI = 100


def new_run_dir(name: str) -> Path:
    """A run folder that does not exist yet: `runs/notebooks/<name>-<date-time>` in the
    checkout (git-ignored), so every notebook run is an ordinary, separate training run."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):
        raise ValueError(f"run name {name!r}: use letters, digits, '.', '_' and '-'")
    stem = NOTEBOOK_RUNS / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    path, n = stem, 1
    while path.exists():
        n += 1
        path = stem.with_name(f"{stem.name}-{n}")
    return path


def frame_rows(
    rows: Mapping[str, np.ndarray], size: int = FRAME_PX, title: str | None = None
) -> Figure:
    """Clips (uint8 [T, S, S, 3], same T and S) as one picture: a row per clip, named on the
    left, one column per frame, numbered at the top."""
    names, clips = list(rows), [np.asarray(clip) for clip in rows.values()]
    image = strip(clips, size)
    height, width = image.shape[:2]
    side = (height - (len(clips) - 1) * GAP_PX) // len(clips)
    margin_px = 8 * max(len(name) for name in names) + 20
    fig = plt.figure(figsize=((width + margin_px) / DPI, (height + 40) / DPI), dpi=DPI)
    ax = fig.add_axes((margin_px / (width + margin_px), 0.0, width / (width + margin_px), 1.0))
    ax.imshow(image, interpolation="nearest")
    step = side + GAP_PX
    ax.set_yticks([r * step + side / 2 for r in range(len(names))], names)
    ax.set_xticks([c * step + side / 2 for c in range(clips[0].shape[0])])
    ax.set_xticklabels([str(c) for c in range(clips[0].shape[0])])
    ax.xaxis.tick_top()
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title, pad=18)
    # Closed from pyplot's list: the notebook shows the returned figure once, not twice.
    plt.close(fig)
    return fig


def paint_mask(
    frames: np.ndarray,
    token_mask: torch.Tensor | np.ndarray,
    geometry: TokenGeometry,
    colour: tuple[int, int, int] = MASK_COLOUR,
) -> np.ndarray:
    """uint8 [T, H, W, 3] frames with the pixels of a token mask [T', H', W'] tinted."""
    pixel_mask = token_mask_to_pixels(torch.as_tensor(np.asarray(token_mask)), geometry).numpy()
    out = frames.astype(np.float32)
    tint = np.asarray(colour, dtype=np.float32)
    out[pixel_mask] = (1 - MASK_OPACITY) * out[pixel_mask] + MASK_OPACITY * tint
    return out.round().astype(np.uint8)


def token_grid_frames(token_mask: torch.Tensor | np.ndarray, geometry: TokenGeometry) -> np.ndarray:
    """A token mask [T', H', W'] drawn as frames [T, H, W, 3]: masked tokens in the mask
    colour, visible ones light grey, so the blocks' shape over time is plain to see."""
    pixels = token_mask_to_pixels(torch.as_tensor(np.asarray(token_mask)), geometry).numpy()
    frames = np.full((*pixels.shape, 3), 225, dtype=np.uint8)
    frames[pixels] = MASK_COLOUR
    return frames


def text_table(header: Sequence[str], rows: Sequence[Sequence[object]], digits: int = 3) -> str:
    """Rows as aligned columns (numbers rounded to `digits`), for `print`."""

    def cell(value: object) -> str:
        if isinstance(value, (float, np.floating)):
            return f"{value:.{digits}f}"
        return str(value)

    cells = [[cell(v) for v in header], *[[cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *map(line, cells[1:])])


def fills_of_one_clip(
    batch: DecoderBatch, methods: Sequence[Method], index: int, geometry: TokenGeometry
) -> dict[str, np.ndarray]:
    """Frames [T, H, W, 3] of clip `index` of a held-out batch: the clip, the clip with its
    mask tinted, then each method's fill of the masked region, keyed by name."""
    one = DecoderBatch(*(t[index : index + 1] for t in vars(batch).values()))
    clip = one.clips[0].permute(1, 2, 3, 0).numpy()
    rows = {"clip": clip, "hidden region": paint_mask(clip, one.token_masks[0], geometry)}
    for method in methods:
        rows[method.name] = method.fill(one)[0].permute(1, 2, 3, 0).cpu().numpy()
    return rows


def scores_table(
    results: Mapping[str, Mapping[str, Mapping[str, float]]], metric: str, digits: int = 2
) -> str:
    """{family: {method: {metric: value}}} (decoder.evaluation.score_methods) as a table: a row
    per mask family, a column per method."""
    methods = list(next(iter(results.values())))
    rows = [[family, *(results[family][m][metric] for m in methods)] for family in results]
    return text_table([f"{metric} by mask family", *methods], rows, digits)
