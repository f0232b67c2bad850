"""Scoring ways of filling a masked region on held-out clips, per mask family.

A method maps a batch (uint8 clips, token masks, predictor mask tokens) to uint8 clips with the
masked region filled; scores are PSNR and SSIM inside the region (decoder/quality.py), averaged
over clips. The same held-out clips and masks are shown to every method. On the physics world,
object-aware scores (decoder/objects.py) say whether the fill puts the hidden objects where
they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from decoder.batches import DecoderBatch, held_out_batch, held_out_dataset
from decoder.inference import LatentSource, decode_clips
from decoder.masks import token_mask_to_pixels
from decoder.model import PixelDecoder
from decoder.objects import ObjectLayers, object_layers, object_scores
from decoder.quality import mean_colour_fill, nearest_visible_copy, region_scores
from train.config import Config
from train.data.synthetic import PhysicsWorld
from train.pretrained import Pretrained
from train.tokens import TokenGeometry

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


def score_fill(
    filled: torch.Tensor,
    batch: DecoderBatch,
    geometry: TokenGeometry,
    objects: ObjectLayers | None = None,
) -> dict[str, float]:
    """Mean PSNR and SSIM in the masked region over the batch's clips (and the object-aware
    scores, with `objects`)."""
    return _means(_score_sums(filled, batch, geometry, objects))


def _score_sums(
    filled: torch.Tensor,
    batch: DecoderBatch,
    geometry: TokenGeometry,
    objects: ObjectLayers | None = None,
) -> dict[str, float]:
    """Sums over the batch's clips (divide by the counts): "psnr" and "ssim" in the masked
    region ("clips"); with `objects`, "object_psnr" over clips whose mask hides object pixels
    ("object_clips") and "centre_px" over frames that count ("centre_frames")."""
    sums = dict.fromkeys(("psnr", "ssim", "object_psnr", "centre_px"), 0.0)
    sums.update(clips=0.0, object_clips=0.0, centre_frames=0.0)
    for i, (f, c, m) in enumerate(zip(filled.cpu(), batch.clips.cpu(), batch.token_masks.cpu())):
        pixel_mask = token_mask_to_pixels(m, geometry)
        region = region_scores(f, c, pixel_mask)
        sums["psnr"] += region["psnr"]
        sums["ssim"] += region["ssim"]
        sums["clips"] += 1
        if objects is None:
            continue
        found = object_scores(f, c, pixel_mask, objects.covered[i], objects.empty_scene[i])
        if found is None:
            continue
        sums["object_psnr"] += found["object_psnr"]
        sums["object_clips"] += 1
        if found["frames"]:
            sums["centre_px"] += found["centre_px"] * found["frames"]
            sums["centre_frames"] += found["frames"]
    return sums


def _means(sums: dict[str, float]) -> dict[str, float]:
    means = {key: sums[key] / sums["clips"] for key in ("psnr", "ssim")}
    if sums["object_clips"]:
        means["object_psnr"] = sums["object_psnr"] / sums["object_clips"]
        means["object_clips"] = sums["object_clips"]
    if sums["centre_frames"]:
        means["centre_px"] = sums["centre_px"] / sums["centre_frames"]
        means["centre_frames"] = sums["centre_frames"]
    return means


def held_out_batches(
    run_config: Config, families: tuple[str, ...], clips: int, seed: int = 0
) -> dict[str, DecoderBatch]:
    dataset = held_out_dataset(run_config)
    return {f: held_out_batch(run_config, f, clips, seed, dataset=dataset) for f in families}


def held_out_objects(run_config: Config, clips: int) -> ObjectLayers | None:
    """Object layers of the first `clips` held-out clips (what `held_out_batch` draws), or
    None when the data is not the physics world (real files carry no object masks)."""
    dataset = held_out_dataset(run_config)
    if not isinstance(dataset, PhysicsWorld):
        return None
    return object_layers(dataset, range(clips))


@torch.no_grad()
def score_methods(
    batches: dict[str, DecoderBatch],
    methods: list[Method],
    geometry: TokenGeometry,
    chunk: int = 32,
    objects: ObjectLayers | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """{family: {method: {"psnr", "ssim"[, "object_psnr", "centre_px", ...]}}}, each method
    run in chunks of `chunk` clips. `objects` (from `held_out_objects`) covers the batches'
    clips in order, the same clips for every family."""
    results: dict[str, dict[str, dict[str, float]]] = {}
    for family, batch in batches.items():
        results[family] = {}
        for method in methods:
            sums: dict[str, float] = {}
            for start in range(0, batch.clips.shape[0], chunk):
                part = DecoderBatch(*(t[start : start + chunk] for t in vars(batch).values()))
                layers = None
                if objects is not None:
                    layers = ObjectLayers(
                        *(t[start : start + chunk] for t in vars(objects).values())
                    )
                scored = _score_sums(method.fill(part), part, geometry, layers)
                sums = {key: sums.get(key, 0.0) + value for key, value in scored.items()}
            results[family][method.name] = _means(sums)
    return results
