"""Frozen token features of labelled clips, cached on disk next to the run.

`FeatureSet` holds a split's token features [N, tokens, D] (float16, what the encoder returns
for every token of the clip) and its labels. A cache file `RUN_DIR/eval/features-<hash>.pt`
holds both splits; the hash covers everything the numbers depend on (checkpoint file and step,
which weights, data, clip geometry, precision), so a newer checkpoint or other data makes a new
file instead of reusing a stale one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from train.checkpoint import atomic_save
from train.data import normalize_clip
from train.step import autocast

log = logging.getLogger("train.eval")
# Bump when the extraction itself changes, so older cache files stop matching.
FEATURE_FORMAT = 1


@dataclass
class FeatureSet:
    tokens: torch.Tensor  # float16 [N, num_tokens, D]
    labels: dict[str, torch.Tensor]  # name -> int64 [N]

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def to_state(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "labels": self.labels}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> FeatureSet:
        return cls(state["tokens"], dict(state["labels"]))


def _collate(samples: list[dict]) -> dict[str, Any]:
    names = samples[0]["labels"].keys()
    return {
        "clip": torch.stack([s["clip"] for s in samples]),
        "labels": {n: torch.tensor([s["labels"][n] for s in samples]) for n in names},
    }


def _batches(dataset: Dataset, batch_size: int, num_workers: int) -> Iterator[dict[str, Any]]:
    return iter(
        DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=_collate,
            # Iterating a DataLoader draws a seed; its own generator leaves the global RNG alone.
            generator=torch.Generator(),
        )
    )


@torch.no_grad()
def extract(
    encoder: nn.Module,
    dataset: Dataset,
    *,
    device: torch.device,
    precision: str,
    batch_size: int = 64,
    num_workers: int = 0,
) -> FeatureSet:
    """Every token's features for every clip of `dataset`, in order."""
    encoder.eval()
    tokens, labels = [], {}
    for batch in _batches(dataset, batch_size, num_workers):
        clips = normalize_clip(batch["clip"].to(device))
        with autocast(device, precision):
            features = encoder(clips)
        tokens.append(features.to("cpu", torch.float16))
        for name, values in batch["labels"].items():
            labels.setdefault(name, []).append(values)
    return FeatureSet(torch.cat(tokens), {n: torch.cat(v) for n, v in labels.items()})


def cache_key(settings: dict[str, Any]) -> str:
    text = json.dumps({"format": FEATURE_FORMAT, **settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_splits(
    cache_dir: Path | None,
    settings: dict[str, Any],
    compute: Callable[[], tuple[FeatureSet, FeatureSet]],
) -> tuple[FeatureSet, FeatureSet]:
    """(train, val) features from `cache_dir` when settings match, else `compute()` and save.

    `cache_dir=None` turns the cache off. The stored settings are compared in full, not only
    through the hash, so a cache file is never used for other settings.
    """
    if cache_dir is None:
        return compute()
    path = cache_dir / f"features-{cache_key(settings)}.pt"
    expected = json.loads(json.dumps(settings))
    if path.exists():
        try:
            state = torch.load(path, weights_only=True)
            if state.get("settings") == expected and state.get("format") == FEATURE_FORMAT:
                log.info("features from cache %s", path)
                return FeatureSet.from_state(state["train"]), FeatureSet.from_state(state["val"])
            log.warning("cache file %s holds other settings; extracting again", path)
        except (RuntimeError, EOFError, KeyError, pickle.UnpicklingError, AttributeError) as err:
            # Truncated by a kill or a full disk, or not ours: a miss, rebuilt and replaced.
            log.warning("cache file %s is unreadable (%s); extracting again", path, err)
            path.unlink(missing_ok=True)
    train, val = compute()
    atomic_save(
        {
            "format": FEATURE_FORMAT,
            "settings": expected,
            "train": train.to_state(),
            "val": val.to_state(),
        },
        path,
    )
    log.info("features cached in %s", path)
    return train, val
