"""The probe protocol: for each label, probe kind and label fraction, one fit per seed.

A seed picks the labelled subset (stratified by the label: each class keeps the same fraction
of its clips) and the probe's initialisation and batch order; accuracy is always measured on
the whole held-out split. Every fit of a probe kind takes the same number of optimisation steps
whatever the fraction, so small fractions are not also short trainings.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field

import torch

from train.eval.config import EvalConfig
from train.eval.features import FeatureSet
from train.eval.knn import knn_predict
from train.eval.probes import (
    AttentiveProbe,
    LinearProbe,
    accuracy,
    mean_pool,
    normalize_tokens,
    predict,
    train_probe,
)

log = logging.getLogger("train.eval")


@dataclass
class ProbeResult:
    label: str
    probe: str  # attentive | linear | knn
    fraction: float
    train_clips: int  # labelled clips the probe was fitted on (per seed)
    accuracies: list[float] = field(default_factory=list)  # on the held-out split, per seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def stratified_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices keeping `fraction` of each class's items (at least one per class)."""
    if fraction >= 1.0:
        return torch.arange(labels.numel())
    generator = torch.Generator().manual_seed(seed)
    kept = []
    for cls in labels.unique():
        members = (labels == cls).nonzero().squeeze(1)
        count = max(1, round(fraction * members.numel()))
        kept.append(members[torch.randperm(members.numel(), generator=generator)[:count]])
    return torch.cat(kept).sort().values


def num_classes(label: str, train: FeatureSet, val: FeatureSet, names: dict) -> int:
    if label in names:
        return len(names[label])
    return int(max(train.labels[label].max(), val.labels[label].max())) + 1


def majority_share(labels: torch.Tensor) -> float:
    """Accuracy of always answering the most frequent class: the chance level to beat."""
    return labels.bincount().max().item() / labels.numel()


class ProbeSuite:
    """Features prepared once (normalised tokens, pooled clips) and every fit of the protocol."""

    def __init__(
        self,
        train: FeatureSet,
        val: FeatureSet,
        class_names: dict[str, list[str]],
        cfg: EvalConfig,
        attentive_heads: int,
        device: torch.device,
    ):
        self.train, self.val, self.cfg = train, val, cfg
        self.class_names = class_names
        self.heads = attentive_heads
        self.device = device
        kinds = set(cfg.probe.kinds)
        if "attentive" in kinds:
            self.train_tokens = normalize_tokens(train.tokens).to(device)
            self.val_tokens = normalize_tokens(val.tokens).to(device)
        if kinds & {"linear", "knn"}:
            self.train_pooled = mean_pool(train.tokens).to(device)
            self.val_pooled = mean_pool(val.tokens).to(device)

    def fit_and_score(self, kind: str, label: str, subset: torch.Tensor, seed: int) -> float:
        classes = num_classes(label, self.train, self.val, self.class_names)
        train_labels = self.train.labels[label].to(self.device)
        val_labels = self.val.labels[label].to(self.device)
        probe_cfg = self.cfg.probe
        generator = torch.Generator().manual_seed(seed)
        if kind == "knn":
            predicted = knn_predict(
                self.train_pooled[subset],
                train_labels[subset],
                self.val_pooled,
                classes,
                k=probe_cfg.knn_k,
                temperature=probe_cfg.knn_temperature,
            )
            return accuracy(predicted, val_labels)
        # The global RNG initialises the probe: fork it so a fit neither reads nor moves the
        # caller's random state, and the same seed gives the same probe.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if kind == "attentive":
                dim = self.train_tokens.shape[-1]
                probe = AttentiveProbe(dim, self.heads, classes).to(self.device)
                inputs, val_inputs, settings = (
                    self.train_tokens,
                    self.val_tokens,
                    probe_cfg.attentive,
                )
            else:
                probe = LinearProbe.for_features(self.train_pooled[subset], classes)
                probe = probe.to(self.device)
                inputs, val_inputs, settings = self.train_pooled, self.val_pooled, probe_cfg.linear
        train_probe(probe, inputs[subset], train_labels[subset], settings, generator)
        return accuracy(predict(probe, val_inputs), val_labels)

    def run(self) -> list[ProbeResult]:
        results = []
        cfg = self.cfg
        for label in cfg.label_names():
            for kind in cfg.probe.kinds:
                for fraction in cfg.fractions:
                    started = time.perf_counter()
                    result = ProbeResult(label, kind, fraction, 0)
                    for seed in cfg.seeds:
                        subset = stratified_subset(self.train.labels[label], fraction, seed)
                        result.train_clips = subset.numel()
                        subset = subset.to(self.device)
                        result.accuracies.append(self.fit_and_score(kind, label, subset, seed))
                    log.info(
                        "%s %s %.0f%%: %.1f ± %.1f (%.1f s)",
                        label,
                        kind,
                        100 * fraction,
                        100 * result.mean,
                        100 * result.std,
                        time.perf_counter() - started,
                    )
                    results.append(result)
        return results
