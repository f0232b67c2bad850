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
    components: np.ndarray  # [count, D], count <= 3
    signs: np.ndarray  # [count]: each component's largest fitted score made positive
    low: np.ndarray  # [count]: the fitted scores' CLIP_PERCENTILES
    high: np.ndarray
    explained: np.ndarray  # float [3]: share of the variance of each component

    def rgb(self, features: np.ndarray) -> np.ndarray:
        """[..., D] features -> uint8 RGB [..., 3], scaled and clipped as the fitted ones."""
        flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
        scores = (flat - self.mean) @ self.components.T * self.signs
        scaled = (scores - self.low) / np.maximum(self.high - self.low, 1e-12)
        rgb = np.zeros((flat.shape[0], 3))
        rgb[:, : len(self.signs)] = np.clip(scaled, 0.0, 1.0)
        return (rgb * 255).round().astype(np.uint8).reshape(*features.shape[:-1], 3)


def fit_pca(features: np.ndarray) -> PcaProjection:
    """The first three principal components of [..., D] features, as a PcaProjection."""
    flat = features.reshape(-1, features.shape[-1]).astype(np.float64)
    if flat.shape[0] < 2:
        raise ValueError("PCA needs at least two tokens")
    mean = flat.mean(0)
    centred = flat - mean
    _, singular, components = np.linalg.svd(centred, full_matrices=False)
    count = min(3, components.shape[0])
    scores = centred @ components[:count].T
    # SVD signs are arbitrary; make each component's largest score positive so colours do not
    # flip between two runs on the same clip.
    signs = np.sign(scores[np.abs(scores).argmax(0), np.arange(count)])
    signs = np.where(signs == 0, 1.0, signs)
    low, high = np.percentile(scores * signs, CLIP_PERCENTILES, axis=0)
    variance = singular**2
    explained = np.zeros(3)
    explained[:count] = variance[:count] / max(variance.sum(), 1e-12)
    return PcaProjection(mean, components[:count], signs, low, high, explained)


def pca_rgb(features: np.ndarray) -> PcaColours:
    """[..., D] features -> their first three principal components as uint8 RGB [..., 3]."""
    projection = fit_pca(features)
    return PcaColours(projection.rgb(features), projection.explained)


def token_map_to_frames(token_rgb: np.ndarray, tubelet: int, patch: int) -> np.ndarray:
    """uint8 [T', H', W', 3] token colours -> [T' * tubelet, H' * patch, W' * patch, 3] frames."""
    return token_rgb.repeat(tubelet, 0).repeat(patch, 1).repeat(patch, 2)
