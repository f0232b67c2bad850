"""python -m decoder.starter [key=value ...]   (what `make starter` runs)

Rebuilds the committed starter bundle (decoder/starter/starter.safetensors) from scratch on the
synthetic physics world, so the workbench opens with a working model on a fresh machine:

1. pretrain a tiny V-JEPA: the teaching preset (`tiny_cpu`) with the starter's recipe
   (`STARTER_RECIPE`: 3-D RoPE, causal masks, the patch embedding frozen at step 0, 2,000
   steps);
2. fit the pixel decoder on it, frozen (python -m decoder);
3. measure it: attentive-probe accuracy (train.eval.provenance_probe), the intuitive-physics
   yardstick (train.eval.physics, beside step 0 and the no-learning rule), and the decoder's
   PSNR / SSIM in the masked region next to the two no-learning baselines, on held-out clips;
4. write the bundle (weights in fp16, to stay small), reload it and check that it renders.

Work files go to `work=runs/starter`; an interrupted build continues with `resume=true`.
About 80 minutes on 2 CPU cores (the previous starter's build: pretraining 39 min at a median
0.94 s a step, load 1-2); the committed starter's took 100, on one thread beside other jobs
(pretraining 64 min at a median 1.07 s a step; the decoder 29 min, about 13 at 0.65 s a step
on quiet cores; probes 3 min, the yardstick 4 min); every stage's time is recorded in the
bundle's provenance, summed over the processes of a resumed build.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from decoder.bundle import STARTER_PATH, load_bundle, save_bundle
from decoder.config import DecoderConfig, DecoderOptimConfig, validate
from decoder.evaluation import baseline_methods, decoder_method, held_out_batches, score_methods
from decoder.fit import EVAL_FAMILIES, fit_decoder, load_source
from decoder.provenance import command_line, environment
from decoder.render import render_prediction
from train.checkpoint import CheckpointError
from train.cli import setup_logging
from train.config import ConfigError, from_dict, from_overrides, load_config, to_dict
from train.eval.physics import PhysicsConfig, evaluate_physics
from train.loop import train
from train.monitor import read_metrics, training_seconds
from train.pretrained import initial_models
from train.runtime import TrainingError
from train.tokens import TokenGeometry

log = logging.getLogger("decoder.starter")
USAGE = __doc__


class BuildStopped(RuntimeError):
    """A stage was stopped by a signal: its checkpoint is saved, and later stages must not run
    on a half-trained model."""

    def __init__(self, stage: str):
        super().__init__(f"{stage} was stopped; continue the build with resume=true")


STARTER_RECIPE = (
    "steps=2000",
    "model.positions=rope",
    "mask.strategy=causal",
    "mask.causal_context_frames=4",
    "monitor.physics_every=400",
    "monitor.rankme_every=100",
    "monitor.online_probe_every=0",
    "optim.freeze_patch_embed=true",
)


def _starter_decoder() -> DecoderConfig:
    return DecoderConfig(steps=1200, optim=DecoderOptimConfig(warmup_steps=100))


@dataclass
class StarterConfig:
    # The core preset and the overrides that make the starter's pretraining run.
    pretrain_preset: str = "tiny_cpu"
    # 3-D RoPE and causal masks (the first 4 frames predict the last 4): the recipe that passes
    # the intuitive-physics yardstick on 2 CPU cores (docs/results.md, "Levers"); the patch
    # embedding kept at its random initialisation (MoCo v3's trick) keeps the object's shape
    # readable and the features' rank (docs/results.md, "The V-JEPA 2.1 objective, a frozen
    # patch embedding and 16-frame clips").
    pretrain_overrides: list[str] = field(default_factory=lambda: list(STARTER_RECIPE))
    decoder: DecoderConfig = field(default_factory=_starter_decoder)
    work: str = "runs/starter"
    resume: bool = False
    # Where the bundle goes; null: the committed starter's place (decoder.bundle.STARTER_PATH).
    out: str | None = None
    weight_dtype: Literal["float16", "bfloat16", "float32"] = "float16"
    # Attentive probes on held-out labelled clips (0 clips: skip).
    probe_clips: int = 1536
    # Held-out clips per mask family for the quality summary.
    quality_clips: int = 64
    # Matched sets per law of the intuitive-physics yardstick (0: skip); 50 is the CLI's.
    physics_pairs_per_law: int = 50


def load_starter_config(overrides: list[str]) -> StarterConfig:
    cfg = from_overrides(StarterConfig, overrides)
    validate(cfg.decoder)
    return cfg


def probe_accuracy(pretrained, clips: int) -> dict[str, Any] | None:
    """Attentive-probe accuracy per label, beside the same probe on the run's step-0 weights
    (`step0`, which the Model tab shows next to it), or None when asked to skip."""
    if clips <= 0:
        return None
    from train.eval import probe_report

    report = probe_report(pretrained, num_clips=clips)
    untrained = initial_models(pretrained.config)
    report["step0"] = {"accuracy": probe_report(untrained, num_clips=clips)["accuracy"]}
    return report


def physics_yardstick(pretrained, pairs_per_law: int) -> dict[str, Any] | None:
    """The intuitive-physics yardstick beside step 0 and the no-learning rule (what the Model
    tab shows for the bundle), or None when asked to skip."""
    if pairs_per_law <= 0:
        return None
    report = evaluate_physics(pretrained, PhysicsConfig(pairs_per_law=pairs_per_law), "starter")
    return asdict(report)


def build_starter(cfg: StarterConfig) -> Path:
    work = Path(cfg.work)
    if work.exists() and not cfg.resume:
        raise ConfigError(
            f"{work} exists from an earlier build: delete it to rebuild from scratch, or pass "
            "resume=true to continue an interrupted build"
        )
    seconds: dict[str, float] = {}
    started = time.perf_counter()

    # 1. Pretraining.
    run_cfg = load_config(
        cfg.pretrain_preset,
        [*cfg.pretrain_overrides, f"out={work / 'pretrain'}", f"resume={str(cfg.resume).lower()}"],
    )
    stage = time.perf_counter()
    if train(run_cfg).stopped_early:
        raise BuildStopped("pretraining")
    # A resumed build trained in several processes: count each one's time, not only this one's.
    records = read_metrics(work / "pretrain" / "metrics.jsonl")
    seconds["pretrain"] = max(time.perf_counter() - stage, training_seconds(records))
    pretrained, source = load_source(work / "pretrain")
    # A run trained elsewhere and moved here resumes (out may change): the bundle names the
    # build's folder, not the path the run was trained under on some machine.
    pretrained.config.out = str(work / "pretrain")
    rankme = [r["rankme"] for r in records if "rankme" in r]
    source.update(
        preset=cfg.pretrain_preset,
        overrides=cfg.pretrain_overrides,
        final_rankme=rankme[-1] if rankme else None,
        clips_seen=run_cfg.steps * run_cfg.data.batch_size,
    )

    # 2. The decoder.
    decoder_cfg = from_dict(
        DecoderConfig,
        {**to_dict(cfg.decoder), "out": str(work / "decoder"), "resume": cfg.resume},
    )
    stage = time.perf_counter()
    fit = fit_decoder(pretrained, decoder_cfg, source)
    if fit.stopped_early:
        raise BuildStopped("the decoder fit")
    decoder_records = read_metrics(work / "decoder" / "metrics.jsonl")
    seconds["decoder"] = max(time.perf_counter() - stage, training_seconds(decoder_records))

    # 3. Measurements.
    stage = time.perf_counter()
    probe = probe_accuracy(pretrained, cfg.probe_clips)
    seconds["probe"] = time.perf_counter() - stage
    physics = physics_yardstick(pretrained, cfg.physics_pairs_per_law)
    if physics is not None:
        seconds["physics"] = physics["seconds"]
    stage = time.perf_counter()
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    batches = held_out_batches(pretrained.config, EVAL_FAMILIES, cfg.quality_clips)
    methods = [decoder_method("decoder", pretrained, fit.decoder), *baseline_methods(geometry)]
    quality = score_methods(batches, methods, geometry)
    seconds["quality"] = time.perf_counter() - stage
    # A resumed build ran its stages in several processes: the total is at least their sum.
    seconds["total"] = max(time.perf_counter() - started, sum(seconds.values()))

    # 4. The bundle.
    provenance = {
        "command": command_line(),
        **environment(),
        "pretrain": source,
        "decoder": {
            "steps": decoder_cfg.steps,
            "final_loss": fit.final_loss,
            "latents": decoder_cfg.latents,
            "held_out": fit.held_out,
        },
        "quality": {"clips_per_family": cfg.quality_clips, "scores": quality},
        "probe": probe,
        "physics": physics,
        "seconds": seconds,
    }
    path = save_bundle(
        cfg.out or STARTER_PATH,
        pretrained,
        fit.decoder,
        decoder_cfg,
        provenance,
        getattr(torch, cfg.weight_dtype),
    )
    check_bundle(path)
    log.info("starter bundle written: %s (%.1f MB)", path, path.stat().st_size / 2**20)
    return path


def check_bundle(path: Path) -> None:
    """The written file opens and renders (what the workbench will do first)."""
    bundle = load_bundle(path)
    mask, index = bundle.preset_mask("multiblock-long")
    clip = bundle.fit_clip(torch.zeros(bundle.num_frames, 32, 32, 3, dtype=torch.uint8))
    render_prediction(bundle, clip, mask, index)


def summary_table(path: Path) -> str:
    bundle = load_bundle(path)
    lines = [bundle.summary(), "PSNR dB in the masked region (held-out clips):"]
    for family, scores in bundle.provenance["quality"]["scores"].items():
        cells = ", ".join(f"{name} {s['psnr']:.2f}" for name, s in scores.items())
        lines.append(f"  {family}: {cells}")
    seconds = bundle.provenance["seconds"]
    lines.append("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    setup_logging()
    try:
        cfg = load_starter_config(argv)
        path = build_starter(cfg)
    except BuildStopped as stopped:
        print(str(stopped), file=sys.stderr)
        return 0
    except (ConfigError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    print(summary_table(path))
    return 0


if __name__ == "__main__":
    sys.exit(main())
