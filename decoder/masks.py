"""Token masks for decoding: the families the decoder trains and is evaluated on, the app's
painted masks, preset masks, and which learned predictor mask token a mask uses.

A token mask is a boolean [T', H', W'] grid over the model's tokens (True = hidden from the
encoder, predicted, decoded). Families:

* `pretraining`: the run's own strategy (multiblock: one of its mask sets, with that set's
  predictor token), drawn per sample;
* `multiblock-short`, `multiblock-long`: one multiblock mask set (the smallest / largest
  spatial scale; the paper's 8 x 15% and 2 x 70% blocks), every block through the whole clip;
* `random-tube`: a random share of spatial positions through the whole clip;
* `causal`: every frame after the run's causal context (or the second half of the clip);
* `blob`: one elliptic blob over a random range of frames (a region painted on a few frames);
* `tube`: one elliptic blob through the whole clip (a region painted on the whole clip);
* `future`: every frame from a random time step on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from train.config import MaskConfig
from train.masks import (
    causal,
    causal_context_steps,
    num_strategy_sets,
    random_int,
    random_tube,
    sample_target_mask,
    uniform,
)
from train.tokens import TokenGeometry

FAMILIES = (
    "pretraining",
    "multiblock-short",
    "multiblock-long",
    "random-tube",
    "causal",
    "blob",
    "tube",
    "future",
)
PRESETS = ("multiblock-short", "multiblock-long", "random-tube", "causal")
# The app's painted families and the evaluation's: everything but the run's own mixture.
PAINTED_FAMILIES = ("blob", "tube", "future")
# Blob area as a share of the frame, and its aspect range (h/w), on the token grid.
BLOB_AREA = (0.08, 0.35)
BLOB_ASPECT = (0.5, 2.0)
# Painted masks hiding at least this share of all tokens use the long-range predictor token,
# smaller ones the short-range token. Chosen by measurement (benchmarks/decoder_quality.py,
# docs/results.md): see `mask_index_for`.
LONG_RANGE_FROM = 0.5


def as_tensor(array: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A tensor as is; a numpy array of any strides (a flipped or sliced view too) as a tensor."""
    if isinstance(array, torch.Tensor):
        return array
    return torch.from_numpy(np.ascontiguousarray(array))


def check_token_mask(mask: torch.Tensor | np.ndarray, geometry: TokenGeometry) -> torch.Tensor:
    """A [T', H', W'] (or flat [N]) boolean mask with both a target and a context, as bool grid."""
    mask = as_tensor(mask)
    grid = geometry.grid
    if tuple(mask.shape) == (geometry.num_tokens,):
        mask = mask.view(grid)
    if tuple(mask.shape) != grid:
        raise ValueError(
            f"token mask has shape {tuple(mask.shape)}; this model needs {grid} "
            f"(time steps x rows x columns of {geometry.tubelet_size}x{geometry.patch_size}x"
            f"{geometry.patch_size} tubelets) or a flat mask of {geometry.num_tokens} tokens"
        )
    mask = mask.bool()
    if not mask.any():
        raise ValueError("the mask hides no token: paint the region the model should predict")
    if mask.all():
        raise ValueError(
            "the mask hides every token: the model predicts a region from what it sees, so "
            "leave part of the clip visible"
        )
    return mask


# ---------------------------------------------------------------------------------------------
# Which predictor mask token.


def _multiblock_config(mask_cfg: MaskConfig) -> MaskConfig:
    """The run's multiblock masks, or the paper's two sets when it trained on another strategy."""
    if mask_cfg.strategy == "multiblock":
        return mask_cfg
    return MaskConfig()


def _set_by_scale(mask_cfg: MaskConfig, largest: bool) -> int:
    scales = [spec.spatial_scale[1] for spec in _multiblock_config(mask_cfg).multiblock]
    return scales.index(max(scales) if largest else min(scales))


def mask_index_for(mask: torch.Tensor, mask_cfg: MaskConfig) -> int:
    """The predictor mask token for a mask the run did not train on (painted, blob, future).

    The predictor learned one mask token per mask set; for multiblock runs set 0 is the
    short-range set (many small blocks) and the last the long-range set (few large blocks).
    A painted mask that hides at least `LONG_RANGE_FROM` of the clip's tokens is a large
    prediction problem like the long-range set's and uses its token; a smaller one uses the
    short-range token. Runs trained on one mask set, or on tubes or causal masks (whose tokens
    are interchangeable), use token 0.
    """
    if mask_cfg.strategy != "multiblock" or len(mask_cfg.multiblock) < 2:
        return 0
    large = mask.float().mean().item() >= LONG_RANGE_FROM
    return _set_by_scale(mask_cfg, largest=large)


# ---------------------------------------------------------------------------------------------
# Families.


def blob(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """One random ellipse of `BLOB_AREA` of a rows x cols token frame, as bool [rows, cols]."""
    # float64 draws: the blobs of fitted decoders and recorded results were drawn so.
    area = uniform(gen, *BLOB_AREA, torch.float64) * rows * cols
    aspect = math.exp(
        uniform(gen, math.log(BLOB_ASPECT[0]), math.log(BLOB_ASPECT[1]), torch.float64)
    )
    radius_y = math.sqrt(area * aspect / math.pi)
    radius_x = math.sqrt(area / aspect / math.pi)
    centre_y = uniform(gen, 0, rows, torch.float64)
    centre_x = uniform(gen, 0, cols, torch.float64)
    y = (torch.arange(rows, dtype=torch.float64) + 0.5 - centre_y) / radius_y
    x = (torch.arange(cols, dtype=torch.float64) + 0.5 - centre_x) / radius_x
    inside = y[:, None] ** 2 + x[None, :] ** 2 <= 1.0
    # A thin ellipse may fall between token centres: keep at least the token under its centre.
    inside[min(rows - 1, int(centre_y)), min(cols - 1, int(centre_x))] = True
    return inside


def sample_mask(
    family: str, geometry: TokenGeometry, mask_cfg: MaskConfig, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    """(token mask [T', H', W'], predictor mask-token index) of one sample of `family`."""
    grid = geometry.grid
    steps = grid[0]
    if family in ("future", "causal") and steps < 2:
        raise ValueError(f"{family} masks need clips of at least 2 time steps; this has {steps}")
    tubelet = geometry.tubelet_size
    if family == "pretraining":
        # The run's own strategy: one of its mask sets at random, with that set's token.
        index = random_int(gen, 0, num_strategy_sets(mask_cfg) - 1)
        return sample_target_mask(mask_cfg, grid, tubelet, index, gen), index
    if family in ("multiblock-short", "multiblock-long"):
        index = _set_by_scale(mask_cfg, largest=family == "multiblock-long")
        mask = sample_target_mask(_multiblock_config(mask_cfg), grid, tubelet, index, gen)
        if mask_cfg.strategy == "multiblock":
            return mask, index
    elif family == "random-tube":
        mask = random_tube(grid, mask_cfg.tube_ratio, gen)
    elif family == "causal":
        mask = causal(grid, causal_context_steps(mask_cfg, steps, tubelet))
    elif family == "future":
        mask = causal(grid, random_int(gen, 1, steps - 1))
    elif family in ("blob", "tube"):
        region = blob(grid[1], grid[2], gen)
        length = steps if family == "tube" else random_int(gen, 1, max(1, steps - 1))
        start = random_int(gen, 0, steps - length)
        mask = torch.zeros(grid, dtype=torch.bool)
        mask[start : start + length] = region
    else:
        raise ValueError(f"unknown mask family {family!r}; choose one of {', '.join(FAMILIES)}")
    return mask, mask_index_for(mask, mask_cfg)


def preset_mask(
    name: str, geometry: TokenGeometry, mask_cfg: MaskConfig, seed: int = 0
) -> tuple[torch.Tensor, int]:
    """A preset for the app (`PRESETS`), reproducible from `seed`."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset mask {name!r}; choose one of {', '.join(PRESETS)}")
    return sample_mask(name, geometry, mask_cfg, torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# Painted masks.


@dataclass(frozen=True)
class TemporalExtent:
    """Frames a painted region covers: [start_frame, stop_frame), stop None = to the end."""

    start_frame: int = 0
    stop_frame: int | None = None

    @classmethod
    def whole_clip(cls) -> TemporalExtent:
        return cls()

    @classmethod
    def frames(cls, start: int, stop: int) -> TemporalExtent:
        return cls(start, stop)

    @classmethod
    def from_frame(cls, start: int) -> TemporalExtent:
        return cls(start, None)

    def token_steps(self, geometry: TokenGeometry) -> torch.Tensor:
        """bool [T']: the time steps whose tubelets share a frame with the extent."""
        frames = geometry.num_frames
        stop = frames if self.stop_frame is None else self.stop_frame
        if not 0 <= self.start_frame < stop <= frames:
            raise ValueError(
                f"frame range [{self.start_frame}, {stop}) does not fit a clip of {frames} "
                f"frames: need 0 <= start < stop <= {frames}"
            )
        covered = torch.zeros(frames, dtype=torch.bool)
        covered[self.start_frame : stop] = True
        return covered.view(-1, geometry.tubelet_size).any(1)


def painted_token_mask(
    pixel_mask: torch.Tensor | np.ndarray, extent: TemporalExtent, geometry: TokenGeometry
) -> torch.Tensor:
    """A painted H x W pixel mask over a range of frames -> token mask [T', H', W'].

    A token is hidden when any of its pixels is painted, so the decoded region covers all of
    the paint. The pixel mask must be at the model's frame size: paint on frames from
    `decoder.clips.fit_clip`, or fit the mask with `decoder.clips.fit_pixel_mask`.
    """
    painted = as_tensor(pixel_mask).bool()
    size, p = geometry.img_size, geometry.patch_size
    if tuple(painted.shape) != (size, size):
        raise ValueError(
            f"painted mask is {tuple(painted.shape)} px; this model's frames are {size}x{size}: "
            "paint on frames fitted with fit_clip, or fit the mask with fit_pixel_mask"
        )
    rows = size // p
    covered = painted.view(rows, p, rows, p).any(3).any(1)
    mask = extent.token_steps(geometry)[:, None, None] & covered[None]
    return check_token_mask(mask, geometry)


def token_mask_to_pixels(mask: torch.Tensor, geometry: TokenGeometry) -> torch.Tensor:
    """Token mask [T', H', W'] -> pixel mask [T, H, W] (each token covers its tubelet)."""
    tt, p = geometry.tubelet_size, geometry.patch_size
    return mask.repeat_interleave(tt, 0).repeat_interleave(p, 1).repeat_interleave(p, 2)
