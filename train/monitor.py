"""Run metrics (one JSON object per logged step) and the monitors that tell a healthy run from a
collapsed one: the spread of predictions and targets per feature dimension, and RankMe.

A collapsed JEPA maps every clip to (nearly) the same features: the loss gets small while the
per-dimension std of the targets goes to zero and the effective rank of the features falls.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import torch


def per_dim_std(tokens: torch.Tensor, valid: torch.Tensor | None = None) -> float:
    """Mean over feature dimensions of the std across tokens; tokens [B, K, D]."""
    flat = tokens[valid] if valid is not None else tokens.reshape(-1, tokens.shape[-1])
    if flat.shape[0] < 2:
        return float("nan")
    return flat.float().std(0).mean().item()


def rankme(features: torch.Tensor, eps: float = 1e-7) -> float:
    """Effective rank (Garrido et al. 2023): exp of the entropy of the normalised singular values
    of a [num_samples, dim] feature matrix. Between 1 (collapsed) and min(num_samples, dim)."""
    singular = torch.linalg.svdvals(features.float())
    p = singular / singular.sum() + eps
    return math.exp(-(p * p.log()).sum().item())


class MetricsLog:
    """Appends one JSON line per logged step to metrics.jsonl.

    On resume, lines from steps after the checkpoint (written before the run was killed) are
    dropped first, so the file reads as if the run had never stopped.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def truncate_after(self, step: int) -> None:
        if not self.path.exists():
            return
        kept = [line for line in self.path.read_text().splitlines() if _step_of(line) <= step]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(line + "\n" for line in kept))
        os.replace(tmp, self.path)

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record, allow_nan=True) + "\n")


def _step_of(line: str) -> float:
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        # A line cut short by a kill mid-write is dropped.
        return math.inf


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """All complete records of a metrics.jsonl (a half-written last line is ignored)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def training_seconds(records: list[dict[str, Any]]) -> float:
    """Wall-clock seconds a run has trained, over all the processes that wrote its metrics:
    `elapsed_s` restarts from zero when a run resumes, so each stretch adds its last value."""
    total, last = 0.0, 0.0
    for record in records:
        elapsed = record.get("elapsed_s")
        if elapsed is None:
            continue
        if elapsed < last:
            total += last
        last = elapsed
    return total + last
