"""Clips per second the procedural physics world renders in one process.

    PYTHONPATH=. python benchmarks/synthetic_throughput.py [--sizes 64 128 224] [--threads 1]

Defaults to one torch thread, which is what each DataLoader worker gets.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from train.data.synthetic import PhysicsWorld


def clips_per_second(world: PhysicsWorld, clips: int, repeats: int) -> float:
    """Median over `repeats` timed passes of `clips` consecutive items, after one warm-up item."""
    world[0]  # builds the noise bank, which is a once-per-process cost
    rates = []
    for repeat in range(repeats):
        start = time.perf_counter()
        for index in range(repeat * clips, (repeat + 1) * clips):
            world[index]
        rates.append(clips / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 224])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--max-objects", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="rough length of one repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.frames} frames")
    for size in args.sizes:
        world = PhysicsWorld(
            num_clips=10**7, num_frames=args.frames, img_size=size, max_objects=args.max_objects
        )
        # Size each repeat from a short probe so every image size takes about the same time.
        probe = clips_per_second(world, clips=10, repeats=1)
        clips = max(10, round(probe * args.seconds))
        rate = clips_per_second(world, clips=clips, repeats=args.repeats)
        shape = f"{args.frames} x {size} x {size}"
        print(f"{shape}: {rate:8.1f} clips/s  (median of {args.repeats} x {clips} clips)")


if __name__ == "__main__":
    main()
