"""What the model believes is under a mask, as frames: the decoded prediction composited into
the clip, with the mask outlined, and the per-frame latent prediction error ("surprise").

    bundle = load_bundle()
    clip = bundle.fit_clip(frames)                     # any uint8 video -> the model's size
    mask = bundle.painted_mask(painted, TemporalExtent.from_frame(4))
    shown = render_prediction(bundle, clip, mask)      # shown.composited: uint8 [T, H, W, 3]

Surprise follows intuitive-physics work on V-JEPA: the L1 distance between the predictor's
latents and the target encoder's (layer-normed) latents, averaged over the masked tokens of each
time step. High where what happened differs from what the model expected.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import channels_last, check_model_clip
from decoder.inference import pixels_to_clips
from decoder.latents import predicted_latents, target_latents, token_mask_set
from decoder.masks import check_token_mask, token_mask_to_pixels
from train.data import normalize_clip
from train.tokens import TokenGeometry

OUTLINE_COLOUR = (255, 221, 0)
# Masked area of the input frames: the model sees nothing there; mid grey says so.
HIDDEN_COLOUR = (128, 128, 128)


@dataclass
class Rendered:
    """Frames are uint8 [T, H, W, 3]; masks and curves numpy arrays."""

    original: np.ndarray
    masked: np.ndarray  # what the encoder sees: the masked area grey, outlined
    composited: np.ndarray  # the decoded prediction inside the mask, outlined; original outside
    decoded: np.ndarray  # the decoded prediction inside the mask, black outside
    token_mask: np.ndarray  # bool [T', H', W']
    pixel_mask: np.ndarray  # bool [T, H, W]
    surprise: np.ndarray  # float32 [T]: per frame, NaN for frames with no masked token
    surprise_per_step: np.ndarray  # float32 [T']: per token time step, NaN where unmasked
    token_errors: np.ndarray  # float32 [T', H', W']: each masked token's surprise, NaN where seen
    mask_index: int  # the predictor mask token used
    # uint8 [T, H, W, 3]: the decoder on the *target* latents (the truth), black outside the
    # mask; only with `render_prediction(..., decode_target=True)`.
    decoded_target: np.ndarray | None = None


def outline(pixel_mask: torch.Tensor) -> torch.Tensor:
    """bool [T, H, W]: masked pixels with a 4-neighbour outside the mask (or on the border)."""
    padded = torch.nn.functional.pad(pixel_mask[:, None].float(), (1, 1, 1, 1), value=0.0)
    inner = padded[..., 1:-1, 1:-1]
    up, down = padded[..., :-2, 1:-1], padded[..., 2:, 1:-1]
    left, right = padded[..., 1:-1, :-2], padded[..., 1:-1, 2:]
    neighbours = torch.stack([up, down, left, right])
    return ((inner > 0) & (neighbours.min(0).values == 0))[:, 0]


def _paint(frames: torch.Tensor, where: torch.Tensor, colour: tuple[int, int, int]) -> torch.Tensor:
    """frames uint8 [T, H, W, 3], where bool [T, H, W] -> a copy with those pixels in `colour`."""
    out = frames.clone()
    out[where] = torch.tensor(colour, dtype=torch.uint8)
    return out


def token_errors(
    predicted: torch.Tensor,
    target: torch.Tensor,
    target_idx: torch.Tensor,
    grid: tuple[int, int, int],
) -> np.ndarray:
    """float32 [T', H', W']: one clip's mean |predicted - target| per masked token (latents
    [1, K, D] at `target_idx` [1, K]), NaN at the tokens the encoder saw."""
    errors = (predicted.float() - target.float()).abs().mean(-1)[0].cpu().numpy()
    out = np.full(int(np.prod(grid)), np.nan, np.float32)
    out[target_idx[0].cpu().numpy()] = errors
    return out.reshape(grid)


def masked_surprise(
    errors: np.ndarray, geometry: TokenGeometry
) -> tuple[torch.Tensor, torch.Tensor]:
    """Surprise of one clip from its `token_errors` grid [T', H', W'] (NaN where seen): the
    masked tokens' errors averaged per time step ([T'], NaN where nothing is masked) and
    repeated per frame."""
    flat = torch.from_numpy(errors).reshape(errors.shape[0], -1)
    counts = (~flat.isnan()).sum(1)
    per_step = flat.nan_to_num().sum(1) / counts.clamp(min=1)
    per_step[counts == 0] = float("nan")
    return per_step, per_step.repeat_interleave(geometry.tubelet_size)


@torch.no_grad()
def render_prediction(
    bundle: Bundle,
    clip_uint8: torch.Tensor | np.ndarray,
    target_mask: torch.Tensor | np.ndarray,
    mask_index: int | None = None,
    decode_target: bool = False,
) -> Rendered:
    """Decode what the model predicts under `target_mask` (token mask [T', H', W'] or flat).

    `clip_uint8`: uint8 [T, H, W, 3] or [3, T, H, W] at the model's exact size (fit others with
    `bundle.fit_clip`). `mask_index`: the predictor mask token; by default the rule of
    `decoder.masks.mask_index_for` (pass the preset's own with `bundle.preset_mask`).
    `decode_target`: also decode the target latents (`Rendered.decoded_target`), from the same
    pass of the target encoder.
    """
    geometry = bundle.geometry
    clip = check_model_clip(clip_uint8, geometry)
    mask = check_token_mask(target_mask, geometry)
    if mask_index is None:
        mask_index = bundle.mask_index_for(mask)
    device = bundle.device
    clips = normalize_clip(clip[None].to(device))
    masks = token_mask_set(mask[None].to(device))
    pretrained = bundle.pretrained
    predicted = predicted_latents(pretrained, clips, masks, mask_index)
    target = target_latents(pretrained, clips, masks)
    pixels = bundle.decoder(predicted, masks.target_idx, masks.target_valid)
    decoded = pixels_to_clips(pixels, masks, geometry)[0].cpu()
    decoded_target = None
    if decode_target:
        target_pixels = bundle.decoder(target, masks.target_idx, masks.target_valid)
        decoded_target = channels_last(pixels_to_clips(target_pixels, masks, geometry)[0].cpu())

    errors = token_errors(predicted, target, masks.target_idx, geometry.grid)
    per_step, per_frame = masked_surprise(errors, geometry)

    pixel_mask = token_mask_to_pixels(mask, geometry)
    edge = outline(pixel_mask)
    original = channels_last(clip)
    composited = torch.where(pixel_mask[..., None], channels_last(decoded), original)
    return Rendered(
        original=original.numpy(),
        masked=_paint(_paint(original, pixel_mask, HIDDEN_COLOUR), edge, OUTLINE_COLOUR).numpy(),
        composited=_paint(composited, edge, OUTLINE_COLOUR).numpy(),
        decoded=channels_last(decoded).numpy(),
        token_mask=mask.numpy(),
        pixel_mask=pixel_mask.numpy(),
        surprise=per_frame.numpy().astype(np.float32),
        surprise_per_step=per_step.numpy().astype(np.float32),
        token_errors=errors,
        mask_index=int(mask_index),
        decoded_target=None if decoded_target is None else decoded_target.numpy(),
    )
