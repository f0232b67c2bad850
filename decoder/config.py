"""Typed configuration of a decoder fit: the decoder's size, the masks it trains on, the schedule.

Same rules as the core's config (train/config.py, whose helpers this reuses): every key is a
field below, an unknown key or a wrong value is refused with the allowed ones, and
`key=value` overrides use dotted names (`model.depth=2`, `masks.future=0.3`, `steps=400`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from train.config import ConfigError, OptimConfig, from_overrides, to_dict


@dataclass
class DecoderModelConfig:
    """A small ViT over the predicted tokens of the masked region, then a linear pixel head."""

    embed_dim: int = 128
    depth: int = 3
    num_heads: int = 4
    mlp_ratio: float = 4.0


@dataclass
class MaskMix:
    """Relative frequency of each mask family in training batches (see decoder/masks.py).

    `pretraining` draws the run's own masks (multiblock: either mask set, with its predictor
    token); the others are what people paint in the app: a blob over some frames, a blob through
    the whole clip, and every frame from some time on.
    """

    pretraining: float = 0.4
    blob: float = 0.2
    tube: float = 0.2
    future: float = 0.2


@dataclass
class DecoderOptimConfig:
    lr: float = 1e-3
    start_lr: float = 1e-4
    final_lr: float = 1e-5
    warmup_steps: int = 100
    weight_decay: float = 0.05
    betas: tuple[float, float] = (0.9, 0.99)
    clip_grad: float | None = 1.0

    def as_core(self) -> OptimConfig:
        """The core's OptimConfig, so the core's schedules and AdamW set-up apply unchanged
        (constant weight decay; there is no EMA in a decoder fit)."""
        return OptimConfig(
            lr=self.lr,
            start_lr=self.start_lr,
            final_lr=self.final_lr,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            final_weight_decay=self.weight_decay,
            betas=self.betas,
            clip_grad=self.clip_grad,
        )


@dataclass
class DecoderConfig:
    model: DecoderModelConfig = field(default_factory=DecoderModelConfig)
    masks: MaskMix = field(default_factory=MaskMix)
    optim: DecoderOptimConfig = field(default_factory=DecoderOptimConfig)
    # What the decoder turns into pixels: the predictor's guess for the masked region (the
    # product), or the target encoder's latents of that region (an upper-bound reference: the
    # target encoder saw the whole clip, masked pixels included).
    latents: Literal["predicted", "target"] = "predicted"
    steps: int = 1200
    batch_size: int = 32
    num_workers: int = 1
    seed: int = 0
    out: str = "runs/decoder"
    resume: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    log_every: int = 10
    checkpoint_every: int = 250
    # Held-out loss and PSNR per mask family every `eval_every` steps (0: only at the end).
    eval_every: int = 250
    eval_clips: int = 32


def load_decoder_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()
) -> DecoderConfig:
    """Defaults <- optional YAML file <- key=value overrides, validated."""
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"decoder config file {path} not found")
    cfg = from_overrides(DecoderConfig, overrides, path, "decoder config")
    validate(cfg)
    return cfg


def validate(cfg: DecoderConfig) -> None:
    if cfg.model.embed_dim % 8:
        raise ConfigError(
            f"model.embed_dim={cfg.model.embed_dim} must be a multiple of 8 (3-D sin-cos positions)"
        )
    if cfg.model.embed_dim % cfg.model.num_heads:
        raise ConfigError(
            f"model.embed_dim={cfg.model.embed_dim} must be divisible by "
            f"model.num_heads={cfg.model.num_heads}"
        )
    weights = to_dict(cfg.masks)
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise ConfigError(f"masks weights must be >= 0 and not all zero, got {weights}")
    for key in ("steps", "batch_size", "log_every", "checkpoint_every", "eval_clips"):
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{key}={getattr(cfg, key)} must be at least 1")
    if not 0 <= cfg.optim.warmup_steps <= cfg.steps:
        raise ConfigError(
            f"optim.warmup_steps={cfg.optim.warmup_steps} must lie in [0, steps={cfg.steps}]"
        )
