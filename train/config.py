"""Typed run configuration: dataclasses, YAML presets, dotted command-line overrides.

Every key a run accepts is a field below; a preset YAML or an override naming anything else is
refused with the list of allowed keys, and a value of the wrong type or outside a `Literal` is
refused with the allowed values. The resolved config is dumped as `config.yaml` next to the run.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

PRESET_DIR = Path(__file__).parent / "configs"


class ConfigError(ValueError):
    """A config key or value the user must fix; the message names the key and what is allowed."""


@dataclass
class ModelConfig:
    # Named size: sets encoder width/depth/heads and the predictor's unless given explicitly.
    size: Literal["tiny", "vit_s", "vit_b", "vit_l", "vit_h"] = "vit_l"
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    pred_embed_dim: int | None = None
    pred_depth: int | None = None
    pred_num_heads: int | None = None
    # The predictor's MLP ratio (null: mlp_ratio). V-JEPA 2's ViT-g has 48/11, its predictor 4.
    pred_mlp_ratio: float | None = None
    # Positions: sincos = fixed 3-D sin-cos table with 1/2 of the channels for time, 1/4 each for
    # height and width (this project's first split; a config without the key means it);
    # sincos_uniform = equal thirds (V-JEPA 1's released models, upstream `uniform_power: true`);
    # rope = V-JEPA 2's 3-D rotary embeddings in every attention block, no table, any grid;
    # rope_v21 = V-JEPA 2.1's (one frequency per channel pair; train/models/rope_v21.py).
    positions: Literal["sincos", "sincos_uniform", "rope", "rope_v21"] = "sincos"
    # V-JEPA 2.1 options (train/models/rope_v21.py, hierarchical.py); the defaults are V-JEPA 1/2.
    # RoPE height/width positions rescaled onto a grid this many patches wide (2.1: 16; null: none).
    rope_reference_grid: int | None = None
    pred_rope_reference_grid: int | None = None
    # LayerNorms `norms_block.i` after this many evenly spread blocks instead of one `norm` (2.1: 4;
    # 0: one final norm). The encoder's features are the last level.
    hierarchical_levels: int = 0
    # Learned video / image vectors added to the tokens; a 1-frame patch embedding for images.
    modality_embed: bool = False
    image_patch_embed: bool = False
    # Encoder levels the predictor reads (concatenated) and predicts; width predicted per level
    # (null: the objective's); a second head on the context tokens; modality vectors.
    pred_levels: int = 1
    pred_out_dim: int | None = None
    pred_context_head: bool = False
    pred_modality_embed: bool = False
    num_frames: int = 16
    img_size: int = 224
    patch_size: int = 16
    tubelet_size: int = 2
    in_chans: int = 3
    checkpoint_activations: bool = False


@dataclass
class BlockSpec:
    """One mask set of the multi-block strategy: the union of `num_blocks` random 3-D blocks."""

    num_blocks: int = 8
    spatial_scale: tuple[float, float] = (0.15, 0.15)
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


def _paper_mask_sets() -> list[BlockSpec]:
    return [
        BlockSpec(num_blocks=8, spatial_scale=(0.15, 0.15)),
        BlockSpec(num_blocks=2, spatial_scale=(0.7, 0.7)),
    ]


# Named so the app can offer the same choices (typing.get_args) without copying them.
MaskStrategy = Literal["multiblock", "random_tube", "causal"]


@dataclass
class MaskConfig:
    strategy: MaskStrategy = "multiblock"
    # multiblock: one mask set per entry (paper: short-range 8 x 0.15, long-range 2 x 0.7).
    multiblock: list[BlockSpec] = field(default_factory=_paper_mask_sets)
    # multiblock: true makes every sample's target one size per batch and mask set, by growing
    # or shrinking its union of blocks along the union's boundary (train/masks.py), so nothing is
    # padded; false (and configs without the key) pads index lists to the batch maximum.
    equal_sizes: bool = False
    # random_tube: this fraction of spatial positions is masked through the whole clip.
    tube_ratio: float = 0.9
    tube_sets: int = 2
    # causal: the context is the first `causal_context_frames` frames, the target all later ones.
    causal_context_frames: int = 8
    # Future-prediction sets added after the strategy's own (0: none). Each hides every frame
    # from a time step on: the encoder sees the first frames, the predictor fills in the rest,
    # so it learns to extrapolate in time (what the intuitive-physics test asks of it). The
    # number of context frames is drawn per batch from this range (multiples of the tubelet);
    # null: from one tubelet to all but the last one.
    future_sets: int = 0
    future_context_frames: tuple[int, int] | None = None


@dataclass
class SyntheticConfig:
    """The procedural physics world (train/data/synthetic.py)."""

    num_clips: int = 100_000
    max_objects: int = 3
    gravity: float = 0.0
    occluders: bool = True
    noise: float = 0.02


@dataclass
class DataConfig:
    source: Literal["synthetic", "videos", "images"] = "synthetic"
    path: str | None = None
    # Global batch per optimiser step; micro_batch_size is what one device runs per forward
    # (null: the global batch split over devices, no accumulation).
    batch_size: int = 32
    micro_batch_size: int | None = None
    num_workers: int = 2
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)
    # Real video (train/data/video.py).
    frame_step: int = 4
    fps: float | None = None
    short_video_policy: Literal["repeat_last", "skip"] = "repeat_last"
    crop_scale: tuple[float, float] = (0.3, 1.0)
    crop_aspect: tuple[float, float] = (0.75, 1.35)
    hflip: bool = True
    decode_threads: int = 1
    # Evaluation view: evenly spaced clips per video (the int index enumerates video x clip).
    eval_clips_per_video: int = 1
    # Training clips per opened video (V-JEPA's num_clips): a video's index fills this many
    # consecutive batch slots, each with its own start, crop and flip, and one open and one
    # decode serve them all (VideoDataset.samples). Clips per step stay batch_size. 1: today's.
    clips_per_video: int = 1
    # Training stops when more than this fraction of the items drawn could not be read.
    max_bad_fraction: float = 0.1


@dataclass
class OptimConfig:
    lr: float = 6.25e-4
    start_lr: float = 2e-4
    final_lr: float = 1e-6
    warmup_steps: int = 12_000
    # Learning-rate shape after the linear warmup: cosine to final_lr at the last step (V-JEPA 1),
    # or constant at lr, then a linear cooldown to final_lr over the last cooldown_steps (V-JEPA 2).
    lr_schedule: Literal["warmup_cosine", "warmup_constant_cooldown"] = "warmup_cosine"
    cooldown_steps: int = 0
    weight_decay: float = 0.04
    final_weight_decay: float = 0.4
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    clip_grad: float | None = 10.0
    ema: tuple[float, float] = (0.998, 1.0)
    # Keep the encoder's patch embedding (the tubelet projection) at its random initialisation:
    # MoCo v3 (Chen et al. 2021) found a frozen random patch projection steadies ViT
    # self-supervised training; here, a lever of the physics study (docs/results.md), since a
    # random projection keeps each tubelet's pixels, shape included.
    freeze_patch_embed: bool = False


@dataclass
class SigRegConfig:
    """SIGReg (train/sigreg.py) on the context encoder's token embeddings: weight 0 is off.
    The loss becomes prediction loss + weight x SIGReg. With optim.ema=[0, 0] the target is the
    online encoder itself (no teacher), and SIGReg alone guards against collapse."""

    weight: float = 0.0
    slices: int = 256
    # Context tokens tested per micro-batch (a random subset): the statistic grows with their
    # number, so fixing it keeps `weight` comparable across batch sizes and clip sizes.
    tokens: int = 1024


@dataclass
class ContextLossConfig:
    """V-JEPA 2.1's context loss (train/context_loss.py): the predictor also regresses the
    target features of the tokens the encoder sees, through its context head, so that each
    visible token keeps what is at its own place. Needs model.pred_context_head=true and
    feature targets; weight 0 is off. The loss becomes prediction loss + weight x this."""

    weight: float = 0.0
    # Steps over which the weight rises linearly from 0 to `weight` ((0, 0): full from the
    # start). 2.1 lets the prediction loss shape the features first (its runs ramp from
    # iteration 15,000 to 30,000).
    ramp: tuple[int, int] = (0, 0)
    # Each visible token's error divided by the square root of its distance (in tokens, over
    # time, height and width) to the nearest hidden token: the tokens next to a hole weigh most.
    distance_weighted: bool = True


@dataclass
class MonitorConfig:
    log_every: int = 10
    rankme_every: int = 100
    rankme_clips: int = 16
    # A cheap probe fitted on held-out labelled clips every N steps (0: off); see train/eval.
    online_probe_every: int = 0
    online_probe_clips: int = 512
    # The intuitive-physics yardstick on a small fixed set of held-out pairs every N steps
    # (0: off): physics (all laws) and physics_<law> in metrics.jsonl; see train/eval/physics.py.
    physics_every: int = 0
    physics_pairs_per_law: int = 16


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    mask: MaskConfig = field(default_factory=MaskConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    # What the predictor regresses: target-encoder features (V-JEPA) or normalised pixels.
    target: Literal["features", "pixels"] = "features"
    # The distance a feature target is regressed with: the paper's l1, or l2 (a lever of the
    # physics study, docs/results.md). Pixel targets always use the squared error (VideoMAE).
    feature_loss: Literal["l1", "l2"] = "l1"
    sigreg: SigRegConfig = field(default_factory=SigRegConfig)
    context_loss: ContextLossConfig = field(default_factory=ContextLossConfig)
    steps: int = 90_000
    seed: int = 0
    out: str = "runs/default"
    resume: bool = False
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    compile: bool = False
    checkpoint_every: int = 1000
    keep_every: int | None = None


# ---------------------------------------------------------------------------------------------
# Building a dataclass tree from plain data, with checks that name the offending key.


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            allowed = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{key}={value!r} is not allowed; allowed values: {allowed}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, option, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{key}={value!r}: {'; '.join(errors)}"
        )
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{key} must be a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=key + ".")
    if origin is tuple:
        if not isinstance(value, (list, tuple)) or len(value) != len(args):
            raise ConfigError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{key} must be an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str):
            # YAML 1.1 reads 1e-3 (no dot) as a string; users write it that way.
            try:
                return float(value)
            except ValueError as err:
                raise ConfigError(f"{key} must be a number, got {value!r}") from err
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key} must be a string, got {value!r}")
        return str(value)
    raise ConfigError(f"{key}: unsupported config type {_type_name(tp)}")


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass `cls` from nested dicts; unknown keys and bad values raise ConfigError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        where = prefix.rstrip(".") or "the top level"
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; "
            f"allowed keys at {where}: {', '.join(names)}"
        )
    kwargs = {
        name: _coerce(data[name], hints[name], prefix + name) for name in names if name in data
    }
    return cls(**kwargs)


def to_dict(cfg: Any) -> Any:
    """Plain YAML-able data (tuples become lists)."""
    if dataclasses.is_dataclass(cfg):
        return {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}
    if isinstance(cfg, (list, tuple)):
        return [to_dict(v) for v in cfg]
    return cfg


# ---------------------------------------------------------------------------------------------
# Presets and overrides.


def resolve_preset(name_or_path: str | Path) -> Path:
    """A YAML path, or the name of a preset in train/configs (with or without .yaml)."""
    path = Path(name_or_path)
    if path.is_file():
        return path
    for candidate in (PRESET_DIR / path.name, PRESET_DIR / f"{path.name}.yaml"):
        if candidate.is_file():
            return candidate
    presets = ", ".join(sorted(p.stem for p in PRESET_DIR.glob("*.yaml")))
    raise ConfigError(f"config {name_or_path} not found; give a YAML path or a preset: {presets}")


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. optim.lr=1e-3")
    key, raw = text.split("=", 1)
    if not key:
        raise ConfigError(f"override {text!r} has no key")
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as err:
        raise ConfigError(f"override {text!r}: value is not valid YAML ({err})") from err
    return key.split("."), value


def set_dotted(data: dict[str, Any], keys: list[str], value: Any) -> None:
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(keys)}: {key} is a value, not a group of keys")
        node = child
    node[keys[-1]] = value


def load_config(preset: str | Path | None = None, overrides: list[str] = ()) -> Config:
    """Defaults <- preset YAML <- key=value overrides, validated into a Config."""
    path = resolve_preset(preset) if preset is not None else None
    cfg = from_overrides(Config, overrides, path)
    validate(cfg)
    return cfg


def from_overrides(
    cls: type, overrides: list[str] = (), path: str | Path | None = None, what: str = "config"
) -> Any:
    """Dataclass `cls` from its defaults <- the YAML mapping at `path` (if any) <- dotted
    `key=value` overrides: the one loader of every settings class (the core's, the evaluations',
    the decoder's). Validation is the caller's; `what` names the settings in messages."""
    data: dict[str, Any] = {}
    if path is not None:
        data = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold a mapping of {what} keys")
    for text in overrides:
        keys, value = parse_override(text)
        set_dotted(data, keys, value)
    return from_dict(cls, data)


def dump_config(cfg: Config, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def _at_least(minimum: float, values: dict[str, float | None]) -> None:
    for key, value in values.items():
        if value is not None and not value >= minimum:  # `not >=` also catches NaN
            raise ConfigError(f"{key}={value} must be at least {minimum:g}")


def _finite(values: dict[str, float | None]) -> None:
    for key, value in values.items():
        if value is not None and not math.isfinite(value):
            raise ConfigError(f"{key}={value} must be a finite number")


def _pair_in(key: str, pair: tuple[float, float], low: float, high: float, open_low: bool) -> None:
    """0 < a <= b <= high (or low <= a when not `open_low`), finite."""
    a, b = pair
    low_ok = a > low if open_low else a >= low
    if not (math.isfinite(a) and math.isfinite(b) and low_ok and a <= b <= high):
        bound = f"({low:g}" if open_low else f"[{low:g}"
        raise ConfigError(f"{key}={list(pair)} must be increasing and lie in {bound}, {high:g}]")


def validate_fields(cfg: Config) -> None:
    """Ranges of single fields: sizes and counts, learning rates and betas, data settings.
    Checked before anything divides by them or hands them to PyTorch."""
    from train.models.sizes import SIZES  # the named sizes fill in unset widths

    m, o, d, mon = cfg.model, cfg.optim, cfg.data, cfg.monitor
    _at_least(1, {f"model.{k}": getattr(m, k) for k in ("num_frames", "img_size", "patch_size")})
    _at_least(1, {"model.tubelet_size": m.tubelet_size, "model.in_chans": m.in_chans})
    size = SIZES[m.size]
    # Only an unset (None) value takes the size's: a 0 given by the user is checked as given.
    given = {k: getattr(m, k) for k in vars(size)}
    widths = {k: getattr(size, k) if v is None else v for k, v in given.items()}
    _at_least(1, {f"model.{k}": v for k, v in widths.items()})
    _at_least(1e-9, {"model.mlp_ratio": m.mlp_ratio, "model.pred_mlp_ratio": m.pred_mlp_ratio})
    for width, heads in (("embed_dim", "num_heads"), ("pred_embed_dim", "pred_num_heads")):
        if widths[width] % widths[heads]:
            raise ConfigError(
                f"model.{width}={widths[width]} must be a multiple of "
                f"model.{heads}={widths[heads]} (every head gets an equal share)"
            )
    rates = {f"optim.{k}": getattr(o, k) for k in ("lr", "start_lr", "final_lr", "weight_decay")}
    _finite({**rates, "optim.final_weight_decay": o.final_weight_decay, "optim.eps": o.eps})
    _at_least(0, {**rates, "optim.final_weight_decay": o.final_weight_decay})
    _at_least(1e-30, {"optim.eps": o.eps, "optim.clip_grad": o.clip_grad})
    _finite({"optim.clip_grad": o.clip_grad})
    for beta in o.betas:
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"optim.betas={list(o.betas)}: each must lie in [0, 1) (got {beta})")
    _pair_in("optim.ema", o.ema, 0.0, 1.0, open_low=False)
    _at_least(0, {"data.num_workers": d.num_workers})
    _at_least(1, {"data.decode_threads": d.decode_threads, "data.frame_step": d.frame_step})
    _at_least(1, {"data.eval_clips_per_video": d.eval_clips_per_video})
    _at_least(1, {"data.clips_per_video": d.clips_per_video})
    _finite({"data.fps": d.fps})
    _at_least(1e-9, {"data.fps": d.fps})
    _pair_in("data.crop_scale", d.crop_scale, 0.0, 1.0, open_low=True)
    _pair_in("data.crop_aspect", d.crop_aspect, 0.0, math.inf, open_low=True)
    _at_least(0, {f"monitor.{k}": getattr(mon, k) for k in ("rankme_every", "online_probe_every")})
    _at_least(1, {"monitor.rankme_clips": mon.rankme_clips})
    _at_least(1, {"monitor.online_probe_clips": mon.online_probe_clips})
    if cfg.keep_every is not None:
        _at_least(1, {"keep_every": cfg.keep_every})
    if d.source == "synthetic":
        if m.img_size < 16:
            raise ConfigError(
                f"model.img_size={m.img_size}: the physics world (data.source=synthetic) draws "
                "clips of at least 16 px"
            )
        _at_least(1, {"data.synthetic.num_clips": d.synthetic.num_clips})
        _at_least(0, {"data.synthetic.noise": d.synthetic.noise})


def _check_context_loss(cfg: Config) -> None:
    c = cfg.context_loss
    start, end = c.ramp
    if c.weight < 0 or not 0 <= start <= end:
        raise ConfigError(
            f"context_loss.weight={c.weight} must be >= 0 and context_loss.ramp={list(c.ramp)} "
            "two steps 0 <= start <= end"
        )
    if c.weight == 0:
        return
    if cfg.target != "features":
        raise ConfigError(
            "context_loss.weight > 0 regresses the target encoder's features of the visible "
            "tokens; target=pixels has none: set context_loss.weight=0 or target=features"
        )
    if not cfg.model.pred_context_head:
        raise ConfigError(
            "context_loss.weight > 0 needs the predictor's context head: add "
            "model.pred_context_head=true"
        )


def validate(cfg: Config) -> None:
    """Cross-field checks that a single field's type cannot express."""
    validate_fields(cfg)
    m = cfg.model
    if m.num_frames % m.tubelet_size:
        raise ConfigError(
            f"model.num_frames={m.num_frames} must be a multiple of "
            f"model.tubelet_size={m.tubelet_size}"
        )
    if m.img_size % m.patch_size:
        raise ConfigError(
            f"model.img_size={m.img_size} must be a multiple of model.patch_size={m.patch_size}"
        )
    positive = {
        "steps": cfg.steps,
        "data.batch_size": cfg.data.batch_size,
        "monitor.log_every": cfg.monitor.log_every,
        "checkpoint_every": cfg.checkpoint_every,
    }
    for key, value in positive.items():
        if value < 1:
            raise ConfigError(f"{key}={value} must be at least 1")
    if cfg.data.micro_batch_size is not None and cfg.data.micro_batch_size < 1:
        raise ConfigError(f"data.micro_batch_size={cfg.data.micro_batch_size} must be at least 1")
    if not 0 <= cfg.optim.warmup_steps <= cfg.steps:
        raise ConfigError(
            f"optim.warmup_steps={cfg.optim.warmup_steps} must lie in [0, steps={cfg.steps}]"
        )
    if not 0.0 < cfg.mask.tube_ratio < 1.0:
        raise ConfigError(
            f"mask.tube_ratio={cfg.mask.tube_ratio} must lie strictly between 0 and 1"
        )
    time_tokens = m.num_frames // m.tubelet_size
    if cfg.mask.strategy == "causal" and not (
        0 < cfg.mask.causal_context_frames < m.num_frames
        and cfg.mask.causal_context_frames % m.tubelet_size == 0
    ):
        raise ConfigError(
            f"mask.causal_context_frames={cfg.mask.causal_context_frames} must be a multiple of "
            f"model.tubelet_size={m.tubelet_size} between 1 and "
            f"model.num_frames-1={m.num_frames - 1}"
            f" ({time_tokens} time steps of tokens)"
        )
    if cfg.target == "pixels" and cfg.feature_loss != "l1":
        raise ConfigError(
            f"feature_loss={cfg.feature_loss} applies to feature targets; target=pixels always "
            "regresses with the squared error"
        )
    if cfg.sigreg.weight < 0 or min(cfg.sigreg.slices, cfg.sigreg.tokens) < 1:
        raise ConfigError(
            f"sigreg.weight={cfg.sigreg.weight} must be >= 0, sigreg.slices="
            f"{cfg.sigreg.slices} and sigreg.tokens={cfg.sigreg.tokens} at least 1"
        )
    _check_context_loss(cfg)
    if m.pred_levels > 1 and (m.pred_levels > m.hierarchical_levels or cfg.target != "features"):
        raise ConfigError(
            f"model.pred_levels={m.pred_levels} predicts that many encoder levels: it needs "
            f"model.hierarchical_levels >= {m.pred_levels} (now {m.hierarchical_levels}) and "
            f"target=features (now {cfg.target})"
        )
    if cfg.mask.future_sets < 0:
        raise ConfigError(f"mask.future_sets={cfg.mask.future_sets} must be 0 or more")
    if cfg.mask.future_context_frames is not None:
        lo, hi = cfg.mask.future_context_frames
        if not (
            0 < lo <= hi < m.num_frames and lo % m.tubelet_size == 0 and hi % m.tubelet_size == 0
        ):
            raise ConfigError(
                f"mask.future_context_frames={list(cfg.mask.future_context_frames)} must be "
                f"multiples of model.tubelet_size={m.tubelet_size} with "
                f"0 < low <= high < model.num_frames={m.num_frames}"
            )
    if cfg.mask.strategy == "multiblock" and not cfg.mask.multiblock:
        raise ConfigError("mask.multiblock needs at least one mask set")
    for i, spec in enumerate(cfg.mask.multiblock):
        lo, hi = spec.spatial_scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ConfigError(
                f"mask.multiblock[{i}].spatial_scale={spec.spatial_scale} must lie in (0, 1]"
            )
        if spec.num_blocks < 1:
            raise ConfigError(f"mask.multiblock[{i}].num_blocks must be at least 1")
    if not 0.0 <= cfg.data.max_bad_fraction <= 1.0:
        raise ConfigError(f"data.max_bad_fraction={cfg.data.max_bad_fraction} must lie in [0, 1]")
    if cfg.data.source != "synthetic" and not cfg.data.path:
        raise ConfigError(f"data.source={cfg.data.source} needs data.path=FOLDER_OR_LIST_FILE")
