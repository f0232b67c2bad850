"""The Model tab's numbers in context: every metric beside its chance level and its step-0
(untrained) value, from the bundle's provenance, never invented.

* Probe accuracy per label: chance is the majority class's share of the labelled clips (what
  always answering the most frequent class scores; the probe report records it for its held-out
  clips), and for the physics world's uniform labels 1 / number of classes. The step-0 accuracy
  is shown when the provenance holds one (`probe.step0.accuracy`), else "not recorded".
* The decoder's quality: the no-learning baselines (mean-colour fill, nearest visible copy)
  that `decoder.starter` scores on the same clips (`quality.scores`).
* The intuitive-physics yardstick: the reading recorded when the bundle was built
  (`provenance["physics"]`, a `train.eval.physics.PhysicsReport`), and on demand a quick
  reading, both beside step 0, the no-learning rule and chance 50%.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from decoder.bundle import Bundle
from train.data.synthetic import PhysicsWorld
from train.eval.physics import PhysicsConfig, PhysicsReport, evaluate_physics

NOT_RECORDED = "not recorded"
# Matched sets per law of the app's quick yardstick: 32 sets, each four clips scored by the
# model, its step-0 weights and the no-learning rule, took 47.6 s on the starter on 2 CPU
# cores (load about 2). The CLI's default (50 per law) gives the recorded numbers.
QUICK_PAIRS_PER_LAW = 8
QUICK_DURATION = "about a minute on 2 CPU cores"


def chance_levels(labels: Mapping[str, Sequence[int] | np.ndarray]) -> dict[str, float]:
    """Per label, the share of the most frequent class among the labelled clips: the accuracy
    of always answering it, the chance level a probe must beat."""
    levels = {}
    for name, values in labels.items():
        values = np.asarray(values, dtype=np.int64)
        if values.size == 0:
            raise ValueError(f"label {name!r} has no labelled clips: no chance level to compute")
        levels[name] = float(np.bincount(values).max() / values.size)
    return levels


def uniform_chance(label_names: Mapping[str, Sequence[str]] | None = None) -> dict[str, float]:
    """Per label, 1 / number of classes: the chance level of uniformly drawn labels (the
    physics world's, by default)."""
    names = label_names if label_names is not None else PhysicsWorld(num_clips=1).label_names
    return {label: 1.0 / len(classes) for label, classes in names.items()}


def _percent(value: Any) -> str:
    return f"{value:.0%}" if isinstance(value, (int, float)) else NOT_RECORDED


def probe_table(provenance: dict[str, Any]) -> str:
    """A markdown table of the probe accuracy per label with its step-0 value and chance, or
    a sentence saying no probe was recorded."""
    probe = provenance.get("probe") or {}
    accuracy = probe.get("accuracy") or {}
    if not accuracy:
        return (
            "No probe accuracy is recorded for this model (its provenance has none); "
            "`python -m train.eval` measures one."
        )
    step0 = (probe.get("step0") or {}).get("accuracy") or {}
    held_out = probe.get("chance") or {}
    uniform = uniform_chance()
    clips = probe.get("val_clips")
    lines = [
        f"Attentive-probe accuracy on {clips or 'held-out'} labelled clips, beside the same "
        "probe on the untrained model (step 0) and chance: the majority class's share of those "
        "clips, and 1 / number of classes.",
        "",
        "| label | trained | step 0 | chance (majority class) | chance (uniform) |",
        "|---|---|---|---|---|",
    ]
    for label, scores in accuracy.items():
        mean = scores.get("mean") if isinstance(scores, dict) else scores
        spread = scores.get("std") if isinstance(scores, dict) else None
        trained = _percent(mean) + (f" ± {spread:.1%}" if isinstance(spread, float) else "")
        before = step0.get(label)
        before = before.get("mean") if isinstance(before, dict) else before
        lines.append(
            f"| {label} | {trained} | {_percent(before)} | {_percent(held_out.get(label))} | "
            f"{_percent(uniform.get(label))} |"
        )
    if not step0:
        lines += [
            "",
            "The step-0 probe accuracy was not recorded when this model was built; "
            "`python -m train.eval` on the run measures it.",
        ]
    return "\n".join(lines)


def baseline_rows(provenance: dict[str, Any], family: str) -> list[list[Any]]:
    """Rows of the decoder quality table for the no-learning baselines of one mask family
    (and the decoder on the same clips), from `quality.scores`; none when not recorded."""
    scores = ((provenance.get("quality") or {}).get("scores") or {}).get(family) or {}
    clips = (provenance.get("quality") or {}).get("clips_per_family")
    on = f"{clips} clips" if clips else "clips"
    rows = []
    for method, values in scores.items():
        if not isinstance(values, dict):
            continue
        name = (
            f"decoder (the baselines' {on})"
            if method == "decoder"
            else f"{method} (no learning, {on})"
        )
        rows.append(
            [
                f"{family} · {name}",
                _rounded(values.get("psnr")),
                _rounded(values.get("ssim")),
                _rounded(values.get("loss")),
            ]
        )
    return rows


def _rounded(value: Any) -> Any:
    return round(value, 3) if isinstance(value, (int, float)) else ""


def recorded_yardstick(provenance: dict[str, Any]) -> str | None:
    """The intuitive-physics table recorded in the provenance when the bundle was built, as
    markdown, or None when it records none."""
    recorded = provenance.get("physics")
    if not isinstance(recorded, dict):
        return None
    try:
        report = PhysicsReport(**recorded)
        table = report.table()
    except (TypeError, KeyError) as err:  # written by another version of the yardstick
        return (
            "The provenance records an intuitive-physics reading this version cannot read "
            f"({type(err).__name__}: {err}); the button measures a quick one, and `python -m "
            "train.eval.physics MODEL` a full one."
        )
    per_law = report.settings.get("pairs_per_law", "?")
    sets = "set" if per_law == 1 else "sets"
    return (
        f"{table}\n\nRecorded when the bundle was built: {per_law} {sets} per law, "
        "beside step 0 and the no-learning rule; the button re-measures a quick reading "
        f"({QUICK_PAIRS_PER_LAW} per law)."
    )


def quick_yardstick(
    bundle: Bundle, name: str = "this model", pairs_per_law: int = QUICK_PAIRS_PER_LAW
) -> str:
    """The intuitive-physics yardstick on `bundle`, beside its step-0 weights, as markdown."""
    cfg = PhysicsConfig(pairs_per_law=int(pairs_per_law))
    report = evaluate_physics(bundle.pretrained, cfg, name=name, device=bundle.device)
    return (
        f"{report.table()}\n\nA quick reading: {pairs_per_law} pairs per law, "
        f"{report.seconds:.1f} s; the intervals are wide. `python -m train.eval.physics MODEL` "
        "measures 50 per law."
    )
