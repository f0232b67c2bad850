"""Load a run's models from a checkpoint (or a run directory) for evaluation, decoding, the app.

Loading is strict: a missing, unexpected or mis-shaped key is an error that lists the keys,
never a silently half-loaded model.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from train.checkpoint import CheckpointError, load_checkpoint
from train.config import Config, ConfigError, from_dict
from train.masks import num_mask_sets
from train.models import Predictor, VisionTransformer, build_encoder, build_predictor
from train.objectives import build_objective


@dataclass
class Pretrained:
    config: Config
    encoder: VisionTransformer
    predictor: Predictor
    target_encoder: VisionTransformer
    step: int

    def to(self, device: torch.device | str) -> Pretrained:
        for module in (self.encoder, self.predictor, self.target_encoder):
            module.to(device)
        return self

    def eval(self) -> Pretrained:
        for module in (self.encoder, self.predictor, self.target_encoder):
            module.eval().requires_grad_(False)
        return self

    def predict(
        self,
        clips: torch.Tensor,
        context_idx: torch.Tensor,
        target_idx: torch.Tensor,
        context_valid: torch.Tensor | None = None,
        target_valid: torch.Tensor | None = None,
        mask_index: int = 0,
    ) -> torch.Tensor:
        """The predicted latents [B, Nt, out] at `target_idx` from the context tokens alone: what
        surprise and the decoder compare with the target encoder's features (or pixels).

        A V-JEPA 2.1 predictor that reads several encoder levels gets them, and of the levels it
        predicts the last is returned: the one the encoder gives as its features. A 2.1 model
        distilled from a wider teacher predicts that teacher's features, which the file does
        not hold: refused, since nothing of this model's own can be compared with them.
        """
        model = self.config.model
        if model.pred_out_dim is not None and model.pred_out_dim != self.encoder.embed_dim:
            raise ValueError(
                f"this model's predictor predicts {model.pred_out_dim}-wide features of the "
                f"teacher it was distilled from, not its own {self.encoder.embed_dim}-wide "
                "ones, and the teacher is not in the file: predictions and surprise cannot be "
                "compared with anything here. Features and Embeddings work with its encoder"
            )
        clips = self.encoder.as_clip(clips)
        levels = self.predictor.levels
        context = self.encoder(clips, keep=context_idx, keep_valid=context_valid, levels=levels)
        predicted = self.predictor(
            context,
            context_idx,
            target_idx,
            context_valid=context_valid,
            target_valid=target_valid,
            mask_index=mask_index,
            grid=self.encoder.token_grid(clips),
            modality="image" if self.encoder.is_image(clips) else "video",
        )
        return predicted[..., -(predicted.shape[-1] // levels) :]


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict=True) with a message that lists every disagreement at once."""
    state_problems(module, state, what)
    module.load_state_dict(state, strict=True)


def state_problems(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """CheckpointError listing every missing, unexpected and mis-shaped key at once, if any."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {shape_in(state, k)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != shape_in(state, k)
    )
    problems = [
        f"{label} ({len(keys)}): {', '.join(keys[:8])}{' ...' if len(keys) > 8 else ''}"
        for label, keys in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("shape mismatch", mismatched),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(f"{what} does not match its checkpoint: " + "; ".join(problems))


def build_models(cfg: Config, shared_target: bool = False) -> Pretrained:
    """Encoder, predictor and target encoder (a copy of the encoder) as a run initialises them.

    The order of construction is what the random state feeds: after `torch.manual_seed(seed)`
    this gives the weights of the run's step 0, which the trainer and the step-0 baselines of
    the evaluations rely on. `shared_target`: the target encoder is the encoder module itself,
    not a copy (they are equal at step 0), for inference in half the memory; never for training.
    """
    encoder = build_encoder(cfg.model)
    objective = build_objective(cfg.target, cfg.model.tubelet_size, cfg.model.patch_size)
    predictor = build_predictor(
        cfg.model, encoder.grid_size, num_mask_sets(cfg.mask), objective.output_dim(encoder)
    )
    target_encoder = encoder if shared_target else copy.deepcopy(encoder).requires_grad_(False)
    return Pretrained(cfg, encoder, predictor, target_encoder, step=0)


def initial_models(cfg: Config, shared_target: bool = False) -> Pretrained:
    """The run's models at step 0 (the untrained baseline of the same architecture), in eval
    mode; the caller's random state is left untouched. `shared_target`: see build_models."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return build_models(cfg, shared_target).eval()


def models_from_state(state: dict, config: Config | None = None) -> Pretrained:
    """Models built from the checkpoint's own config and filled with its weights."""
    cfg = config or from_dict(Config, state["config"])
    models = build_models(cfg)
    load_strict(models.encoder, state["encoder"], "encoder")
    load_strict(models.predictor, state["predictor"], "predictor")
    load_strict(models.target_encoder, state["target_encoder"], "target_encoder")
    models.step = int(state.get("step", 0))
    return models


MODEL_PARTS = ("encoder", "predictor", "target_encoder")


class SafetensorsPart(Mapping[str, torch.Tensor]):
    """One part of a safetensors model file (`PART.NAME` tensors), read tensor by tensor when
    asked: opening a big model then holds one tensor of the file at a time, not the file.
    Shapes come from the header (`shape`), without reading any data."""

    def __init__(self, handle: Any, part: str, names: list[str]):
        self._handle, self._prefix, self._names = handle, f"{part}.", names

    def __getitem__(self, name: str) -> torch.Tensor:
        if name not in self._names:
            raise KeyError(name)
        return self._handle.get_tensor(self._prefix + name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self._handle.get_slice(self._prefix + name).get_shape())


def shape_in(state: Mapping[str, torch.Tensor], name: str) -> tuple[int, ...]:
    """A tensor's shape in a state dict, read from the header when the state is a file's."""
    return state.shape(name) if isinstance(state, SafetensorsPart) else tuple(state[name].shape)


def read_model_file(path: str | Path) -> tuple[dict[str, SafetensorsPart], dict]:
    """A safetensors model file -> (its parts, each read tensor by tensor; the header's metadata).

    Such a file names its tensors `PART.NAME` and keeps JSON strings in its metadata (at least
    the run's `config`); the workbench's bundles are such files, with a `decoder` part that
    only the decoder layer reads. safetensors never unpickles, so a file that is not one is
    refused without running anything.
    """
    path = Path(path)
    try:
        handle = safe_open(str(path), framework="pt")
        metadata = handle.metadata() or {}
        names: dict[str, list[str]] = {}
        for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
            part, _, name = key.partition(".")
            names.setdefault(part, []).append(name)
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{path} is not a readable safetensors model file: {err}") from err
    return {part: SafetensorsPart(handle, part, keys) for part, keys in names.items()}, metadata


def pretrained_from_model_file(
    parts: Mapping[str, Mapping[str, torch.Tensor]],
    metadata: dict,
    path: str | Path,
    dtype: torch.dtype = torch.float32,
) -> Pretrained:
    """The V-JEPA models of a safetensors model file, parameters in `dtype` (float32 unless
    asked), filled tensor by tensor from the file's parts (`read_model_file`)."""
    try:
        config = from_dict(Config, json.loads(metadata["config"]))
        step = json.loads(metadata.get("provenance", "{}")).get("pretrain", {}).get("steps", 0)
    except (KeyError, json.JSONDecodeError, ConfigError) as err:
        raise CheckpointError(f"{path}: its stored config is not valid here: {err}") from err
    missing = [part for part in MODEL_PARTS if part not in parts]
    if missing:
        raise CheckpointError(f"{path} holds no {', '.join(missing)} weights")
    # it imports this module
    from train.streamed_weights import empty_models, file_pages_dropper, fill_streamed

    # Filled tensor by tensor from the file (cast on the way), the file's pages handed back
    # after each: never the file and the models in memory at once. bf16 models are never built
    # in float32.
    models = build_models(config) if dtype == torch.float32 else empty_models(config, dtype)
    drop_file_pages = file_pages_dropper(Path(path))
    for part in MODEL_PARTS:
        fill_streamed(getattr(models, part), parts[part], part, lambda _t: drop_file_pages())
    models.step = step
    return models


def load_pretrained(path: str | Path, device: torch.device | str = "cpu") -> Pretrained:
    """A run directory, a checkpoint file or a safetensors model file (a workbench bundle)
    -> models in eval mode on `device`."""
    if Path(path).suffix == ".safetensors":
        pretrained = pretrained_from_model_file(*read_model_file(path), path)
    else:
        pretrained = models_from_state(load_checkpoint(path))
    return pretrained.to(device).eval()


# Weight precisions a model can be opened in for inference (`python -m workbench --weights`).
WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# The stated tolerance of bf16 weights: |predicted latents (bf16) - (fp32)|, as a fraction of the
# fp32 latents' std, at most this at the 99.9th percentile and on average (`bf16_gap`). Single
# values can stray further: up to 0.45 on the trained starter, whose tail is 0.02-0.04 and mean
# 0.002 (docs/training.md, "Big models on a CPU"; benchmarks/bf16_tolerance.py). The tests hold
# micro models to it (tests/test_big_model_options.py).
BF16_TAIL_DIFFERENCE = 0.1
BF16_MEAN_DIFFERENCE = 0.02
BF16_TAIL_QUANTILE = 0.999


def bf16_gap(reference: torch.Tensor, low: torch.Tensor) -> dict[str, float]:
    """max, mean and 99.9th percentile of |low - reference| over the reference's std."""
    gap = ((low.float() - reference.float()).abs() / reference.float().std()).flatten()
    sample = gap[:: max(1, gap.numel() // 2**24)]  # torch.quantile takes at most 2**24 values
    tail = torch.quantile(sample, BF16_TAIL_QUANTILE)
    return {"max": gap.max().item(), "mean": gap.mean().item(), "tail": tail.item()}


def within_bf16_tolerance(gap: dict[str, float]) -> bool:
    return gap["tail"] <= BF16_TAIL_DIFFERENCE and gap["mean"] <= BF16_MEAN_DIFFERENCE


def cast_weights(pretrained: Pretrained, dtype: torch.dtype) -> Pretrained:
    """The models with their parameters in `dtype` (bf16 halves their memory); they then compute
    in it (see train.models.vit.in_weight_dtype). Buffers, the fixed sin-cos position tables,
    stay float32: bf16 keeps 3 significant digits, too few for positions."""
    for module in (pretrained.encoder, pretrained.predictor, pretrained.target_encoder):
        for parameter in module.parameters():
            parameter.data = parameter.data.to(dtype)
    return pretrained


def resized_config(config: Config, num_frames: int | None, img_size: int | None) -> Config:
    """The config with another clip size (None keeps the model's own), for inference on a smaller
    input: RoPE needs nothing for another grid, and sin-cos tables are rebuilt exactly at the new
    grid when a clip of it comes (train.models.vit.positions_for). ConfigError when the size does
    not split into the model's tubelets."""
    model = config.model
    frames = model.num_frames if num_frames is None else int(num_frames)
    size = model.img_size if img_size is None else int(img_size)
    problems = []
    if frames < model.tubelet_size or frames % model.tubelet_size:
        problems.append(
            f"{frames} frames is not a positive multiple of the tubelet depth "
            f"({model.tubelet_size} frames): use {_multiples(model.num_frames, model.tubelet_size)}"
        )
    if size < model.patch_size or size % model.patch_size:
        problems.append(
            f"{size} px is not a positive multiple of the patch size ({model.patch_size} px): "
            f"use {_multiples(model.img_size, model.patch_size)}"
        )
    if problems:
        raise ConfigError("cannot resize the model's input: " + "; ".join(problems))
    return replace(config, model=replace(model, num_frames=frames, img_size=size))


def _multiples(native: int, unit: int) -> str:
    """A few valid sizes up to the model's own, e.g. '8, 16, ... (multiples of 8)'."""
    largest = max(native, unit)
    valid = list(range(unit, largest + 1, unit))
    shown = valid if len(valid) <= 4 else [*valid[:2], "...", valid[-1]]
    return f"{', '.join(map(str, shown))} (multiples of {unit})"
