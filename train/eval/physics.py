"""python -m train.eval.physics MODEL [key=value ...]

The intuitive-physics yardstick: does the model expect objects to persist, move continuously,
keep their shape and colour, and keep their motion? MODEL is a run directory, a checkpoint file
(also an imported release) or a workbench bundle (.safetensors).

Matched pairs from a held-out physics world (train/data/violations.py): one scene twice,
identical before frame k; the impossible twin breaks a law from k on. The model's surprise
(train/eval/surprise.py: windows slide over the clip, the first half of each window predicts
the second) is measured on both twins; a pair counts as right when the impossible twin is the
more surprising (a tie counts half). Each pair is also completed into an IntPhys-style matched
set of four clips, in which every frame of the two impossible clips is a frame of the two
possible ones; a set counts as right when the impossible clips together are the more
surprising. The pairs favour whatever is easier to predict after k (an empty scene after a
vanishing, a still object after a stop); the matched sets cancel that and keep only the
violation. Both are reported per law and overall, with a 95% Wilson interval,
beside the same architecture at step 0 (the run's own initial weights), a rule that learned
nothing (every coming frame repeats the last one seen: it gets continuity right and permanence
and inertia wrong) and, when `pixels=RUN` names one, a `target: pixels` model. Chance is 50%.

Keys: pairs_per_law=50, pair_frames (null: twice the model's clip), context_frames (null: half
the model's clip), score=mean|max (over windows; both are in the JSON), pixels=RUN_OR_BUNDLE,
step0=true, laws=[permanence,continuity,constancy,inertia], device=auto, out=FILE (default:
RUN_DIR/eval/physics.json for a run; none for a bundle). A table goes to stdout.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from train.checkpoint import CheckpointError
from train.cli import error_exit_code, setup_logging, usage_exit_code
from train.config import Config, ConfigError, from_overrides
from train.data.synthetic import PhysicsWorld
from train.data.violations import LAWS, PAIR_WORLD, PairError, PairWorld, PhysicsPair
from train.eval.source import RunNotFoundError, resolve_checkpoint
from train.eval.surprise import CarryLastFrame, Forecaster, LatentForecaster, measure_surprise
from train.pretrained import Pretrained, initial_models, load_pretrained
from train.runtime import resolve_device

USAGE = __doc__
SCORES = ("mean", "max")
# The no-learning reference row: a rule that expects every tubelet to stay as it last was.
CARRY_ROW = "last frame carried on (no learning)"
Z_95 = 1.959964


@dataclass
class PhysicsConfig:
    pairs_per_law: int = 50
    pair_frames: int | None = None
    context_frames: int | None = None
    score: Literal["mean", "max"] = "mean"
    laws: list[str] = field(default_factory=lambda: list(LAWS))
    pixels: str | None = None
    step0: bool = True
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: str | None = None


def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion (ties count half a success)."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + Z_95**2 / n
    centre = (p + Z_95**2 / (2 * n)) / denom
    half = Z_95 * math.sqrt(p * (1 - p) / n + Z_95**2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def pair_outcomes(possible: torch.Tensor, impossible: torch.Tensor) -> torch.Tensor:
    """1 where the impossible twin is the more surprising, 0.5 on a tie, 0 otherwise."""
    return (impossible > possible).float() + 0.5 * (impossible == possible).float()


def _accuracy(outcomes: torch.Tensor) -> dict[str, Any]:
    n = outcomes.numel()
    low, high = wilson_interval(float(outcomes.sum()), n)
    return {"accuracy": float(outcomes.mean()) if n else math.nan, "ci95": [low, high], "pairs": n}


@dataclass
class PairSurprise:
    """Each pair's clip surprise (mean and max over windows) for the four clips of its matched
    set: the twins and the two clips that complete the set (train/data/violations.py)."""

    possible: dict[str, torch.Tensor]
    impossible: dict[str, torch.Tensor]
    lawful_after: dict[str, torch.Tensor]
    reversed_violation: dict[str, torch.Tensor]


MATCHED_SET = ("possible", "impossible", "lawful_after", "reversed_violation")


def surprise_of_pairs(
    forecaster: Forecaster, pairs: list[PhysicsPair], context_frames: int
) -> PairSurprise:
    clips = torch.stack([getattr(p, clip) for p in pairs for clip in MATCHED_SET])
    surprise = measure_surprise(forecaster, clips, context_frames)
    scores = {reduce: surprise.clip_score(reduce) for reduce in SCORES}
    n = len(MATCHED_SET)
    return PairSurprise(
        **{clip: {r: s[i::n] for r, s in scores.items()} for i, clip in enumerate(MATCHED_SET)}
    )


def _by_law(pairs: list[PhysicsPair], outcomes: torch.Tensor, gap: torch.Tensor) -> dict:
    laws = {}
    for law in dict.fromkeys(p.law for p in pairs):
        rows = [i for i, p in enumerate(pairs) if p.law == law]
        variants = {
            v: _accuracy(outcomes[[i for i in rows if pairs[i].variant == v]])
            for v in dict.fromkeys(pairs[i].variant for i in rows)
        }
        laws[law] = {
            **_accuracy(outcomes[rows]),
            "mean_relative_gap": float(gap[rows].mean()),
            "variants": variants,
        }
    return {"laws": laws, "overall": _accuracy(outcomes)}


def score_pairs(pairs: list[PhysicsPair], surprise: PairSurprise) -> dict[str, Any]:
    """Accuracy per law, per way of breaking it, and overall, for both clip scores: the pairs
    (impossible twin more surprising than its possible twin) and, under "matched", the matched
    sets (the two impossible clips together more surprising than the two possible ones)."""
    result = {}
    for reduce in SCORES:
        possible, impossible = surprise.possible[reduce], surprise.impossible[reduce]
        gap = (impossible - possible) / possible.clamp_min(1e-12)
        result[reduce] = _by_law(pairs, pair_outcomes(possible, impossible), gap)
        lawful = possible + surprise.lawful_after[reduce]
        unlawful = impossible + surprise.reversed_violation[reduce]
        matched_gap = (unlawful - lawful) / lawful.clamp_min(1e-12)
        result[reduce]["matched"] = _by_law(pairs, pair_outcomes(lawful, unlawful), matched_gap)
    return result


def pair_world(run: Config, cfg: PhysicsConfig) -> tuple[PairWorld, int]:
    """The held-out pair world at the run's clip size, and the context length in frames."""
    model = run.model
    context = cfg.context_frames or model.num_frames // 2
    context -= context % model.tubelet_size
    world = PhysicsWorld(
        num_clips=1_000_000,
        num_frames=cfg.pair_frames or 2 * model.num_frames,
        img_size=model.img_size,
        seed=PAIR_WORLD,  # not the run's seed: every run is scored on the same pairs
        max_objects=3,
        occluders=True,
        noise=run.data.synthetic.noise,
    )
    return PairWorld(world, context), context


class PhysicsMonitor:
    """The yardstick during training, on a fixed set of pairs made once: `physics` (all laws)
    and `physics_<law>` (mean surprise) for metrics.jsonl, and the matched sets
    (`physics_matched*`). Each set is four clips, each scored over sliding windows: 32 sets of
    the teaching model took 37-123 s on one thread of a 2-core CPU shared with other jobs
    (load 6-9), about 13 training steps' worth; space the calls accordingly."""

    def __init__(self, run: Config, pairs_per_law: int):
        world, self.context = pair_world(run, PhysicsConfig())
        self.pairs = world.pairs(pairs_per_law)
        self.run = run

    def measure(self, encoder, predictor, target_encoder, step: int) -> dict[str, float]:
        models = Pretrained(self.run, encoder, predictor, target_encoder, step)
        surprise = surprise_of_pairs(LatentForecaster(models), self.pairs, self.context)
        result = score_pairs(self.pairs, surprise)["mean"]
        record = {}
        for prefix, scored in (("physics", result), ("physics_matched", result["matched"])):
            record[prefix] = scored["overall"]["accuracy"]
            record.update({f"{prefix}_{law}": r["accuracy"] for law, r in scored["laws"].items()})
        return record


@dataclass
class PhysicsReport:
    model: str
    step: int
    settings: dict[str, Any]
    pairs: dict[str, Any]  # what the pairs are: counts per law and way, frames, k range
    models: dict[str, dict[str, Any]]  # row name -> score_pairs() result
    seconds: float

    def table(self, score: str | None = None) -> str:
        score = score or self.settings["score"]
        laws = self.settings["laws"]
        lines = [
            f"Intuitive physics: {self.model} (step {self.step}), {self.pairs['total']} pairs "
            f"and as many matched sets, {score} surprise over windows; chance 50%, 95% "
            "intervals in brackets",
        ]
        for title, part in (
            ("Pairs: share where the impossible twin is the more surprising", None),
            ("Matched sets: share where S(C) + S(D) > S(A) + S(B)", "matched"),
        ):
            lines += ["", title, "", "| model | " + " | ".join(laws) + " | overall |"]
            lines.append("|---|" + "---|" * (len(laws) + 1))
            for name, result in self.models.items():
                scored = result[score] if part is None else result[score][part]
                cells = [scored["laws"][law] for law in laws] + [scored["overall"]]
                lines.append(f"| {name} | " + " | ".join(_cell(c) for c in cells) + " |")
        return "\n".join(lines)

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2))
        tmp.replace(path)
        return path


def _cell(result: dict[str, Any]) -> str:
    low, high = result["ci95"]
    return f"{result['accuracy']:.0%} [{low:.0%}-{high:.0%}]"


def evaluate_physics(
    pretrained: Pretrained,
    cfg: PhysicsConfig,
    name: str = "model",
    pixels: Pretrained | None = None,
    device: torch.device | str = "cpu",
) -> PhysicsReport:
    """The yardstick on `pretrained`, beside its step-0 weights and an optional pixels model."""
    started = time.perf_counter()
    pairs_world, context = pair_world(pretrained.config, cfg)
    pairs = pairs_world.pairs(cfg.pairs_per_law, tuple(cfg.laws))
    rows = {"trained": pretrained}
    if cfg.step0:
        rows["step 0"] = initial_models(pretrained.config)
    if pixels is not None:
        if pixels.config.model != pretrained.config.model:
            raise ConfigError(
                "the pixels model must have the same architecture and clip size as the model "
                "it is compared with"
            )
        rows["pixels"] = pixels
    results = {}
    for row, models in rows.items():
        forecaster = LatentForecaster(models.to(device).eval())
        results[row] = score_pairs(pairs, surprise_of_pairs(forecaster, pairs, context))
    model = pretrained.config.model
    carry = CarryLastFrame(model.num_frames, model.tubelet_size, model.patch_size)
    results[CARRY_ROW] = score_pairs(pairs, surprise_of_pairs(carry, pairs, context))
    counts: dict[str, dict[str, int]] = {}
    for p in pairs:
        law = counts.setdefault(p.law, {})
        law[p.variant] = law.get(p.variant, 0) + 1
    return PhysicsReport(
        model=name,
        step=pretrained.step,
        settings=asdict(cfg),
        pairs={
            "total": len(pairs),
            "per_law": counts,
            "frames": pairs_world.world.num_frames,
            "context_frames": context,
            "violation_frames": list(pairs_world.frame_range),
            "with_occluder": sum(p.occluder for p in pairs),
            "with_distractors": sum(p.distractors > 0 for p in pairs),
            "world_seed": pairs_world.world.seed,
        },
        models=results,
        seconds=time.perf_counter() - started,
    )


def validate_physics(cfg: PhysicsConfig) -> None:
    if cfg.pairs_per_law < 1:
        raise ConfigError(f"pairs_per_law={cfg.pairs_per_law} must be at least 1")
    unknown = sorted(set(cfg.laws) - set(LAWS))
    if unknown or not cfg.laws:
        raise ConfigError(f"laws={cfg.laws}: choose among {', '.join(LAWS)}")


def default_out(model: str) -> Path | None:
    """RUN_DIR/eval/physics.json for runs and checkpoints; None for a model file."""
    if Path(model).suffix == ".safetensors":
        return None
    run_dir, _ = resolve_checkpoint(model)
    return run_dir / "eval" / "physics.json"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := usage_exit_code(argv, USAGE)) is not None:
        return code
    setup_logging()
    try:
        cfg = from_overrides(PhysicsConfig, argv[1:])
        validate_physics(cfg)
        device = resolve_device(cfg.device)
        pretrained = load_pretrained(argv[0], device)
        pixels = load_pretrained(cfg.pixels, device) if cfg.pixels else None
        report = evaluate_physics(pretrained, cfg, argv[0], pixels, device)
        out = Path(cfg.out) if cfg.out else default_out(argv[0])
    except (ConfigError, RunNotFoundError, CheckpointError, PairError, FileNotFoundError) as err:
        return error_exit_code(err, (ConfigError,))
    print(report.table())
    if out is not None:
        print(f"\nwritten: {report.write(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
