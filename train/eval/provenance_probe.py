"""`probe_report`: attentive-probe accuracy of a model in memory, for provenance records.

Bundles and the starter record it; it needs no run directory.

A small, fixed protocol (held-out synthetic clips shaped like the model's, all labels, a few
seeds) so that numbers recorded in different places are comparable. No files are read or
written: the caller already holds the model.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch

from train.eval.config import SYNTHETIC_LABELS, EvalConfig, EvalDataConfig, ProbeConfig
from train.eval.evaluation import probe_features, splits_features
from train.eval.source import choose_encoder
from train.pretrained import Pretrained


def probe_report(
    pretrained: Pretrained,
    *,
    labels: Sequence[str] = SYNTHETIC_LABELS,
    num_clips: int = 1536,
    seeds: Sequence[int] = (0, 1, 2),
    device: str | torch.device = "cpu",
    encoder: str = "target_encoder",
    probe_steps: int | None = None,
) -> dict[str, Any]:
    """Attentive-probe accuracy per synthetic label, mean and std over `seeds`.

    `num_clips` labelled clips from held-out physics worlds: two thirds train the probe, one
    third measures it. `probe_steps` shortens the probe's training (default: the CLI's) for
    tests; recorded numbers should keep the default. Returns plain JSON-able data:
    {"probe", "encoder", "step", "train_clips", "val_clips", "seeds",
     "accuracy": {label: {"mean", "std", "per_seed"}}, "chance": {label: share}, "seconds"}.
    """
    if num_clips < 3:
        raise ValueError(f"num_clips={num_clips}: need at least 3 (train and held-out clips)")
    started = time.perf_counter()
    train_clips = num_clips * 2 // 3
    cfg = EvalConfig(
        encoder=encoder,
        labels=list(labels),
        data=EvalDataConfig(train_clips=train_clips, val_clips=num_clips - train_clips),
        probe=ProbeConfig(kinds=["attentive"]),
        seeds=list(seeds),
        fractions=[1.0],
        device=torch.device(device).type,
        cache=False,
    )
    if probe_steps is not None:
        cfg.probe.attentive = replace(cfg.probe.attentive, steps=probe_steps)
    model = choose_encoder(pretrained, encoder)
    train, val, data = splits_features(pretrained.config, model, cfg, {}, cache_dir=None)
    results, settings, chance = probe_features(train, val, data, cfg, model)
    return {
        "probe": "attentive",
        "probe_settings": settings["probe"],
        "encoder": encoder,
        "step": pretrained.step,
        "train_clips": len(train),
        "val_clips": len(val),
        "seeds": list(seeds),
        "accuracy": {
            r.label: {"mean": r.mean, "std": r.std, "per_seed": list(r.accuracies)} for r in results
        },
        "chance": chance,
        "seconds": time.perf_counter() - started,
    }
