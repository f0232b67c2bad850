"""Load a run's models from a checkpoint (or a run directory) for evaluation, decoding, the app.

Loading is strict: a missing, unexpected or mis-shaped key is an error that lists the keys,
never a silently half-loaded model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from train.checkpoint import CheckpointError, load_checkpoint
from train.config import Config, from_dict
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


def load_strict(module: nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict=True) with a message that lists every disagreement at once."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if own[k].shape != state[k].shape
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
    module.load_state_dict(state, strict=True)


def models_from_state(state: dict, config: Config | None = None) -> Pretrained:
    """Models built from the checkpoint's own config and filled with its weights."""
    cfg = config or from_dict(Config, state["config"])
    encoder = build_encoder(cfg.model)
    objective = build_objective(cfg.target, cfg.model.tubelet_size, cfg.model.patch_size)
    predictor = build_predictor(
        cfg.model, encoder.grid_size, num_mask_sets(cfg.mask), objective.output_dim(encoder)
    )
    target_encoder = build_encoder(cfg.model)
    load_strict(encoder, state["encoder"], "encoder")
    load_strict(predictor, state["predictor"], "predictor")
    load_strict(target_encoder, state["target_encoder"], "target_encoder")
    return Pretrained(cfg, encoder, predictor, target_encoder, int(state.get("step", 0)))


def load_pretrained(path: str | Path, device: torch.device | str = "cpu") -> Pretrained:
    """A run directory or checkpoint file -> models in eval mode on `device`."""
    return models_from_state(load_checkpoint(path)).to(device).eval()
