"""Frozen token features of labelled clips, cached on disk next to the run.

`FeatureSet` holds a split's token features [N, tokens, D] (float16, what the encoder returns
for every token of the clip) and its labels. A cache file `RUN_DIR/eval/features-<hash>.pt`
holds both splits; the hash covers everything the numbers depend on (checkpoint file and step,
which weights, data, clip geometry, precision), so a newer checkpoint or other data makes a new
file instead of reusing a stale one. The workbench's clip table shares `encode_clips` and
`cached_file` (its mean-pooled vectors live in its own cache folder).
"""

from __future__ import annotations

import hashlib
import json
import logging
import pickle
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from train.checkpoint import atomic_save
from train.data import normalize_clip
from train.step import autocast

log = logging.getLogger("train.eval")
# Bump when the extraction itself changes, so older cache files stop matching.
FEATURE_FORMAT = 1
# What reading a truncated (a kill, a full disk), damaged or foreign cache file raises.
UNREADABLE = (OSError, ValueError, KeyError, EOFError, RuntimeError, AttributeError,
              pickle.UnpicklingError, zipfile.BadZipFile)  # fmt: skip
T = TypeVar("T")


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
        tokens.append(encode_clips(encoder, batch["clip"], device, precision).to("cpu", torch.half))
        for name, values in batch["labels"].items():
            labels.setdefault(name, []).append(values)
    return FeatureSet(torch.cat(tokens), {n: torch.cat(v) for n, v in labels.items()})


def encode_clips(
    encoder: nn.Module, clips: torch.Tensor, device: torch.device, precision: str
) -> torch.Tensor:
    """Token features of uint8 clips [B, 3, T, H, W]; bf16 about halves the time on AMX CPUs."""
    with autocast(device, precision):
        return encoder(normalize_clip(clips.to(device)))


def settings_key(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def cached_file(
    path: Path,
    compute: Callable[[], T],
    read: Callable[[Path], T],
    write: Callable[[T, Path], None],
    what: str,
) -> T:
    """`read(path)`, or `compute()` saved by `write` (atomically). A file `read` cannot take
    (truncated, damaged, an older layout) is deleted with a warning naming `what`, and rebuilt."""
    if path.is_file():
        try:
            return read(path)
        except UNREADABLE as err:
            log.warning(
                "%s %s cannot be read (%s): deleted, extracting again", what, path.name, err
            )
            path.unlink(missing_ok=True)
    value = compute()
    write(value, path)
    return value


def cached_splits(
    cache_dir: Path | None,
    settings: dict[str, Any],
    compute: Callable[[], tuple[FeatureSet, FeatureSet]],
) -> tuple[FeatureSet, FeatureSet]:
    """(train, val) features from `cache_dir` (None: no cache), else `compute()` and save. The
    stored settings are compared in full, not only by hash: a file never serves other settings."""
    if cache_dir is None:
        return compute()
    expected = json.loads(json.dumps(settings))

    def read(path: Path) -> tuple[FeatureSet, FeatureSet]:
        state = torch.load(path, weights_only=True)
        if state.get("settings") != expected or state.get("format") != FEATURE_FORMAT:
            raise ValueError("it holds other settings")
        log.info("features from cache %s", path)
        return FeatureSet.from_state(state["train"]), FeatureSet.from_state(state["val"])

    def write(splits: tuple[FeatureSet, FeatureSet], path: Path) -> None:
        state = {"format": FEATURE_FORMAT, "settings": expected}
        atomic_save({**state, "train": splits[0].to_state(), "val": splits[1].to_state()}, path)
        log.info("features cached in %s", path)

    key = settings_key({"format": FEATURE_FORMAT, **settings})
    return cached_file(cache_dir / f"features-{key}.pt", compute, read, write, "feature cache")
