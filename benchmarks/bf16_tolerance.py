"""How far bf16 weights move a model's predictions from fp32's, on any model the app opens.

    python benchmarks/bf16_tolerance.py MODEL [--clips 32] [--frames N] [--img-size S]

MODEL: a bundle (.safetensors), a checkpoint, or a run directory (a training or an imported
release). The model is opened twice as `--weights fp32` and `--weights bf16` open it (bf16 read
straight into bf16), and both predict the same held-out clips of the physics world under each
preset mask. Printed per mask: max, mean and 99.9th percentile of |bf16 - fp32| of the predicted
latents over the fp32 latents' standard deviation, against the stated tolerance
(train.pretrained.BF16_TAIL_DIFFERENCE, BF16_MEAN_DIFFERENCE). The clips are synthetic, so a
released model can be checked offline; they are rendered at the model's clip size (or --frames /
--img-size).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from decoder.batches import HELD_OUT_SEED_OFFSET
from decoder.bundle import load_bundle
from decoder.latents import predicted_latents, token_mask_set
from train.data.base import normalize_clip
from train.data.synthetic import PhysicsWorld
from train.pretrained import (
    BF16_MEAN_DIFFERENCE,
    BF16_TAIL_DIFFERENCE,
    bf16_gap,
    within_bf16_tolerance,
)
from workbench.bundles import OpenOptions, load_without_decoder, model_entry, opened_with

MASKS = ("multiblock-short", "multiblock-long", "causal")


def open_model(path: Path, options: OpenOptions):
    entry = model_entry(path)
    dtype = torch.bfloat16 if options.weights == "bf16" else torch.float32
    if entry.has_decoder:
        return opened_with(load_bundle(entry.path, weight_dtype=dtype), options)
    return opened_with(load_without_decoder(entry.path, dtype), options)


def gaps(
    path: Path, clips: int, frames: int | None, size: int | None
) -> dict[str, dict[str, float]]:
    """{mask: train.pretrained.bf16_gap} over `clips` held-out clips."""
    full = open_model(path, OpenOptions("fp32", frames, size))
    half = open_model(path, OpenOptions("bf16", frames, size))
    # The decoder's held-out world: a seed no training run draws from.
    world = PhysicsWorld(clips, full.num_frames, full.img_size, seed=HELD_OUT_SEED_OFFSET)
    batch = normalize_clip(torch.stack([world[i]["clip"] for i in range(clips)]))
    out = {}
    with torch.no_grad():
        for name in MASKS:
            mask, mask_index = full.preset_mask(name, seed=1)
            masks = token_mask_set(mask[None].expand(clips, *mask.shape))
            reference = predicted_latents(full.pretrained, batch, masks, mask_index)
            low = predicted_latents(half.pretrained, batch, masks, mask_index)
            out[name] = bf16_gap(reference, low)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--frames", type=int, default=None)
    parser.add_argument("--img-size", type=int, default=None)
    args = parser.parse_args()
    start = time.perf_counter()
    load = os.getloadavg()[0]
    results = gaps(args.model, args.clips, args.frames, args.img_size)
    print(f"{args.model}: {args.clips} held-out physics clips, load {load:.1f}")
    print(f"stated tolerance: 99.9% {BF16_TAIL_DIFFERENCE}, mean {BF16_MEAN_DIFFERENCE}")
    for name, gap in results.items():
        verdict = "within" if within_bf16_tolerance(gap) else "OUTSIDE"
        print(
            f"{name:18s} max {gap['max']:.4f}  mean {gap['mean']:.4f}  "
            f"99.9% {gap['tail']:.4f}  {verdict}"
        )
    print(f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
