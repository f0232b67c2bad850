"""What the predictor regresses, and with which loss.

`features` is V-JEPA: the EMA target encoder sees the whole clip (no gradient), its output is
layer-normed without affine parameters and gathered at the target tokens; the loss is L1.
`pixels` is the VideoMAE-style baseline: each target tubelet's pixels, normalised per tubelet
(mean 0, variance 1), regressed with MSE by the same encoder, predictor and masks.
"""

from __future__ import annotations

from typing import Protocol

import torch

from train.models import VisionTransformer, gather_tokens
from train.models.hierarchical import level_targets


def masked_mean_per_sample(errors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """errors [B, K] -> mean over each sample's valid tokens, then over samples.

    Each sample weighs the same however many tokens its mask hides, so the loss of a batch split
    across processes or micro-batches equals the loss of the whole batch.
    """
    valid = valid.to(errors.dtype)
    per_sample = (errors * valid).sum(1) / valid.sum(1).clamp_min(1.0)
    return per_sample.mean()


def patchify(clip: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """[B, C, T, H, W] -> [B, N, tubelet*patch*patch*C] in the encoder's token order."""
    b, c, t, h, w = clip.shape
    tt, p = tubelet_size, patch_size
    x = clip.reshape(b, c, t // tt, tt, h // p, p, w // p, p)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # B, T', H', W', tt, p, p, C
    return x.reshape(b, (t // tt) * (h // p) * (w // p), tt * p * p * c)


def unpatchify(
    tokens: torch.Tensor, grid: tuple[int, int, int], tubelet_size: int, patch_size: int
) -> torch.Tensor:
    """Inverse of `patchify`: [B, N, tt*p*p*C] -> [B, C, T, H, W]."""
    b = tokens.shape[0]
    tt, p = tubelet_size, patch_size
    c = tokens.shape[-1] // (tt * p * p)
    x = tokens.reshape(b, *grid, tt, p, p, c)
    x = x.permute(0, 7, 1, 4, 2, 5, 3, 6)  # B, C, T', tt, H', p, W', p
    return x.reshape(b, c, grid[0] * tt, grid[1] * p, grid[2] * p)


class Objective(Protocol):
    def output_dim(self, encoder: VisionTransformer) -> int: ...

    def targets(self, clips: torch.Tensor, target_encoder: VisionTransformer) -> torch.Tensor:
        """Per-token regression targets [B, N, output_dim] for the whole clip."""
        ...

    def loss(
        self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor
    ) -> torch.Tensor: ...


class FeatureObjective:
    """`loss`: the paper's L1, or L2 (squared error), whose gradient grows with the error, so
    the few tokens a model gets badly wrong (moving objects) weigh more than the many it gets
    nearly right (a noisy background), where L1 gives every token the same pull.

    `levels` > 1 is V-JEPA 2.1's deep self-supervision: the targets are the target encoder's
    last `levels` hierarchical levels, each layer-normed, concatenated [B, N, levels x D], and
    the predictor predicts them all; the loss averages over every channel of every level."""

    def __init__(self, loss: str = "l1", levels: int = 1):
        if loss not in ("l1", "l2"):
            raise ValueError(f"feature loss {loss!r}: choose l1 or l2")
        self.loss_name = loss
        self.levels = levels

    def output_dim(self, encoder: VisionTransformer) -> int:
        return encoder.embed_dim

    @torch.no_grad()
    def targets(self, clips: torch.Tensor, target_encoder: VisionTransformer) -> torch.Tensor:
        return level_targets(target_encoder(clips, levels=self.levels), self.levels)

    def loss(
        self,
        pred: torch.Tensor,
        target: torch.Tensor,
        valid: torch.Tensor,
        token_weights: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`token_weights` [B, K] scale each token's error (the context loss's distance
        weights); the mean is still over the valid tokens, as V-JEPA 2.1 takes it."""
        difference = pred.float() - target
        errors = (difference.abs() if self.loss_name == "l1" else difference.square()).mean(-1)
        if token_weights is not None:
            errors = errors * token_weights
        return masked_mean_per_sample(errors, valid)


class PixelObjective:
    def __init__(self, tubelet_size: int, patch_size: int):
        self.tubelet_size = tubelet_size
        self.patch_size = patch_size

    def output_dim(self, encoder: VisionTransformer) -> int:
        return self.tubelet_size * self.patch_size**2 * encoder.patch_embed.proj.in_channels

    @torch.no_grad()
    def targets(self, clips: torch.Tensor, target_encoder: VisionTransformer) -> torch.Tensor:
        patches = patchify(
            target_encoder.as_clip(clips).float(), self.tubelet_size, self.patch_size
        )
        mean = patches.mean(-1, keepdim=True)
        var = patches.var(-1, keepdim=True)
        return (patches - mean) / (var + 1e-6).sqrt()

    def loss(self, pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        errors = (pred.float() - target).pow(2).mean(-1)
        return masked_mean_per_sample(errors, valid)


def build_objective(
    target: str, tubelet_size: int, patch_size: int, feature_loss: str = "l1", levels: int = 1
) -> Objective:
    """`levels`: the encoder levels a training run's predictor regresses (model.pred_levels);
    inference compares the last level alone, the features, and keeps the default."""
    if target == "features":
        return FeatureObjective(feature_loss, levels)
    return PixelObjective(tubelet_size, patch_size)


def target_tokens(all_targets: torch.Tensor, target_idx: torch.Tensor) -> torch.Tensor:
    return gather_tokens(all_targets, target_idx)
