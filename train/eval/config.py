"""Typed settings of a frozen evaluation, overridable as `key=value` like `python -m train`.

python -m train.eval RUN_DIR encoder=encoder labels=[direction] fractions=[1.0] seeds=[0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from train.config import ConfigError, from_overrides
from train.data.synthetic import MAX_OBJECTS
from train.eval.probes import ProbeTraining

# Labels probed by default: appearance (shape) and motion (direction, speed) of the main object.
SYNTHETIC_LABELS = ("shape", "direction", "speed")
VIDEO_LABEL = "label"


@dataclass
class EvalDataConfig:
    """Where the labelled clips come from; the probes never see the pretraining clips."""

    source: Literal["synthetic", "videos"] = "synthetic"
    # synthetic: clips of two held-out physics worlds (disjoint from the pretraining world).
    train_clips: int = 2048
    val_clips: int = 1024
    # Objects per synthetic clip (null: as the run trained). The labels describe the main
    # object, and distractors drawn from the same distribution make them ambiguous: with up
    # to 3 objects no probe can tell which one a label is about in most clips, which caps every
    # model near 60% and hides differences. One object per clip is in the training
    # distribution (a third of the clips) and leaves each label a single answer.
    max_objects: int | None = 1
    # videos: list files of `path label` lines; without val_list, a fixed random val_fraction
    # of train_list's videos is held out.
    train_list: str | None = None
    val_list: str | None = None
    val_fraction: float = 0.2
    # Clips per forward pass during feature extraction, and DataLoader workers (decoding).
    batch_size: int = 64
    num_workers: int = 0


@dataclass
class ProbeConfig:
    # attentive: the paper's probe on all tokens; linear: on mean-pooled tokens (the paper's
    # "average pooling"); grid_linear: on tokens pooled to (time x 2 x 2) cells, a linear
    # readout that keeps where and when; knn: on mean-pooled tokens.
    kinds: list[Literal["attentive", "linear", "grid_linear", "knn"]] = field(
        default_factory=lambda: ["attentive", "linear", "grid_linear", "knn"]
    )
    attentive: ProbeTraining = field(default_factory=ProbeTraining)
    # Heads of the probe's cross-attention; null: the encoder's own (as the paper).
    attentive_heads: int | None = None
    # Both linear probes (mean-pooled and grid-pooled features).
    linear: ProbeTraining = field(default_factory=lambda: ProbeTraining(lr=1e-2))
    knn_k: int = 20
    # Votes are weighted by exp(cosine similarity / temperature), as in DINO's k-NN.
    knn_temperature: float = 0.07


@dataclass
class EvalConfig:
    # Which weights: the EMA target encoder (the paper's choice), the online encoder, or the
    # run's encoder as initialised at step 0 (the untrained baseline, same architecture).
    encoder: Literal["target_encoder", "encoder", "random_init"] = "target_encoder"
    # Probe the features after the encoder's first `blocks` blocks (and its final norm)
    # instead of after all of them: where in depth a label becomes readable, or is lost
    # (null: every block).
    blocks: int | None = None
    # Label names to probe; null: shape, direction, speed (synthetic) or label (videos).
    labels: list[str] | None = None
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    # Every (label, probe, fraction) is fitted once per seed; the seed picks the labelled subset
    # and the probe's initialisation. Fractions of the probe-training clips (label efficiency).
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    fractions: list[float] = field(default_factory=lambda: [0.05, 0.1, 0.5, 1.0])
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Autocast for feature extraction; "run" uses the precision the run trained with.
    precision: Literal["run", "fp32", "bf16", "fp16"] = "run"
    # Reuse features extracted earlier with identical settings (RUN_DIR/eval/features-*.pt).
    cache: bool = True
    # The JSON result file; null: RUN_DIR/eval/results-<encoder>.json.
    out: str | None = None

    def label_names(self) -> list[str]:
        if self.labels is not None:
            return list(self.labels)
        return list(SYNTHETIC_LABELS) if self.data.source == "synthetic" else [VIDEO_LABEL]


def validate_eval(cfg: EvalConfig) -> None:
    if cfg.blocks is not None and cfg.blocks < 1:
        raise ConfigError(f"blocks={cfg.blocks} must be at least 1 (null: every block)")
    if not cfg.seeds:
        raise ConfigError("seeds must name at least one seed, e.g. seeds=[0,1,2]")
    if not cfg.fractions or not all(0.0 < f <= 1.0 for f in cfg.fractions):
        raise ConfigError(f"fractions={cfg.fractions} must be values in (0, 1], e.g. [0.1,1.0]")
    if not cfg.probe.kinds:
        raise ConfigError("probe.kinds must name a probe: attentive, linear and/or knn")
    if not cfg.label_names():
        raise ConfigError("labels must name at least one label")
    data = cfg.data
    if data.source == "synthetic" and min(data.train_clips, data.val_clips) < 1:
        raise ConfigError("data.train_clips and data.val_clips must be at least 1")
    if data.max_objects is not None and not 1 <= data.max_objects <= MAX_OBJECTS:
        raise ConfigError(f"data.max_objects={data.max_objects} must lie in 1..{MAX_OBJECTS}")
    if data.source == "videos" and not data.train_list:
        raise ConfigError(
            "data.source=videos needs data.train_list=LIST (lines of `path label`), and "
            "optionally data.val_list=LIST"
        )
    if not 0.0 < data.val_fraction < 1.0:
        raise ConfigError(f"data.val_fraction={data.val_fraction} must lie strictly in (0, 1)")
    for name, settings in (("attentive", cfg.probe.attentive), ("linear", cfg.probe.linear)):
        if settings.steps < 1 or settings.batch_size < 1:
            raise ConfigError(f"probe.{name}.steps and probe.{name}.batch_size must be >= 1")
    if cfg.probe.knn_k < 1:
        raise ConfigError(f"probe.knn_k={cfg.probe.knn_k} must be at least 1")


def load_eval_config(overrides: list[str] = ()) -> EvalConfig:
    """Defaults <- dotted `key=value` overrides, validated into an EvalConfig."""
    cfg = from_overrides(EvalConfig, overrides)
    validate_eval(cfg)
    return cfg
