"""Predict without a decoder: what the model predicts under a mask, shown as latents.

A model with no pixel decoder cannot show its prediction as pixels, but its latents can be
compared directly: one PCA fitted on the target latents of every token of the clip maps both
the target encoder's latents and the predictor's latents of the masked region to RGB, the same
way. Where the two look alike, the prediction is close to what the clip holds. Outside the mask
both show the target colours dimmed, for orientation.

    view = latent_view(bundle, bundle.fit_clip(frames), token_mask, mask_index)
    view.target, view.predicted   # uint8 [T, H, W, 3], the same PCA colours
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import channels_last, check_model_clip
from decoder.latents import predicted_latents, token_mask_set
from decoder.masks import check_token_mask, token_mask_to_pixels
from decoder.render import HIDDEN_COLOUR, OUTLINE_COLOUR, masked_surprise, outline, token_errors
from train.data import normalize_clip
from train.objectives import build_objective, target_tokens
from workbench.features import fit_pca, token_map_to_frames

# Outside the mask the target colours are shown at this brightness: context, not the answer.
CONTEXT_BRIGHTNESS = 0.35


@dataclass
class LatentView:
    """Frames are uint8 [T, H, W, 3]; masks and curves numpy arrays."""

    original: np.ndarray
    masked: np.ndarray  # what the encoder sees: the masked area grey, outlined
    target: np.ndarray  # target latents in PCA colours inside the mask, outlined
    predicted: np.ndarray  # predicted latents in the same PCA colours inside the mask, outlined
    token_mask: np.ndarray  # bool [T', H', W']
    surprise: np.ndarray  # float32 [T]: per frame, NaN for frames with no masked token
    surprise_per_step: np.ndarray  # float32 [T']
    token_errors: np.ndarray  # float32 [T', H', W']: per masked token, NaN where seen
    mask_index: int
    explained: np.ndarray  # float [3]: share of the target latents' variance per colour


def _paint(frames: np.ndarray, where: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    out = frames.copy()
    out[where] = colour
    return out


@torch.no_grad()
def latent_view(
    bundle: Bundle,
    clip_uint8: torch.Tensor | np.ndarray,
    target_mask: torch.Tensor | np.ndarray,
    mask_index: int | None = None,
) -> LatentView:
    """The predicted and target latents of the masked region in PCA colours, and the surprise.

    Arguments as `decoder.render.render_prediction`'s; the bundle needs no decoder.
    """
    geometry = bundle.geometry
    clip = check_model_clip(clip_uint8, geometry)
    mask = check_token_mask(target_mask, geometry)
    if mask_index is None:
        mask_index = bundle.mask_index_for(mask)
    pretrained = bundle.pretrained
    clips = normalize_clip(clip[None].to(bundle.device))
    masks = token_mask_set(mask[None].to(bundle.device))
    predicted = predicted_latents(pretrained, clips, masks, mask_index)  # [1, K, D]
    model = pretrained.config.model
    objective = build_objective(pretrained.config.target, model.tubelet_size, model.patch_size)
    every_target = objective.targets(clips, pretrained.target_encoder).float()  # [1, N, D]
    target = target_tokens(every_target, masks.target_idx)  # [1, K, D]

    # Surprise exactly as the decoded view computes it.
    errors = token_errors(predicted, target, masks.target_idx, geometry.grid)
    per_step, per_frame = masked_surprise(errors, geometry)
    target_idx = masks.target_idx[0].cpu()

    # One PCA, fitted on the target latents of the whole clip, colours both.
    every = every_target[0].cpu().numpy()
    projection = fit_pca(every)
    context = (projection.rgb(every) * CONTEXT_BRIGHTNESS).astype(np.uint8)  # [N, 3]
    target_map, predicted_map = context.copy(), context.copy()
    hidden = target_idx.numpy()
    target_map[hidden] = projection.rgb(target[0].cpu().numpy())
    predicted_map[hidden] = projection.rgb(predicted[0].cpu().numpy())

    pixel_mask = token_mask_to_pixels(mask, geometry)
    edge = outline(pixel_mask).numpy()
    pixel_mask = pixel_mask.numpy()
    original = channels_last(clip).numpy()

    def frames(token_rgb: np.ndarray) -> np.ndarray:
        grid = token_rgb.reshape(*geometry.grid, 3)
        shown = token_map_to_frames(grid, geometry.tubelet_size, geometry.patch_size)
        return _paint(shown, edge, OUTLINE_COLOUR)

    return LatentView(
        original=original,
        masked=_paint(_paint(original, pixel_mask, HIDDEN_COLOUR), edge, OUTLINE_COLOUR),
        target=frames(target_map),
        predicted=frames(predicted_map),
        token_mask=mask.numpy(),
        surprise=per_frame.numpy().astype(np.float32),
        surprise_per_step=per_step.numpy().astype(np.float32),
        token_errors=errors,
        mask_index=int(mask_index),
        explained=projection.explained,
    )
