"""Scoring ways of filling a masked region on held-out clips, per mask family.

A method maps a batch (uint8 clips, token masks, predictor mask tokens) to uint8 clips with the
masked region filled; scores are PSNR and SSIM inside the region (decoder/quality.py), averaged
over clips. The same held-out clips and masks are shown to every method.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from decoder.batches import DecoderBatch, held_out_batch, held_out_dataset
from decoder.inference import LatentSource, decode_clips
from decoder.masks import TokenGeometry, token_mask_to_pixels
from decoder.model import PixelDecoder
from decoder.quality import mean_colour_fill, nearest_visible_copy, region_scores
from train.config import Config
from train.pretrained import Pretrained

Fill = Callable[[DecoderBatch], torch.Tensor]


@dataclass
class Method:
    name: str
    fill: Fill


def decoder_method(
    name: str,
    pretrained: Pretrained,
    decoder: PixelDecoder,
    source: LatentSource = "predicted",
    mask_index: int | None = None,
) -> Method:
    """The decoder's fill; `mask_index` forces one predictor token instead of the masks' own."""

    def fill(batch: DecoderBatch) -> torch.Tensor:
        index = batch.mask_index if mask_index is None else mask_index
        return decode_clips(pretrained, decoder, batch.clips, batch.token_masks, index, source)

    return Method(name, fill)


def baseline_methods(geometry: TokenGeometry) -> list[Method]:
    def mean_colour(batch: DecoderBatch) -> torch.Tensor:
        return torch.stack(
            [
                mean_colour_fill(c, token_mask_to_pixels(m, geometry))
                for c, m in zip(batch.clips, batch.token_masks)
            ]
        )

    def nearest_copy(batch: DecoderBatch) -> torch.Tensor:
        return torch.stack(
            [nearest_visible_copy(c, m, geometry) for c, m in zip(batch.clips, batch.token_masks)]
        )

    return [Method("mean colour", mean_colour), Method("nearest visible copy", nearest_copy)]


def score_fill(filled: torch.Tensor, batch: DecoderBatch, geometry: TokenGeometry):
    """Mean PSNR and SSIM in the masked region over the batch's clips."""
    scores = [
        region_scores(f, c, token_mask_to_pixels(m, geometry))
        for f, c, m in zip(filled.cpu(), batch.clips.cpu(), batch.token_masks.cpu())
    ]
    return {key: sum(s[key] for s in scores) / len(scores) for key in ("psnr", "ssim")}


def held_out_batches(
    run_config: Config, families: tuple[str, ...], clips: int, seed: int = 0
) -> dict[str, DecoderBatch]:
    dataset = held_out_dataset(run_config)
    return {f: held_out_batch(run_config, f, clips, seed, dataset=dataset) for f in families}


@torch.no_grad()
def score_methods(
    batches: dict[str, DecoderBatch],
    methods: list[Method],
    geometry: TokenGeometry,
    chunk: int = 32,
) -> dict[str, dict[str, dict[str, float]]]:
    """{family: {method: {"psnr", "ssim"}}}, each method run in chunks of `chunk` clips."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for family, batch in batches.items():
        results[family] = {}
        for method in methods:
            parts = []
            for start in range(0, batch.clips.shape[0], chunk):
                part = DecoderBatch(*(t[start : start + chunk] for t in vars(batch).values()))
                parts.append((score_fill(method.fill(part), part, geometry), part.clips.shape[0]))
            total = sum(n for _, n in parts)
            results[family][method.name] = {
                key: sum(s[key] * n for s, n in parts) / total for key in ("psnr", "ssim")
            }
    return results
