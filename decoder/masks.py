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

from train.config import BlockSpec, MaskConfig, ModelConfig
from train.masks import block_shape, causal, place_blocks, random_tube

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


@dataclass(frozen=True)
class TokenGeometry:
    """How a model cuts clips into tokens: num_frames x img_size^2 px in tubelets."""

    num_frames: int
    img_size: int
    tubelet_size: int
    patch_size: int
    in_chans: int = 3

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> TokenGeometry:
        return cls(cfg.num_frames, cfg.img_size, cfg.tubelet_size, cfg.patch_size, cfg.in_chans)

    @property
    def grid(self) -> tuple[int, int, int]:
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        """Pixel values in one token: tubelet frames x patch x patch x channels."""
        return self.tubelet_size * self.patch_size**2 * self.in_chans


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


def _multiblock_sets(mask_cfg: MaskConfig) -> list[BlockSpec]:
    """The run's multiblock sets, or the paper's two when the run trained on another strategy."""
    if mask_cfg.strategy == "multiblock":
        return mask_cfg.multiblock
    return MaskConfig().multiblock


def _set_by_scale(mask_cfg: MaskConfig, largest: bool) -> int:
    scales = [spec.spatial_scale[1] for spec in _multiblock_sets(mask_cfg)]
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


def _uniform(gen: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=gen, dtype=torch.float64).item()


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform in [low, high] inclusive."""
    return int(torch.randint(low, high + 1, (), generator=gen).item())


def blob(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    """One random ellipse of `BLOB_AREA` of a rows x cols token frame, as bool [rows, cols]."""
    area = _uniform(gen, *BLOB_AREA) * rows * cols
    aspect = math.exp(_uniform(gen, math.log(BLOB_ASPECT[0]), math.log(BLOB_ASPECT[1])))
    radius_y = math.sqrt(area * aspect / math.pi)
    radius_x = math.sqrt(area / aspect / math.pi)
    centre_y, centre_x = _uniform(gen, 0, rows), _uniform(gen, 0, cols)
    y = (torch.arange(rows, dtype=torch.float64) + 0.5 - centre_y) / radius_y
    x = (torch.arange(cols, dtype=torch.float64) + 0.5 - centre_x) / radius_x
    inside = y[:, None] ** 2 + x[None, :] ** 2 <= 1.0
    # A thin ellipse may fall between token centres: keep at least the token under its centre.
    inside[min(rows - 1, int(centre_y)), min(cols - 1, int(centre_x))] = True
    return inside


def _multiblock(spec: BlockSpec, grid, gen: torch.Generator) -> torch.Tensor:
    return place_blocks(grid, block_shape(spec, grid, gen), spec.num_blocks, gen)


def _causal_steps(geometry: TokenGeometry, mask_cfg: MaskConfig) -> int:
    """Visible time steps of the `causal` family: the run's causal context if it fits this
    clip, else the first half."""
    steps = mask_cfg.causal_context_frames // geometry.tubelet_size
    if mask_cfg.causal_context_frames % geometry.tubelet_size or not 0 < steps < geometry.grid[0]:
        steps = geometry.grid[0] // 2
    return steps


def _pretraining_mask(
    geometry: TokenGeometry, mask_cfg: MaskConfig, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    """The run's own strategy, one of its mask sets at random, with that set's token."""
    grid = geometry.grid
    if mask_cfg.strategy == "multiblock":
        index = _randint(gen, 0, len(mask_cfg.multiblock) - 1)
        return _multiblock(mask_cfg.multiblock[index], grid, gen), index
    if mask_cfg.strategy == "random_tube":
        index = _randint(gen, 0, mask_cfg.tube_sets - 1)
        return random_tube(grid, mask_cfg.tube_ratio, gen), index
    return causal(grid, _causal_steps(geometry, mask_cfg)), 0


def sample_mask(
    family: str, geometry: TokenGeometry, mask_cfg: MaskConfig, gen: torch.Generator
) -> tuple[torch.Tensor, int]:
    """(token mask [T', H', W'], predictor mask-token index) of one sample of `family`."""
    grid = geometry.grid
    steps = grid[0]
    if family in ("future", "causal") and steps < 2:
        raise ValueError(f"{family} masks need clips of at least 2 time steps; this has {steps}")
    if family == "pretraining":
        return _pretraining_mask(geometry, mask_cfg, gen)
    if family in ("multiblock-short", "multiblock-long"):
        index = _set_by_scale(mask_cfg, largest=family == "multiblock-long")
        mask = _multiblock(_multiblock_sets(mask_cfg)[index], grid, gen)
        if mask_cfg.strategy == "multiblock":
            return mask, index
    elif family == "random-tube":
        mask = random_tube(grid, mask_cfg.tube_ratio, gen)
    elif family == "causal":
        mask = causal(grid, _causal_steps(geometry, mask_cfg))
    elif family == "future":
        mask = causal(grid, _randint(gen, 1, steps - 1))
    elif family in ("blob", "tube"):
        region = blob(grid[1], grid[2], gen)
        length = steps if family == "tube" else _randint(gen, 1, max(1, steps - 1))
        start = _randint(gen, 0, steps - length)
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
