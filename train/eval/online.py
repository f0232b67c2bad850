"""A live health monitor for training: how well a cheap probe reads labels from the features now.

Every `monitor.online_probe_every` steps the trainer calls `OnlineProbe.measure(target_encoder)`.
It encodes a fixed batch of held-out labelled clips (rendered or decoded once, features
recomputed each call because the encoder changes), pools each clip's tokens onto a coarse
(time x 2 x 2) grid, so that where and when things happen survives the pooling, and fits a
closed-form ridge classifier per label. The reported accuracy is leave-one-out over the clips,
exact and cheap for ridge, so every clip is scored by a classifier that never saw it.

Labels: the synthetic world's shape, direction and speed (from a world of its own, disjoint from
the pretraining clips, one object per clip); a labelled video list's `label` (clips of the
training list: a monitor, not a benchmark); nothing for unlabelled sources, which is said once
in the log.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from train.config import Config
from train.data import build_dataset
from train.eval.config import SYNTHETIC_LABELS
from train.eval.features import encode_clips
from train.eval.probes import grid_pool

log = logging.getLogger("train.eval")

ONLINE_PROBE_WORLD = 3_000_017
# Ridge strengths tried, relative to the mean eigenvalue of the clips' kernel matrix.
RIDGE_SCALES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
ENCODE_BATCH = 64


def ridge_loo_accuracy(features: torch.Tensor, labels: torch.Tensor, num_classes: int) -> float:
    """Leave-one-out accuracy of a kernel ridge classifier on one-hot targets, at the ridge
    strength with the lowest leave-one-out squared error among RIDGE_SCALES.

    The linear kernel gets a constant added (an intercept, as lightly penalised as an average
    clip). No statistic is pooled across clips (no centring or scaling by the set's mean):
    with more features than clips, a held-out clip standardised with the others' mean is
    minus their sum, and its label leaks back. With G = (K + lam I)^-1, the residual of clip
    i under the fit to all other clips is (G y)_i / G_ii, exact and stable.
    """
    # The Gram matrix in float64: in float32 its rounding moves leave-one-out scores by up to
    # 5e-4 and flips near-tied clips (measured against scikit-learn's RidgeCV, which then
    # agrees to 4e-11: docs/performance.md, "Probes: hand-written against scikit-learn").
    x = features.double()
    kernel = (x @ x.T) / x.shape[1]
    kernel = kernel + kernel.diagonal().mean()
    eigenvalues, eigenvectors = torch.linalg.eigh(kernel)
    eigenvalues = eigenvalues.clamp_min(0.0)
    targets = F.one_hot(labels, num_classes).double()
    projected = eigenvectors.T @ targets
    best_error, best_accuracy = math.inf, 0.0
    for scale in RIDGE_SCALES:
        inverse = 1.0 / (eigenvalues + scale * eigenvalues.mean())
        dual = eigenvectors @ (inverse[:, None] * projected)  # G y
        diagonal = (eigenvectors.square() * inverse).sum(1)  # G_ii
        residuals = dual / diagonal[:, None]
        error = residuals.square().sum().item()
        if error < best_error:
            best_error = error
            held_out = targets - residuals
            best_accuracy = (held_out.argmax(1) == labels).double().mean().item()
    return best_accuracy


class OnlineProbe:
    def __init__(self, cfg: Config, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.clips: torch.Tensor | None = None
        self.labels: dict[str, torch.Tensor] = {}
        self.num_classes: dict[str, int] = {}
        started = time.perf_counter()
        reason = self._load(cfg.monitor.online_probe_clips)
        if reason:
            log.warning("online probe off: %s", reason)
            return
        log.info(
            "online probe: %d held-out clips, labels %s (%.1f s to prepare)",
            self.clips.shape[0],
            ", ".join(self.labels),
            time.perf_counter() - started,
        )

    def _load(self, count: int) -> str | None:
        """Fills clips and labels; returns why the probe cannot run, or None."""
        source = self.cfg.data.source
        if count < 2:
            return f"monitor.online_probe_clips={count}; it needs at least 2 clips"
        if source == "images":
            return "data.source=images carries no labels"
        if source == "synthetic":
            # One object per clip, as `python -m train.eval`: the labels are then unambiguous.
            world = replace(self.cfg.data.synthetic, max_objects=1)
            cfg = replace(self.cfg, data=replace(self.cfg.data, synthetic=world))
            dataset = build_dataset(cfg, seed_offset=ONLINE_PROBE_WORLD)
            names = SYNTHETIC_LABELS
            self.num_classes = {n: len(dataset.label_names[n]) for n in names}
            indices = range(min(count, len(dataset)))
        else:
            dataset = build_dataset(self.cfg)
            if dataset.labels is None:
                return (
                    f"{self.cfg.data.path} has no labels (give a list file of `path label` "
                    "lines to monitor probe accuracy)"
                )
            names = ("label",)
            self.num_classes = {"label": len(dataset.class_names)}
            # Evenly spaced evaluation views, so every part of the list is represented.
            count = min(count, len(dataset))
            indices = [round(i * (len(dataset) - 1) / max(1, count - 1)) for i in range(count)]
        samples = [dataset[i] for i in indices]
        self.clips = torch.stack([s["clip"] for s in samples]).to(self.device)
        self.labels = {n: torch.tensor([s["labels"][n] for s in samples]) for n in names}
        return None

    @torch.no_grad()
    def measure(self, encoder: nn.Module) -> dict[str, float]:
        """{"probe_<label>": leave-one-out accuracy} for the encoder as it is now."""
        if self.clips is None:
            return {}
        pooled = []
        for start in range(0, self.clips.shape[0], ENCODE_BATCH):
            clips = self.clips[start : start + ENCODE_BATCH]
            tokens = encode_clips(encoder, clips, self.device, self.cfg.precision)
            pooled.append(grid_pool(tokens, encoder.grid_size).cpu())
        features = torch.cat(pooled)
        return {
            f"probe_{name}": ridge_loo_accuracy(features, labels, self.num_classes[name])
            for name, labels in self.labels.items()
        }
