"""Patch features as colours: one PCA over every token of a clip, its first three components
mapped to RGB.

Fitting a single PCA over all frames' tokens (not one per frame) keeps colours comparable across
time: a part of the scene that keeps its features keeps its colour as it moves.

    tokens = patch_features(bundle, clip)     # float32 [T', H', W', D]
    colours = pca_rgb(tokens)                 # uint8 [T', H', W', 3]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decoder.bundle import Bundle
from train.data import normalize_clip
from workbench.pca import principal_components

ENCODERS = {"target encoder (EMA)": "target_encoder", "context encoder": "encoder"}
# Component scores are clipped to these percentiles before scaling to 0..255, so a few extreme
# tokens do not wash out the colours of all the others.
CLIP_PERCENTILES = (1.0, 99.0)


@torch.no_grad()
def patch_features(
    bundle: Bundle, clip_uint8: torch.Tensor | np.ndarray, encoder: str = "target_encoder"
) -> np.ndarray:
    """Token features of a clip at the model's size, float32 [T', H', W', D]."""
    if encoder not in ENCODERS.values():
        raise ValueError(f"encoder={encoder!r}: choose one of {', '.join(ENCODERS.values())}")
    clip = bundle.fit_clip(clip_uint8)
    model = getattr(bundle, encoder)
    tokens = model(normalize_clip(clip[None].to(bundle.device)))[0]  # [N, D]
    return tokens.float().cpu().numpy().reshape(*bundle.grid, -1)


@dataclass
class PcaColours:
    rgb: np.ndarray  # uint8 [..., 3]
    explained: np.ndarray  # float [3]: share of the variance of each component


@dataclass
class PcaProjection:
    """A PCA-to-RGB map fitted on one set of features, to colour others the same way (the
    decoder-free Predict view colours predicted latents with the PCA of the target latents)."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [count, D], count <= 3, signs fixed by workbench.pca
    low: np.ndarray  # [count]: the fitted scores' CLIP_PERCENTILES
    high: np.ndarray
    explained: np.ndarray  # float [3]: share of the variance of each component

    def rgb(self, features: np.ndarray) -> np.ndarray:
        """[..., D] features -> uint8 RGB [..., 3], scaled and clipped as the fitted ones."""
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        scores = (flat - self.mean) @ self.components.T
        scaled = (scores - self.low) / np.maximum(self.high - self.low, 1e-12)
        rgb = np.zeros((flat.shape[0], 3))
        rgb[:, : len(self.components)] = np.clip(scaled, 0.0, 1.0)
        return (rgb * 255).round().astype(np.uint8).reshape(*features.shape[:-1], 3)


def fit_pca(features: np.ndarray) -> PcaProjection:
    """The first three principal components of [..., D] features, as a PcaProjection."""
    flat = features.reshape(-1, features.shape[-1])
    if flat.shape[0] < 2:
        raise ValueError("PCA needs at least two tokens")
    pcs = principal_components(flat, 3)
    low, high = np.percentile(pcs.scores, CLIP_PERCENTILES, axis=0)
    explained = np.zeros(3)
    explained[: len(pcs.explained)] = pcs.explained
    return PcaProjection(pcs.mean, pcs.components, low, high, explained)


def pca_rgb(features: np.ndarray) -> PcaColours:
    """[..., D] features -> their first three principal components as uint8 RGB [..., 3]."""
    projection = fit_pca(features)
    return PcaColours(projection.rgb(features), projection.explained)


def token_map_to_frames(token_rgb: np.ndarray, tubelet: int, patch: int) -> np.ndarray:
    """uint8 [T', H', W', 3] token colours -> [T' * tubelet, H' * patch, W' * patch, 3] frames."""
    return token_rgb.repeat(tubelet, 0).repeat(patch, 1).repeat(patch, 2)


# ---------------------------------------------------------------------------------------------
# The position component, the blend over the frames, and the foreground.
#
# A ViT's tokens carry their position (the position embedding, or RoPE's traces in the
# features): with a static scene, the largest difference between tokens can be *when* they are,
# so the first component splits the clip in time, a colour flip between two tubelets. Two ways
# to take it out before the PCA:
#   * subtract the mean feature at each (t, h, w) position over reference clips: what every clip
#     has at that position, i.e. the position itself;
#   * project out the directions along which the clip's per-time-step mean feature moves.

POSITION_KEEP = "keep"
POSITION_MEAN = "subtract per-position mean"
POSITION_PROJECT = "project out time direction"
POSITION_OPTIONS = (POSITION_KEEP, POSITION_MEAN, POSITION_PROJECT)


def time_share(features: np.ndarray) -> float:
    """Share (0..1) of the first principal component's variance that lies between time steps:
    near 1 when PC 1 mostly says where in time a token is, near 0 when it varies within frames.

    `features` is [T', H', W', D]."""
    projection = fit_pca(features)
    scores = (features.reshape(-1, features.shape[-1]) - projection.mean) @ projection.components[0]
    scores = scores.reshape(features.shape[0], -1)
    total = scores.var()
    return float(scores.mean(1).var() / total) if total > 0 else 0.0


def project_out_time(features: np.ndarray) -> np.ndarray:
    """[T', H', W', D] features without the directions their per-time-step means span (after
    centring): whatever shifts all tokens of a time step together is gone, the rest kept."""
    x = features.astype(np.float64)
    means = x.reshape(x.shape[0], -1, x.shape[-1]).mean(1)  # [T', D]
    shifts = means - means.mean(0)
    _, singular, directions = np.linalg.svd(shifts, full_matrices=False)
    basis = directions[singular > 1e-9 * max(singular.max(initial=0.0), 1e-30)]
    return (x - (x @ basis.T) @ basis).astype(np.float32)


def subtract_position_mean(features: np.ndarray, position_mean: np.ndarray) -> np.ndarray:
    """[T', H', W', D] features minus the mean feature of each position over reference clips."""
    if position_mean.shape != features.shape:
        raise ValueError(
            f"position mean of shape {position_mean.shape} does not fit features {features.shape}"
        )
    return (features - position_mean).astype(np.float32)


@torch.no_grad()
def position_mean(
    bundle: Bundle, clips_uint8: list[torch.Tensor], encoder: str = "target_encoder"
) -> np.ndarray:
    """Mean token features [T', H', W', D] of reference clips uint8 [N, 3, T, S, S]."""
    model = getattr(bundle, encoder)
    clips = torch.stack([bundle.fit_clip(clip) for clip in clips_uint8])
    tokens = model(normalize_clip(clips.to(bundle.device))).float().mean(0)  # [N', D]
    return tokens.cpu().numpy().reshape(*bundle.grid, -1)


def check_unit(value: float, what: str) -> float:
    """`value` as a float in 0..1, or a ValueError naming `what`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be a number between 0 and 1, got {value!r}") from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{what} must lie between 0 and 1, got {number:g}")
    return number


def foreground_mask(features: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """bool [...]: the tokens on the smaller side of `threshold` on the first principal
    component, scaled to 0..1 (the DINOv2 PCA demos' foreground; the smaller side, since an
    object covers less of the frame than the background does)."""
    threshold = check_unit(threshold, "the foreground threshold")
    projection = fit_pca(features)
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    scores = (flat - projection.mean) @ projection.components[0]
    scaled = (scores - scores.min()) / max(np.ptp(scores), 1e-12)
    above = scaled > threshold
    mask = above if above.sum() <= above.size / 2 else ~above
    return mask.reshape(features.shape[:-1])


def foreground_rgb(features: np.ndarray, mask: np.ndarray) -> PcaColours:
    """PCA colours fitted on the foreground tokens only (their own contrasts), background black."""
    rgb = np.zeros((*features.shape[:-1], 3), np.uint8)
    explained = np.zeros(3)
    if mask.sum() >= 2:
        projection = fit_pca(features[mask])
        rgb[mask] = projection.rgb(features[mask])
        explained = projection.explained
    return PcaColours(rgb, explained)


def blend(frames: np.ndarray, colours: np.ndarray, alpha: float) -> np.ndarray:
    """uint8 frames with the colour map laid over them: 0 = the frames, 1 = the map alone."""
    alpha = check_unit(alpha, "the map's opacity")
    mixed = alpha * colours.astype(np.float32) + (1.0 - alpha) * frames.astype(np.float32)
    return mixed.round().astype(np.uint8)
