"""The probe protocol: one probe per label for every probe kind, label fraction and seed.

`ProbeSuite` runs the fits; `ProbeResult` holds one (label, kind, fraction)'s accuracies.

A seed picks the labelled subset (a uniform random `fraction` of the probe-training clips,
shared by all labels) and the probes' initialisation and batch order; accuracy is always
measured on the whole held-out split. The probes of all labels train together on the same
batches (see train/eval/probes.py), and every fit takes the same number of optimisation steps
whatever the fraction, so small fractions are not also short trainings.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field

import torch

from train.eval.attentive import AttentiveProbe, attentive_logits
from train.eval.config import EvalConfig
from train.eval.features import FeatureSet
from train.eval.knn import knn_predict
from train.eval.probes import (
    LinearProbe,
    accuracy,
    grid_pool,
    mean_pool,
    normalize_tokens,
    predict,
    train_probes,
)

log = logging.getLogger("train.eval")


@dataclass
class ProbeResult:
    label: str
    probe: str  # attentive | linear | grid_linear | knn
    fraction: float
    train_clips: int  # labelled clips the probe was fitted on (per seed)
    accuracies: list[float] = field(default_factory=list)  # on the held-out split, per seed

    @property
    def mean(self) -> float:
        return statistics.fmean(self.accuracies)

    @property
    def std(self) -> float:
        return statistics.pstdev(self.accuracies) if len(self.accuracies) > 1 else 0.0


def labelled_subset(count: int, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of a uniform random `fraction` of `count` clips (at least one)."""
    if fraction >= 1.0:
        return torch.arange(count)
    kept = max(1, round(fraction * count))
    return torch.randperm(count, generator=torch.Generator().manual_seed(seed))[:kept].sort().values


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
        grid: tuple[int, int, int],
        device: torch.device,
    ):
        self.train, self.val, self.cfg = train, val, cfg
        self.class_names = class_names
        self.heads = attentive_heads
        self.device = device
        kinds = set(cfg.probe.kinds)
        # Inputs per probe kind, (train, val), each computed once from the frozen tokens.
        self.inputs: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        if "attentive" in kinds:
            self.inputs["attentive"] = (
                normalize_tokens(train.tokens),
                normalize_tokens(val.tokens),
            )
        if kinds & {"linear", "knn"}:
            self.inputs["linear"] = self.inputs["knn"] = (
                mean_pool(train.tokens),
                mean_pool(val.tokens),
            )
        if "grid_linear" in kinds:
            self.inputs["grid_linear"] = (
                grid_pool(train.tokens, grid),
                grid_pool(val.tokens, grid),
            )
        self.inputs = {k: (a.to(device), b.to(device)) for k, (a, b) in self.inputs.items()}

    def fit_and_score(self, kind: str, subset: torch.Tensor, seed: int) -> dict[str, float]:
        """Held-out accuracy per label of the `kind` probes fitted on `subset` of the clips."""
        labels = self.cfg.label_names()
        targets = [self.train.labels[name].to(self.device)[subset] for name in labels]
        truths = [self.val.labels[name].to(self.device) for name in labels]
        classes = [len(self.class_names[name]) for name in labels]
        inputs, val_inputs = self.inputs[kind]
        if kind == "knn":
            k, temperature = self.cfg.probe.knn_k, self.cfg.probe.knn_temperature
            predicted = [
                knn_predict(inputs[subset], y, val_inputs, c, k, temperature)
                for y, c in zip(targets, classes)
            ]
        else:
            probes, logits_of, settings = self.new_probes(kind, classes, inputs[subset], seed)
            generator = torch.Generator().manual_seed(seed)
            train_probes(probes, logits_of, inputs[subset], targets, settings, generator)
            predicted = predict(logits_of, val_inputs)
        return {
            name: accuracy(guess, truth) for name, guess, truth in zip(labels, predicted, truths)
        }

    def new_probes(self, kind: str, classes: list[int], inputs: torch.Tensor, seed: int):
        """(probes, logits_of, optimisation settings) for `kind`, one probe per label.

        The global RNG initialises the probes: it is forked, so a fit neither reads nor moves
        the caller's random state and the same seed gives the same probes.
        """
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            if kind == "attentive":
                dim = inputs.shape[-1]
                probes = [AttentiveProbe(dim, self.heads, c).to(self.device) for c in classes]
                return probes, lambda x: attentive_logits(probes, x), self.cfg.probe.attentive
            # linear and grid_linear: standardised with the statistics of the fitted clips.
            probes = [LinearProbe.for_features(inputs, c).to(self.device) for c in classes]
            return probes, lambda x: [probe(x) for probe in probes], self.cfg.probe.linear

    def run(self) -> list[ProbeResult]:
        """Every (label, kind, fraction) result, with one accuracy per seed."""
        results: dict[tuple[str, str, float], ProbeResult] = {}
        cfg = self.cfg
        for kind in cfg.probe.kinds:
            for fraction in cfg.fractions:
                started = time.perf_counter()
                for seed in cfg.seeds:
                    subset = labelled_subset(len(self.train), fraction, seed).to(self.device)
                    for label, score in self.fit_and_score(kind, subset, seed).items():
                        key = (label, kind, fraction)
                        result = results.setdefault(key, ProbeResult(*key, subset.numel()))
                        result.accuracies.append(score)
                log.info(
                    "%s %.0f%%: %s (%.1f s)",
                    kind,
                    100 * fraction,
                    ", ".join(
                        f"{label} {100 * results[(label, kind, fraction)].mean:.1f}"
                        for label in cfg.label_names()
                    ),
                    time.perf_counter() - started,
                )
        labels, kinds = cfg.label_names(), list(cfg.probe.kinds)
        return sorted(
            results.values(),
            key=lambda r: (labels.index(r.label), kinds.index(r.probe), r.fraction),
        )
