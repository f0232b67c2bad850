"""A one-time pre-resize of a video dataset: decode each video once, write a smaller copy.

    python -m train.data.cache LIST_OR_FOLDER OUT --short-side 256

Training decodes a 720p or 4K file at full size on every draw and throws most pixels away;
a copy with the short side at 256 (what the 224 px crops need, see transforms.eval_short_side)
decodes several times faster. The copies go below OUT, mirroring the source's folders, and
OUT/<list name> (a list file as `listfile.py` reads it, labels kept as written) names them:
point `data.path` at it.

Copies: H.264 / yuv420p .mp4 at the source's average frame rate, displayed orientation (a phone
video's rotation is applied to the pixels, as the dataset's decoder applies it), aspect kept,
never enlarged, even sides (4:2:0 and the encoder need them). A copy is written to a `.part`
file and renamed when complete, so a rerun skips exactly the finished copies (resume). An
unreadable source is named with the reason and left out of the list; the command goes on and
fails (exit 1) only when no copy exists at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch

from train.data.base import DataError
from train.data.files import UnreadableError, display_name, list_media
from train.data.listfile import read_list_entries
from train.data.reader import decode_size, open_video, read_frame_size, read_frames
from train.data.video import VIDEO_EXTENSIONS

MIN_SHORT_SIDE = 16
FOLDER_LIST_NAME = "videos.csv"  # the list written for a folder source
DECODE_CHUNK = 32  # frames decoded per call: bounded memory whatever the video's length


@dataclass(frozen=True)
class Job:
    """One source video and where its copy goes."""

    source: Path
    relative: Path  # the copy's path below OUT, also how the new list names it
    label: str | None  # as written in the source list (None: unlabelled)


@dataclass(frozen=True)
class Outcome:
    job: Job
    status: str  # "converted", "present" (an earlier run's copy) or "unreadable"
    reason: str = ""


# ---------------------------------------------------------------------------------------------
# Sizes and the streaming writer.


def copy_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """The copy's (width, height): `decode_size`'s, each side rounded down to even."""
    out_w, out_h = decode_size(width, height, short_side)
    return max(2, out_w - out_w % 2), max(2, out_h - out_h % 2)


class Mp4Writer:
    """Frames in, an H.264 / yuv420p .mp4 out, one frame at a time (the settings of
    workbench.video_io.write_mp4, which train/ cannot import, except the keyframe spacing)."""

    def __init__(self, path: Path, size: tuple[int, int], fps: float) -> None:
        rate = Fraction(fps if fps > 0 else 25.0).limit_denominator(1000)
        # The path may end in .part: name the container format instead of guessing it.
        self.container = av.open(
            os.fspath(path), mode="w", format="mp4", options={"movflags": "faststart"}
        )
        self.stream = self.container.add_stream("libx264", rate=rate)
        self.stream.width, self.stream.height = size
        self.stream.pix_fmt = "yuv420p"
        # A keyframe every second: a random training clip then decodes at most ~1 s of frames
        # before its start, at a small cost in file size.
        keyint = str(max(1, round(float(rate))))
        self.stream.options = {"crf": "18", "preset": "veryfast", "g": keyint}

    def write(self, frames: np.ndarray) -> None:
        """uint8 [T, H, W, 3] frames of the writer's size."""
        for frame in frames:
            self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(frame, "rgb24")))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()


# ---------------------------------------------------------------------------------------------
# One video.


def decoded_chunks(source: Path, size: tuple[int, int]) -> tuple[Iterator[np.ndarray], float]:
    """(chunks of uint8 [T, H, W, 3] frames at `size` in display orientation, average fps).

    The reader applies a rotation flag itself and is asked for a size in display orientation
    (what `read_frame_size` gives). It does not output widths under MIN_DECODE_WIDTH (decord
    cannot, reliably): such copies are decoded at that width and shrunk here.
    """
    width, height = size
    # The reader's own open (rotation, decord's size bug, its error messages); its size can
    # differ from the even `size` by a pixel, and tiny copies decode wider: shrunk below.
    video = open_video(source, short_side=min(size), threads=1)

    def chunks() -> Iterator[np.ndarray]:
        for first in range(0, video.num_frames, DECODE_CHUNK):
            wanted = range(first, min(first + DECODE_CHUNK, video.num_frames))
            frames = read_frames(video, source, wanted).permute(1, 2, 3, 0).numpy()
            if video.decode_size != (width, height):
                frames = shrink(frames, (width, height))
            yield np.ascontiguousarray(frames)

    return chunks(), video.fps


def shrink(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 [T, H, W, 3] resized to `size` = (width, height) with antialiasing."""
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(
        tensor, size=(size[1], size[0]), mode="bilinear", antialias=True, align_corners=False
    )
    return resized.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def convert(job: Job, out: Path, short_side: int) -> Outcome:
    """Write `job`'s copy below `out` unless a finished copy is there already."""
    target = out / job.relative
    if target.is_file():
        return Outcome(job, "present")
    partial = target.with_name(target.name + ".part")
    try:
        size = copy_size(*read_frame_size(job.source), short_side)
        chunks, fps = decoded_chunks(job.source, size)
        target.parent.mkdir(parents=True, exist_ok=True)
        writer = Mp4Writer(partial, size, fps)
        try:
            for frames in chunks:
                writer.write(frames)
        finally:
            writer.close()
    except UnreadableError as err:
        partial.unlink(missing_ok=True)
        return Outcome(job, "unreadable", err.reason)
    os.replace(partial, target)  # only a finished copy carries the final name
    return Outcome(job, "converted")


# ---------------------------------------------------------------------------------------------
# The dataset.


def copy_name(relative: Path) -> Path:
    """The copy's path: an .mp4 keeps its name, others add .mp4 (a.webm -> a.webm.mp4), so
    a.webm and a.mp4 side by side do not collide."""
    if relative.suffix.lower() == ".mp4":
        return relative
    return relative.with_name(relative.name + ".mp4")


def below(path: Path, base: Path) -> Path:
    """`path` relative to `base`; a path outside it goes below external/, under a short hash of
    its folder (stable across runs, so resume finds it; no folder names of this machine)."""
    try:
        return path.relative_to(base)
    except ValueError:
        digest = hashlib.blake2b(os.fspath(path.parent).encode(), digest_size=4).hexdigest()
        return Path("external") / digest / path.name


def plan_jobs(source: Path) -> tuple[list[Job], str]:
    """The jobs for a folder, a list file or a single video, and the new list's file name."""
    if source.is_dir():
        paths = list_media(source, VIDEO_EXTENSIONS)
        if not paths:
            raise DataError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) under {source}")
        return [Job(p, copy_name(p.relative_to(source)), None) for p in paths], FOLDER_LIST_NAME
    if source.suffix.lower() in VIDEO_EXTENSIONS:
        return [Job(source, copy_name(Path(source.name)), None)], FOLDER_LIST_NAME
    entries = read_list_entries(source)
    base = source.parent.resolve()
    jobs = [
        Job(entry.path, copy_name(below(entry.path.resolve(), base)), entry.label)
        for entry in entries
    ]
    return jobs, source.name


def write_list(path: Path, jobs: Sequence[Job]) -> None:
    """`relative/path.mp4 [label]` lines, relative to the list's folder; written whole, then
    renamed, so a list is never half there."""
    lines = [
        job.relative.as_posix() + ("" if job.label is None else f" {job.label}") + "\n"
        for job in jobs
    ]
    partial = path.with_name(path.name + ".part")
    partial.write_text("".join(lines))
    os.replace(partial, path)


def run(source: Path, out: Path, short_side: int, jobs: int = 1) -> int:
    """Convert, write the list, report; the exit status (1 when no copy exists)."""
    planned, list_name = plan_jobs(source)
    out.mkdir(parents=True, exist_ok=True)
    # A list may name a video more than once (oversampling): one copy, every line kept.
    unique = {job.relative: job for job in planned}
    for job in planned:
        if unique[job.relative].source != job.source:
            raise DataError(
                f"{job.source} and {unique[job.relative].source} would both be copied to "
                f"{job.relative}: rename one"
            )
    todo = list(unique.values())
    arguments = (todo, [out] * len(todo), [short_side] * len(todo))
    if jobs > 1:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            outcomes = list(pool.map(convert, *arguments))
    else:
        outcomes = list(map(convert, *arguments))
    bad = [o for o in outcomes if o.status == "unreadable"]
    unreadable = {o.job.relative for o in bad}
    kept = [job for job in planned if job.relative not in unreadable]
    base = source if source.is_dir() else source.parent
    for outcome in bad:
        print(f"unreadable, left out: {display_name(outcome.job.source, base)}: {outcome.reason}")
    counts = {s: sum(o.status == s for o in outcomes) for s in ("converted", "present")}
    print(
        f"{counts['converted']} converted, {counts['present']} already converted (kept), "
        f"{len(bad)} unreadable, of {len(todo)} videos; short side {short_side}"
    )
    if not kept:
        print(f"no video could be converted: no list written in {out}", file=sys.stderr)
        return 1
    write_list(out / list_name, kept)
    listed = out / list_name
    print(f"list: {listed} ({len(kept)} lines); train with data.path={listed}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m train.data.cache",
        description="Write resized copies of a video dataset once, and a list file naming them.",
    )
    parser.add_argument("source", type=Path, help="a folder of videos, a list file or a video")
    parser.add_argument("out", type=Path, help="folder for the copies and the new list")
    parser.add_argument(
        "--short-side", type=int, default=256, help="short side of the copies in pixels (256)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="videos converted at once (1)")
    args = parser.parse_args(argv)
    source, out = args.source.expanduser(), args.out.expanduser()
    if not source.exists():
        parser.error(f"{source} does not exist: give a folder of videos, a list file or a video")
    if out.exists() and not out.is_dir():
        parser.error(f"OUT {out} is a file: give a folder (new or existing) for the copies")
    if source.is_dir() and out.resolve().is_relative_to(source.resolve()):
        parser.error(f"OUT {out} lies inside {source}: the copies would count as sources")
    if args.short_side < MIN_SHORT_SIDE:
        parser.error(f"--short-side {args.short_side} is below {MIN_SHORT_SIDE} pixels")
    if args.jobs < 1:
        parser.error(f"--jobs {args.jobs} must be at least 1")
    args.source, args.out = source, out
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return run(args.source, args.out, args.short_side, args.jobs)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
