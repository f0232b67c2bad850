"""The masking ratio a model really trains on: padded index lists (this project) versus
truncation of every sample to the batch minimum (the original code), per mask set.

    python benchmarks/mask_stats.py                    # paper geometry, 16 x 224 (8x14x14 tokens)
    python benchmarks/mask_stats.py --grid 4 8 8       # the tiny_cpu preset
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from train.config import MaskConfig
from train.data.base import draw_generator
from train.masks import build_masker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", type=int, nargs=3, default=[8, 14, 14], metavar=("T", "H", "W"))
    parser.add_argument("--batch", type=int, default=24, help="per-device batch")
    parser.add_argument("--batches", type=int, default=200)
    args = parser.parse_args()

    grid = tuple(args.grid)
    tokens = grid[0] * grid[1] * grid[2]
    masker = build_masker(MaskConfig(), grid, tubelet_size=2)
    names = ["short-range (8 x 0.15)", "long-range (2 x 0.7)"]
    exact, truncated, padding, context_loss = ([[], []] for _ in range(4))
    for b in range(args.batches):
        gens = [draw_generator(10_000 * b + i) for i in range(args.batch)]
        for k, mask_set in enumerate(masker(draw_generator(b), gens)):
            counts = mask_set.context_counts().float()
            exact[k].append(1 - counts.mean().item() / tokens)
            truncated[k].append(1 - counts.min().item() / tokens)
            padding[k].append(mask_set.padding_fraction())
            context_loss[k].append(1 - counts.min().item() / counts.mean().item())
    print(f"grid {grid} = {tokens} tokens, batch {args.batch}, {args.batches} batches\n")
    print(
        f"{'mask set':<24} {'ratio (padded)':>15} {'ratio (truncated)':>18} "
        f"{'context hidden by trunc.':>25} {'padding slots':>14}"
    )
    for k, name in enumerate(names):
        mean = statistics.mean
        print(
            f"{name:<24} {mean(exact[k]):>15.3f} {mean(truncated[k]):>18.3f} "
            f"{mean(context_loss[k]):>25.1%} {mean(padding[k]):>14.1%}"
        )


if __name__ == "__main__":
    main()
