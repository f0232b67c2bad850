"""The paper's pretraining ablations, for the ablations notebook: read the results that
`benchmarks/replicate_paper.py` wrote, or re-run a toy-size version of them here.

Both give the same shape: {variant: EvalReport as JSON}, with the untrained encoder under
"random_init". Each variant is the teaching preset (`tiny_cpu`) with one setting changed:

* what to predict (paper Table 1): features (V-JEPA) or normalised pixels;
* which masks (paper Table 4): multi-block, random tubes (90%) or causal (the first half of
  the clip predicts the second half).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from train.config import load_config
from train.eval.ablations import LABELS, PRESET, TITLES, UNTRAINED, VARIANTS
from train.eval.config import load_eval_config
from train.eval.evaluation import evaluate
from train.loop import train
from workbench.lab.notebook import text_table
from workbench.paths import REPO_ROOT

REPLICATION_PATH = REPO_ROOT / "runs" / "paper" / "replication.json"
TARGET_ROWS = ("vjepa", "pixels", UNTRAINED)
MASK_ROWS = ("vjepa", "random_tube", "causal")


def read_replication(path: str | Path = REPLICATION_PATH) -> dict[str, Any] | None:
    """{"meta": ..., "runs": {variant: report}} from a replication file, or None if absent."""
    path = Path(path)
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "runs" not in data:
        raise ValueError(f"{path} is not a replication result (no 'runs' key)")
    return data


def run_toy_ablation(
    out_dir: Path,
    variants: list[str],
    steps: int,
    batch_size: int,
    train_clips: int,
    val_clips: int,
    probes: list[str],
    seeds: list[int],
    probe_steps: int | None = None,
) -> dict[str, Any]:
    """Train each variant for `steps` steps in `out_dir/<variant>`, then probe its frozen
    target encoder (and the untrained encoder) on held-out labelled clips."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; choose from {', '.join(VARIANTS)}")
    eval_overrides = [
        f"labels=[{','.join(LABELS)}]",
        f"probe.kinds=[{','.join(probes)}]",
        f"seeds=[{','.join(map(str, seeds))}]",
        "fractions=[1.0]",
        f"data.train_clips={train_clips}",
        f"data.val_clips={val_clips}",
    ]
    if probe_steps is not None:
        eval_overrides += [
            f"probe.linear.steps={probe_steps}",
            f"probe.attentive.steps={probe_steps}",
        ]
    runs: dict[str, Any] = {}
    for name in variants:
        run_dir = out_dir / name
        overrides = [
            *VARIANTS[name].overrides,
            f"steps={steps}",
            f"data.batch_size={batch_size}",
            f"optim.warmup_steps={steps // 10}",
            f"checkpoint_every={steps}",
            "monitor.online_probe_every=0",
            "data.num_workers=0",  # rendering a batch takes milliseconds: no worker needed
            f"out={run_dir}",
        ]
        train(load_config(PRESET, overrides))
        runs[name] = evaluate(run_dir, load_eval_config(eval_overrides)).to_json()
    first = out_dir / variants[0]
    untrained = load_eval_config([*eval_overrides, f"encoder={UNTRAINED}"])
    runs[UNTRAINED] = evaluate(first, untrained).to_json()
    return {"meta": {"steps": steps, "batch_size": batch_size, "seeds": seeds}, "runs": runs}


def accuracy(report: dict[str, Any], label: str, probe: str) -> tuple[float, float] | None:
    """(mean, std) accuracy of one probe on one label at all labelled clips, or None."""
    for result in report["results"]:
        if (result["label"], result["probe"], result["fraction"]) == (label, probe, 1.0):
            return result["mean"], result["std"]
    return None


def probes_in(results: dict[str, Any]) -> list[str]:
    """The probe kinds every run of `results` was measured with, in the order first seen."""
    kinds: dict[str, None] = {}
    for report in results["runs"].values():
        kinds.update(dict.fromkeys(r["probe"] for r in report["results"]))
    return list(kinds)


def ablation_table(results: dict[str, Any], rows: tuple[str, ...], probe: str) -> str:
    """Accuracy (%) per label for the named runs, mean ± std over probe seeds, plus chance."""
    present = [name for name in rows if name in results["runs"]]
    lines = []
    for name in present:
        cells = []
        for label in LABELS:
            value = accuracy(results["runs"][name], label, probe)
            cells.append("-" if value is None else f"{100 * value[0]:.1f} ± {100 * value[1]:.1f}")
        lines.append([TITLES.get(name, name), *cells])
    if present:
        chance = results["runs"][present[0]]["chance"]
        lines.append(["chance (majority class)", *(f"{100 * chance[k]:.1f}" for k in LABELS)])
    return text_table([f"pretraining ({probe} probe)", *LABELS], lines)


def accuracy_figure(results: dict[str, Any], probe: str) -> Figure:
    """Bars of accuracy per label (groups) and run (colours), with chance as a dashed line."""
    names = [n for n in (*TARGET_ROWS, *MASK_ROWS) if n in results["runs"]]
    names = list(dict.fromkeys(names))
    fig, ax = plt.subplots(figsize=(9, 3.4))
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        values = [accuracy(results["runs"][name], label, probe) for label in LABELS]
        means = [100 * v[0] if v else np.nan for v in values]
        stds = [100 * v[1] if v else 0.0 for v in values]
        x = np.arange(len(LABELS)) + (i - (len(names) - 1) / 2) * width
        ax.bar(x, means, width, yerr=stds, label=TITLES.get(name, name))
    chance = results["runs"][names[0]]["chance"]
    for j, label in enumerate(LABELS):
        ax.hlines(100 * chance[label], j - 0.45, j + 0.45, colors="k", linestyles="dashed")
    ax.set_xticks(np.arange(len(LABELS)), LABELS)
    ax.set_ylabel(f"accuracy (%), {probe} probe")
    ax.set_title("Frozen target encoder, held-out clips (dashed: chance)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    plt.close(fig)
    return fig
