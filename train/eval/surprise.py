"""Surprise: how far what a model predicts for the coming frames is from what they turn out to be.

As in Garrido et al. 2025 ("Intuitive physics understanding emerges from self-supervised
pretraining on natural videos"): a window of the model's length slides over the clip; in each
window the encoder sees the first `context_frames` frames, the predictor fills in the latents of
the later ones, and the target encoder, seeing the whole window, says what those latents are.
Surprise is the L1 distance between the two, per token, averaged over the feature dimension.
For a `target: pixels` model the "latents" are the normalised pixels of each tubelet, which is
what that model learned to predict.

What is predicted and compared is a `Forecaster`: `LatentForecaster` is the model's own; any
other rule (tests use "the last context frame stays where it was") plugs in the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from train.data.base import normalize_clip
from train.masks import MaskSet, causal, future_mask_index
from train.objectives import build_objective, patchify, target_tokens
from train.pretrained import Pretrained
from train.step import autocast


class Forecaster(Protocol):
    """Predicts the tokens after a clip window's first `context_steps` time steps."""

    window_frames: int  # frames per window (the model's clip length)
    tubelet_size: int
    patch_size: int

    def __call__(
        self, window: torch.Tensor, context_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, 3, F, H, W] -> (predicted, actual), both [B, S, H', W', D] over the S time
        steps after the context."""
        ...


class LatentForecaster:
    """The V-JEPA model's prediction of the future: encoder on the context, predictor with the
    mask token that fits future prediction (`train.masks.future_mask_index`), target encoder on
    the whole window."""

    def __init__(self, pretrained: Pretrained, precision: str = "fp32"):
        cfg = pretrained.config
        self.models = pretrained
        self.window_frames = cfg.model.num_frames
        self.tubelet_size = cfg.model.tubelet_size
        self.patch_size = cfg.model.patch_size
        self.objective = build_objective(cfg.target, self.tubelet_size, self.patch_size)
        self.mask_index = future_mask_index(cfg.mask)
        self.precision = precision

    @torch.no_grad()
    def __call__(
        self, window: torch.Tensor, context_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        models = self.models
        device = next(models.encoder.parameters()).device
        clips = normalize_clip(window.to(device))
        grid = models.encoder.patch_embed.grid(clips.shape)
        masks = MaskSet.from_target_masks([causal(grid, context_steps)] * clips.shape[0])
        masks = MaskSet(*(t.to(device) for t in vars(masks).values()))
        with autocast(device, self.precision):
            actual = target_tokens(
                self.objective.targets(clips, models.target_encoder), masks.target_idx
            )
            predicted = models.predict(
                clips, masks.context_idx, masks.target_idx, mask_index=self.mask_index
            )
        shape = (clips.shape[0], grid[0] - context_steps, grid[1], grid[2], -1)
        return predicted.float().reshape(shape), actual.float().reshape(shape)


class CarryLastFrame:
    """A rule that learned nothing: every coming tubelet repeats the last one of the context,
    and the "latents" are the tubelets' normalised pixels. It expects objects to stay where
    they were, so a jump surprises it and a vanished or stopped object does not: the
    yardstick's reference for "no notion of motion"."""

    def __init__(self, window_frames: int, tubelet_size: int, patch_size: int):
        self.window_frames = window_frames
        self.tubelet_size = tubelet_size
        self.patch_size = patch_size

    def __call__(
        self, window: torch.Tensor, context_steps: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, _, t, h, w = window.shape
        grid = (t // self.tubelet_size, h // self.patch_size, w // self.patch_size)
        tokens = patchify(normalize_clip(window), self.tubelet_size, self.patch_size)
        tokens = tokens.reshape(b, *grid, -1)
        actual = tokens[:, context_steps:]
        return tokens[:, context_steps - 1 : context_steps].expand_as(actual), actual


@dataclass
class Surprise:
    """Surprise of a batch of clips of L frames, from windows starting at `window_starts`."""

    window_starts: list[int]
    per_window: torch.Tensor  # [B, windows]: mean over each window's predicted tokens
    per_token: torch.Tensor  # [B, windows, S, H', W']: the error of every predicted token
    per_frame: torch.Tensor  # [B, L]: mean over the windows that predict the frame; NaN if none

    def clip_score(self, reduce: str = "mean") -> torch.Tensor:
        """One number per clip: the mean or the max over its windows."""
        if reduce == "mean":
            return self.per_window.mean(1)
        if reduce == "max":
            return self.per_window.amax(1)
        raise ValueError(f"reduce={reduce!r}: choose mean or max")


def window_starts(num_frames: int, window_frames: int, stride: int) -> list[int]:
    """Starts of the windows that slide over a clip, the last one flush with its end."""
    if num_frames < window_frames:
        raise ValueError(
            f"a clip of {num_frames} frames is shorter than the model's window of "
            f"{window_frames} frames"
        )
    starts = list(range(0, num_frames - window_frames + 1, stride))
    if starts[-1] != num_frames - window_frames:
        starts.append(num_frames - window_frames)
    return starts


@torch.no_grad()
def measure_surprise(
    forecaster: Forecaster,
    clips: torch.Tensor,
    context_frames: int,
    stride: int | None = None,
    batch_size: int = 64,
) -> Surprise:
    """Surprise of uint8 clips [B, 3, L, H, W] (L >= the model's window), sliding by `stride`
    frames (default: one tubelet)."""
    tubelet = forecaster.tubelet_size
    if context_frames % tubelet or not 0 < context_frames < forecaster.window_frames:
        raise ValueError(
            f"context_frames={context_frames} must be a multiple of the tubelet ({tubelet}) "
            f"between 1 and the window's {forecaster.window_frames} frames"
        )
    frames = clips.shape[2]
    starts = window_starts(frames, forecaster.window_frames, stride or tubelet)
    context_steps = context_frames // tubelet
    windows = torch.stack([clips[:, :, s : s + forecaster.window_frames] for s in starts], 1)
    flat = windows.flatten(0, 1)  # [B * windows, 3, F, H, W]
    errors = []
    for first in range(0, flat.shape[0], batch_size):
        predicted, actual = forecaster(flat[first : first + batch_size], context_steps)
        errors.append((predicted - actual).abs().mean(-1))
    per_token = torch.cat(errors).unflatten(0, (clips.shape[0], len(starts)))
    per_window = per_token.flatten(2).mean(2)

    # Each predicted time step covers `tubelet` frames; a frame's surprise is the mean over the
    # windows that predict it.
    per_step = per_token.flatten(3).mean(3)  # [B, windows, S]
    total = torch.zeros(clips.shape[0], frames)
    count = torch.zeros(frames)
    for w, start in enumerate(starts):
        first = start + context_frames
        for s in range(per_step.shape[2]):
            span = slice(first + s * tubelet, first + (s + 1) * tubelet)
            total[:, span] += per_step[:, w, s, None].cpu()
            count[span] += 1
    per_frame = total / count
    return Surprise(starts, per_window.cpu(), per_token.cpu(), per_frame)
