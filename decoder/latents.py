"""What the decoder reads: latents of the masked tokens, from the frozen V-JEPA models.

`predicted_latents` is the product: the encoder sees only the context tokens (the tubelets the
mask leaves visible; the masked tubelets' pixels are never gathered), and the predictor turns
that context into a guess for every masked token. `target_latents` is the reference: what the
target encoder, which saw the whole clip, computes at the masked tokens, normalised the way the
predictor was trained to match (the run's own objective).
"""

from __future__ import annotations

import torch

from train.masks import MaskSet
from train.objectives import build_objective, target_tokens
from train.pretrained import Pretrained


def token_mask_set(token_masks: torch.Tensor) -> MaskSet:
    """Boolean token masks [B, T', H', W'] -> padded context and target index lists, on the
    masks' device."""
    masks = MaskSet.from_target_masks(list(token_masks.cpu()))
    return MaskSet(*(t.to(token_masks.device) for t in vars(masks).values()))


def predicted_latents(
    pretrained: Pretrained, clips: torch.Tensor, masks: MaskSet, mask_index: torch.Tensor | int
) -> torch.Tensor:
    """The predictor's output [B, K, D] at `masks.target_idx`, from the context tokens alone.

    clips: normalised [B, C, T, H, W]. `mask_index` is the predictor mask token, one for the
    batch or one per sample [B]; samples that share a token run through the predictor together.
    """
    batch = clips.shape[0]
    per_sample = torch.as_tensor(mask_index, device=clips.device).expand(batch)
    out: torch.Tensor | None = None
    for index in per_sample.unique().tolist():
        rows = (per_sample == index).nonzero().squeeze(1)
        predicted = pretrained.predict(
            clips[rows],
            masks.context_idx[rows],
            masks.target_idx[rows],
            context_valid=masks.context_valid[rows],
            target_valid=masks.target_valid[rows],
            mask_index=int(index),
        ).float()
        if out is None:
            out = predicted.new_zeros(batch, *predicted.shape[1:])
        out[rows] = predicted
    return out


def target_latents(pretrained: Pretrained, clips: torch.Tensor, masks: MaskSet) -> torch.Tensor:
    """The run's regression targets [B, K, D] at `masks.target_idx` (target encoder, whole clip)."""
    model = pretrained.config.model
    objective = build_objective(pretrained.config.target, model.tubelet_size, model.patch_size)
    return target_tokens(objective.targets(clips, pretrained.target_encoder), masks.target_idx)
