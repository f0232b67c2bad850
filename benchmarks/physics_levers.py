"""Which training levers make the teaching model pass the intuitive-physics yardstick?

Each lever is the teaching preset (`tiny_cpu`) with a few overrides, trained for the same number
of steps with the same seed, the yardstick logged every 50 steps (64 pairs) and measured at the
end on 200 held-out pairs (`python -m train.eval.physics`). The committed starter (1,200 steps,
multi-block masks only) and the step-0 weights stand beside them. The table goes into
docs/results.md between the `physics-levers` markers.

    python benchmarks/physics_levers.py --steps 300                  # every lever
    python benchmarks/physics_levers.py --steps 300 --only future1 causal_only

Finished runs in --runs-dir are reused (their checkpoints hold the last step), so an
interrupted sweep continues where it stopped. Runs go one after another with the threads
torch is given (set OMP_NUM_THREADS); their step times are in the table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from decoder.bundle import STARTER_PATH
from train.doc_sections import replace_section
from train.eval.physics import CARRY_ROW, PhysicsConfig, PhysicsReport, evaluate_physics
from train.monitor import read_metrics
from train.pretrained import load_pretrained

REPO = Path(__file__).resolve().parents[1]
LAWS = ("permanence", "continuity", "constancy", "inertia")
MONITORS = [
    "monitor.physics_every=50",
    "monitor.rankme_every=50",
    "monitor.online_probe_every=0",
]
# name -> (what it changes, overrides of tiny_cpu)
CAUSAL = ["mask.strategy=causal", "mask.causal_context_frames=4"]
LEVERS: dict[str, tuple[str, list[str]]] = {
    "future1": ("+1 future-prediction mask set", ["mask.future_sets=1"]),
    "future1_sigreg_noema": (
        "+1 future set, SIGReg 0.02, no teacher (EMA momentum 0)",
        ["mask.future_sets=1", "sigreg.weight=0.02", "optim.ema=[0.0,0.0]"],
    ),
    "causal_only": ("causal masks only: the first 4 frames predict the last 4", CAUSAL),
    "causal_l2": ("causal only, squared-error feature loss", [*CAUSAL, "feature_loss=l2"]),
    "causal_rope": (
        "causal only, 3-D RoPE instead of sin-cos position tables",
        [*CAUSAL, "model.positions=rope"],
    ),
    "causal_noise0": (
        "causal only, a world without pixel noise (its pairs too)",
        [*CAUSAL, "data.synthetic.noise=0.0"],
    ),
}


def train_lever(name: str, overrides: list[str], steps: int, runs_dir: Path) -> Path:
    run = runs_dir / name
    resume = ["resume=true"] if (run / "checkpoints").is_dir() else []
    command = [
        sys.executable,
        "-m",
        "train",
        "tiny_cpu",
        f"out={run}",
        f"steps={steps}",
        *MONITORS,
        *overrides,
        *resume,
    ]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO, env={**os.environ, "TQDM_DISABLE": "1"})
    return run


def _law_cells(result: dict) -> list[str]:
    """Matched-set accuracy per law and overall, then the pairs' overall accuracy."""
    matched = result["matched"]
    per_law = [f"{matched['laws'][law]['accuracy']:.0%}" for law in LAWS]
    overall = f"**{matched['overall']['accuracy']:.0%}**"
    return [*per_law, overall, f"{result['overall']['accuracy']:.0%}"]


def lever_row(name: str, change: str, run: Path, report: PhysicsReport) -> str:
    records = read_metrics(run / "metrics.jsonl")
    # Runs from before the matched sets logged the pairs only: say which curve this is.
    key = "physics_matched" if any("physics_matched" in r for r in records) else "physics"
    curve = ", ".join(f"{r['step']}: {r[key]:.0%}" for r in records if key in r)
    curve += "" if key == "physics_matched" else " (pairs)"
    rankme = [r["rankme"] for r in records if "rankme" in r]
    step_s = statistics.median(r["step_s"] for r in records[1:]) if len(records) > 1 else None
    cells = [f"`{name}`: {change}", f"{records[-1]['loss']:.3f}"]
    cells += _law_cells(report.models["trained"]["mean"])
    cells += [
        curve,
        f"{rankme[0]:.0f} -> {rankme[-1]:.0f}" if rankme else "",
        f"{step_s:.1f}" if step_s is not None else "",
    ]
    return "| " + " | ".join(cells) + " |"


def reference_rows(report: PhysicsReport) -> list[str]:
    rows = []
    for name, label in (
        ("trained", "the committed starter (`make starter`)"),
        ("step 0", "step 0 (the same architecture, untrained)"),
        (CARRY_ROW, "the last frame carried on (no learning)"),
    ):
        cells = [label, "", *_law_cells(report.models[name]["mean"]), "", "", ""]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--runs-dir", type=Path, default=REPO / "runs" / "physics-levers")
    parser.add_argument("--only", nargs="*", default=None, help="lever names (default: all)")
    parser.add_argument("--pairs-per-law", type=int, default=50)
    parser.add_argument("--write", type=Path, default=REPO / "docs" / "results.md")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    load_before = os.getloadavg()
    # Every lever has the starter's architecture and seed, so one step-0 row serves them all.
    cfg = PhysicsConfig(pairs_per_law=args.pairs_per_law, step0=False)
    header = [
        "| run | final loss | permanence | continuity | constancy | inertia | overall "
        "(matched sets) | overall (pairs) | yardstick during training (64 sets) | RankMe | "
        "s / step |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    starter = evaluate_physics(
        load_pretrained(STARTER_PATH), PhysicsConfig(pairs_per_law=args.pairs_per_law), "starter"
    )
    rows = reference_rows(starter)
    results = {"starter": starter.models}
    for name in args.only or list(LEVERS):
        change, overrides = LEVERS[name]
        run = train_lever(name, overrides, args.steps, args.runs_dir)
        report = evaluate_physics(load_pretrained(run), cfg, name)
        report.write(run / "eval" / "physics.json")
        rows.append(lever_row(name, change, run, report))
        results[name] = report.models
    load_after = os.getloadavg()
    command = "python benchmarks/physics_levers.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    text = "\n".join(
        [
            f"Command: `{command.strip()}` (OMP_NUM_THREADS=1), {args.steps} steps per lever, "
            f"{time.perf_counter() - started:.0f} s for the evaluations and any training "
            f"left; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after.",
            "",
            f"Yardstick: {4 * args.pairs_per_law} held-out matched sets ({args.pairs_per_law} "
            "per law), mean surprise over the windows; per law and overall, the share of sets "
            "where the two impossible clips together are more surprising than the two possible "
            "ones; then the overall share of pairs where the impossible twin alone is the more "
            "surprising. Chance 50%.",
            "",
            *header,
            *rows,
        ]
    )
    replace_section(args.write, "physics-levers", text)
    (args.runs_dir / "levers.json").write_text(json.dumps(results, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
