"""The comparison row of Predict: is a weak result the predictor's or the decoder's?

Beside the decoded prediction it shows what the same decoder makes of the *target* latents
(the truth, from the target encoder that saw the whole clip) and the mean-colour fill (no
learning at all), each with its PSNR inside the mask. A decoded target far better than the
prediction points at the predictor; one no better than the mean colour, at the decoder.

    rendered = render_prediction(bundle, clip, mask, mask_index, decode_target=True)
    row = compare(bundle, clip, rendered)   # row.psnr, row.line(), row.target, row.mean_fill
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from decoder.bundle import Bundle
from decoder.clips import channels_last, check_model_clip
from decoder.masks import token_mask_to_pixels
from decoder.quality import mean_colour_fill, psnr_in_region
from decoder.render import OUTLINE_COLOUR, Rendered, outline

PREDICTION, TARGET, MEAN_COLOUR = "prediction", "decoded target latents", "mean-colour fill"


@dataclass
class Comparison:
    """Frames uint8 [T, H, W, 3]: the method inside the mask (outlined), the original outside."""

    prediction: np.ndarray
    target: np.ndarray
    mean_fill: np.ndarray
    psnr: dict[str, float]  # PREDICTION, TARGET, MEAN_COLOUR -> dB over the masked pixels

    def line(self) -> str:
        cells = ", ".join(f"{name} **{value:.2f} dB**" for name, value in self.psnr.items())
        return (
            f"PSNR inside the mask (higher is closer to the clip): {cells}. The decoded target "
            "latents show what the decoder makes of the truth; the mean-colour fill needs no "
            "learning."
        )


@torch.no_grad()
def compare(
    bundle: Bundle, clip_uint8: torch.Tensor | np.ndarray, rendered: Rendered
) -> Comparison:
    """The comparison row for a prediction `rendered` from `clip_uint8` (the model's size),
    rendered with `decode_target=True` (the decoded target comes from the prediction's own pass
    of the target encoder)."""
    if not bundle.has_decoder:
        raise ValueError("this model has no pixel decoder: there is nothing decoded to compare")
    if rendered.decoded_target is None:
        raise ValueError("render the prediction with decode_target=True to compare it")
    clip = check_model_clip(clip_uint8, bundle.geometry)  # uint8 [3, T, H, W]
    pixel_mask = token_mask_to_pixels(torch.from_numpy(rendered.token_mask), bundle.geometry)
    decoded_prediction = torch.from_numpy(rendered.decoded).permute(3, 0, 1, 2)
    decoded_target = torch.from_numpy(rendered.decoded_target).permute(3, 0, 1, 2)
    filled = {
        PREDICTION: torch.where(pixel_mask, decoded_prediction, clip),
        TARGET: torch.where(pixel_mask, decoded_target, clip),
        MEAN_COLOUR: mean_colour_fill(clip, pixel_mask),
    }
    psnr = {name: psnr_in_region(fill, clip, pixel_mask) for name, fill in filled.items()}
    edge = outline(pixel_mask).numpy()

    def shown(frames: torch.Tensor) -> np.ndarray:
        out = channels_last(frames).numpy().copy()
        out[edge] = OUTLINE_COLOUR
        return out

    return Comparison(
        prediction=shown(filled[PREDICTION]),
        target=shown(filled[TARGET]),
        mean_fill=shown(filled[MEAN_COLOUR]),
        psnr=psnr,
    )
