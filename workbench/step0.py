"""The untrained reference: the same architecture at step 0, on the same clip and mask.

A surprise of 0.4 means little alone; the same model before any training, shown the same clip
under the same mask, says what training changed. `train.pretrained.initial_models` rebuilds a
run's step-0 weights from its config and seed, so no checkpoint of step 0 is needed.

    per_frame = untrained_surprise(bundle, bundle.fit_clip(frames), token_mask, mask_index)
"""

from __future__ import annotations

import json

import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import check_model_clip
from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.masks import check_token_mask
from decoder.render import masked_surprise, token_errors
from train.config import to_dict
from train.data import normalize_clip
from train.pretrained import Pretrained, cast_weights, initial_models

# Step-0 models kept per architecture: a large imported model adds about half its memory for
# this (the encoder and predictor; the target encoder is shared).
MAX_CACHED = 2
_cache: dict[str, Pretrained] = {}


def untrained_models(bundle: Bundle) -> Pretrained:
    """The bundle's models at step 0 (same config and seed), on the bundle's device, with its
    weights' dtype (a model opened in bf16 keeps its reference in bf16 too)."""
    dtype = next(bundle.encoder.parameters()).dtype
    key = json.dumps([to_dict(bundle.config), str(dtype)], sort_keys=True, default=str)
    if key not in _cache:
        if len(_cache) >= MAX_CACHED:
            _cache.pop(next(iter(_cache)))
        # Eval mode, used under no_grad only; the target encoder shares the encoder's weights
        # (equal at step 0), so the reference costs one encoder's memory, not two.
        _cache[key] = cast_weights(initial_models(bundle.config, shared_target=True), dtype)
    return _cache[key].to(bundle.device)


@torch.no_grad()
def untrained_surprise(
    bundle: Bundle,
    clip_uint8: torch.Tensor | np.ndarray,
    target_mask: torch.Tensor | np.ndarray,
    mask_index: int,
) -> np.ndarray:
    """float32 [T]: the step-0 models' surprise per frame (NaN where nothing is masked),
    computed exactly as `decoder.render.render_prediction` computes the trained one."""
    geometry = bundle.geometry
    clip = check_model_clip(clip_uint8, geometry)
    mask = check_token_mask(target_mask, geometry)
    models = untrained_models(bundle)
    clips = normalize_clip(clip[None].to(bundle.device))
    masks = token_mask_set(mask[None].to(bundle.device))
    predicted = predicted_latents(models, clips, masks, mask_index)
    target = target_latents(models, clips, masks)
    errors = token_errors(predicted, target, masks.target_idx, geometry.grid)
    _, per_frame = masked_surprise(errors, geometry)
    return per_frame.numpy().astype(np.float32)
