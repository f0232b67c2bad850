"""Opening and reading video files: the one module that knows the decoders.

    video = open_video(path, short_side=256, threads=1)   # header, size, frame count, fps
    frames = read_frames(video, path, [0, 4, 8])           # uint8 [C, T, H, W], RGB

Two backends give the same frames: RGB, in display orientation (a phone's rotation flag
applied), then resized by FFmpeg's bilinear scaler, and frame i is the i-th frame in
presentation order.

* decord, the primary: it indexes the file's frames on open and seeks to the keyframe before
  each frame asked for, so a random clip of a long video costs one seek.
* PyAV, the fallback where decord cannot be imported (it has no wheel for some platforms, e.g.
  macOS on ARM): it decodes forward, from the start of the file or from where its last read
  stopped, up to the last frame asked for, so a clip late in a long video costs more.

`VJEPA_VIDEO_READER=decord|pyav` picks one; unset (or `auto`), decord when it imports.

PyAV is imported here before decord is: decord bundles an older libvpx whose symbols would
otherwise shadow PyAV's (PyAV's VP9 encoder then refuses to open). Only this module imports
decord, so no other module has to care about the order.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import math
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import torch

from train.data.base import DataError
from train.data.files import UnreadableError

READER_ENV = "VJEPA_VIDEO_READER"
BACKENDS = ("decord", "pyav")
# decord 0.6 fails on some small output widths (4, 6, 8, 12, 16, 24, 48 and 72 pixels, resized or
# native: "DECORDArrayCopyFromTo: The size must exactly match"), so frames are never narrower
# (with either backend: both give the same sizes).
MIN_DECODE_WIDTH = 96
ATTACHED_PICTURE = 0x0400  # FFmpeg's AV_DISPOSITION_ATTACHED_PIC
# FFmpeg filters that turn a picture flagged with a display rotation (counter-clockwise degrees)
# upright, as decord does before it resizes.
TURN_FILTERS: dict[int, tuple[tuple[str, str | None], ...]] = {
    0: (),
    90: (("transpose", "cclock"),),
    180: (("hflip", None), ("vflip", None)),
    270: (("transpose", "clock"),),
}


# ---------------------------------------------------------------------------------------------
# Sizes and rotation (PyAV reads headers for both backends).


def decode_size(
    width: int, height: int, short_side: int, max_pixels: int | None = None
) -> tuple[int, int]:
    """(width, height) with the short side at most `short_side` and, when given, width x height
    at most `max_pixels` (a very wide or tall frame shrinks further); aspect kept, never
    enlarged."""
    if min(width, height) <= short_side:
        out_w, out_h = width, height
    elif width <= height:
        out_w, out_h = short_side, max(1, round(height * short_side / width))
    else:
        out_w, out_h = max(1, round(width * short_side / height)), short_side
    if max_pixels is not None and out_w * out_h > max_pixels:
        scale = math.sqrt(max_pixels / (out_w * out_h))
        out_w, out_h = max(1, math.floor(out_w * scale)), max(1, math.floor(out_h * scale))
    return out_w, out_h


@functools.lru_cache(maxsize=65_536)
def display_rotation(path: str, size: int, mtime_ns: int) -> int:
    """The first video stream's display rotation in degrees (0, 90, 180 or 270), as phones
    record it: read from its first decoded frame, once per file version and process (the
    arguments besides `path` only key the cache). 0 when no frame decodes: opening the file
    then says what is wrong with it."""
    try:
        with av.open(path, metadata_errors="ignore") as container:
            for frame in container.decode(video=0):
                return round(frame.rotation or 0) % 360
    except (av.FFmpegError, ValueError, IndexError):
        return 0
    return 0


def read_frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream as displayed: from the container header, with
    the sides swapped for a picture rotated by 90 or 270 degrees (the readers output the rotated
    picture, and decord must be asked for a size in its orientation, or it squashes it).

    decord cannot tell the size before decoding a frame, and its resize does not keep aspect, so
    PyAV reads the header. A tiny probe size keeps this at ~1 ms; formats that need more
    probing to know the size are retried with FFmpeg's defaults. The rotation costs one decoded
    frame per file and process.
    """
    width, height = stored_frame_size(path)
    stat = os.stat(path)
    if display_rotation(os.fspath(path), stat.st_size, stat.st_mtime_ns) in (90, 270):
        return height, width
    return width, height


def _footage(container: av.container.InputContainer) -> list[av.VideoStream]:
    # Cover art is a one-picture "video" stream; decord passes over it, so do we.
    return [
        stream
        for stream in container.streams.video
        if not int(getattr(stream, "disposition", 0)) & ATTACHED_PICTURE
    ]


def stored_frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream as stored (before any rotation), from the
    container header alone: nothing is decoded."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise UnreadableError(path, "file not found") from None
    except OSError as err:
        raise UnreadableError(path, f"cannot access ({err.strerror})") from None
    if size == 0:
        raise UnreadableError(path, "empty file (0 bytes)")
    for options in ({"probesize": "32"}, {}):
        try:
            with av.open(os.fspath(path), options=options, metadata_errors="ignore") as container:
                footage = _footage(container)
                if not footage:
                    raise UnreadableError(path, "no video stream (audio-only or not a video)")
                codec = footage[0].codec_context
                if codec.width > 0 and codec.height > 0:
                    return codec.width, codec.height
        except av.FFmpegError as err:
            raise UnreadableError(
                path, f"not a readable video container (PyAV: {err.strerror})"
            ) from None
    raise UnreadableError(path, "the container does not say the frame size")


# ---------------------------------------------------------------------------------------------
# The backends.


class FrameReader(Protocol):
    """What a backend gives: counts, and frames by index (sorted, no repeats) as uint8
    [T, H, W, C] RGB arrays, raising UnreadableError with a message for the user."""

    name: str
    num_frames: int
    fps: float

    def get(self, path: Path, wanted: list[int]) -> np.ndarray: ...


def decord_message(err: Exception, path: Path | None = None, limit: int = 200) -> str:
    """decord's first message line without its "[time] source.cc:line:" prefix, shortened.
    decord names the file by its full path; with `path` given, by its name only (the caller
    names the file already, and a web client must not learn the server's folders)."""
    lines = str(err).strip().splitlines()
    message = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0] if lines else repr(err))
    if path is not None:
        message = message.replace(os.fspath(path), path.name)
    return message if len(message) <= limit else message[: limit - 3] + "..."


class DecordReader:
    name = "decord"

    def __init__(self, path: Path, size: tuple[int, int] | None, threads: int) -> None:
        import decord  # after PyAV (imported at the top of this module): see the docstring

        self._errors = (decord.DECORDError, RuntimeError, IndexError)
        try:
            self._reader = decord.VideoReader(
                os.fspath(path),
                ctx=decord.cpu(0),
                width=size[0] if size else -1,
                height=size[1] if size else -1,
                num_threads=threads,
            )
            self.fps = float(self._reader.get_avg_fps())
        # decord raises DECORDError or RuntimeError, and asserts a positive frame count.
        except (decord.DECORDError, RuntimeError, AssertionError) as err:
            raise UnreadableError(
                path, f"cannot decode, truncated or damaged? (decord: {decord_message(err, path)})"
            ) from None
        self.num_frames = len(self._reader)

    def get(self, path: Path, wanted: list[int]) -> np.ndarray:
        try:
            return self._reader.get_batch(wanted).asnumpy()
        except self._errors as err:
            raise UnreadableError(
                path,
                f"cannot decode frames {wanted[0]}..{wanted[-1]} "
                f"(decord: {decord_message(err, path)})",
            ) from None


class PyAVReader:
    name = "pyav"

    def __init__(self, path: Path, size: tuple[int, int] | None, threads: int) -> None:
        self._size, self._threads = size, threads
        try:
            with av.open(os.fspath(path), metadata_errors="ignore") as container:
                if container.format.name == "image2" or container.format.name.endswith("_pipe"):
                    # FFmpeg reads a picture as a one-frame video; decord refuses it, so do we.
                    raise UnreadableError(path, "a still image, not a video")
                stream = _footage(container)[0]  # stored_frame_size checked there is one
                self._stream = stream.index
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else math.nan
                # decord's frame count: the stream's packets (its index), not the header's
                # figure, which some containers (webm, mkv) leave at 0.
                self.num_frames = sum(1 for packet in container.demux(stream) if packet.size)
                promised = stream.frames
        except av.FFmpegError as err:
            raise UnreadableError(
                path, f"cannot decode, truncated or damaged? (PyAV: {err.strerror})"
            ) from None
        if promised > self.num_frames:  # FFmpeg ends a cut file quietly; decord refuses it
            raise UnreadableError(
                path,
                f"cannot decode, truncated or damaged? (PyAV: the header promises {promised} "
                f"frames, the file holds {self.num_frames})",
            )
        self._decoding: _Decoding | None = None

    def get(self, path: Path, wanted: list[int]) -> np.ndarray:
        frames: list[np.ndarray] = []
        try:
            # Reading on from where the last call stopped (the app reads a clip in chunks)
            # decodes every frame once; an earlier frame starts again from the first.
            if self._decoding is None or wanted[0] < self._decoding.next:
                self._restart(path)
            decoding = self._decoding
            for frame in decoding.frames:
                decoding.next += 1
                if decoding.next - 1 == wanted[len(frames)]:
                    frames.append(decoding.rgb(frame, self._size))
                    if len(frames) == len(wanted):
                        break
        except av.FFmpegError as err:
            self._decoding = None
            raise UnreadableError(
                path, f"cannot decode frames {wanted[0]}..{wanted[-1]} (PyAV: {err.strerror})"
            ) from None
        if len(frames) < len(wanted):
            self._decoding = None
            raise UnreadableError(
                path,
                f"cannot decode frames {wanted[0]}..{wanted[-1]} (PyAV: the stream ends after "
                f"{decoding.next} frames)",
            )
        return np.stack(frames)

    def _restart(self, path: Path) -> None:
        if self._decoding is not None:
            self._decoding.container.close()
        container = av.open(os.fspath(path), metadata_errors="ignore")
        stream = container.streams[self._stream]
        stream.thread_type = "AUTO"
        stream.codec_context.thread_count = self._threads
        self._decoding = _Decoding(container, stream, container.decode(stream))


@dataclass
class _Decoding:
    """A file PyAVReader is decoding, frame after frame."""

    container: av.container.InputContainer
    stream: av.VideoStream
    frames: Iterator[av.VideoFrame]
    next: int = 0  # the number of the frame `frames` gives next
    graph: av.filter.Graph | None = None  # built for the first frame (it has the rotation)

    def rgb(self, frame: av.VideoFrame, size: tuple[int, int] | None) -> np.ndarray:
        """[H, W, 3] as decord gives it, through the filters decord uses: turned, resized
        (bilinear), converted to RGB."""
        if self.graph is None:
            self.graph = self._filters(round((frame.rotation or 0) / 90) % 4 * 90, size)
        self.graph.push(frame)
        return self.graph.pull().to_ndarray()

    def _filters(self, rotation: int, size: tuple[int, int] | None) -> av.filter.Graph:
        graph = av.filter.Graph()
        steps = list(TURN_FILTERS[rotation])
        if size is not None:
            steps.append(("scale", f"{size[0]}:{size[1]}:flags=bilinear"))
        chain = [
            graph.add_buffer(template=self.stream),
            *(graph.add(name, arguments) for name, arguments in [*steps, ("format", "rgb24")]),
            graph.add("buffersink"),
        ]
        for source, sink in itertools.pairwise(chain):
            source.link_to(sink)
        graph.configure()
        return graph


def backend_name(choice: str | None = None) -> str:
    """The backend that `choice` names ("auto", "decord" or "pyav"; default: the environment's
    VJEPA_VIDEO_READER, else "auto"). "auto" is decord when it imports, else PyAV."""
    if choice is None:
        choice = os.environ.get(READER_ENV, "")
    choice = choice.strip().lower() or "auto"
    if choice not in ("auto", *BACKENDS):
        raise DataError(f"{READER_ENV}={choice!r}: use auto, decord or pyav")
    if choice == "pyav":
        return "pyav"
    try:
        importlib.import_module("decord")
    except ImportError as err:
        if choice == "decord":
            raise DataError(
                f"{READER_ENV}=decord, but decord cannot be imported ({err}): install decord, "
                f"or read videos with PyAV ({READER_ENV}=pyav)"
            ) from None
        return "pyav"
    return "decord"


# ---------------------------------------------------------------------------------------------
# The interface.


@dataclass(frozen=True)
class OpenVideo:
    reader: FrameReader
    source_size: tuple[int, int]  # (width, height) as displayed (rotation applied)
    decode_size: tuple[int, int]  # (width, height) the reader outputs
    num_frames: int
    fps: float


def open_video(
    path: Path,
    short_side: int,
    threads: int,
    max_pixels: int | None = None,
    backend: str | None = None,
) -> OpenVideo:
    """A reader that outputs frames with the short side at most `short_side` (and at most
    `max_pixels` pixels a frame, when given; see `decode_size`), from the backend that
    `backend_name(backend)` picks."""
    width, height = read_frame_size(path)
    out_w, out_h = decode_size(width, height, short_side, max_pixels)
    if out_w < MIN_DECODE_WIDTH:  # enlarge rather than trip decord's size bug (tiny files only)
        out_w, out_h = MIN_DECODE_WIDTH, max(1, round(height * MIN_DECODE_WIDTH / width))
    size = (out_w, out_h) if (out_w, out_h) != (width, height) else None
    kind = DecordReader if backend_name(backend) == "decord" else PyAVReader
    reader = kind(path, size, threads)
    if reader.num_frames < 1:
        raise UnreadableError(path, "no frames")
    return OpenVideo(reader, (width, height), (out_w, out_h), reader.num_frames, reader.fps)


def read_frames(video: OpenVideo, path: Path, indices: Sequence[int]) -> torch.Tensor:
    """Frames `indices` (repeats allowed) as uint8 [C, T, H, W]; each frame is decoded once."""
    wanted = sorted(set(indices))
    frames = torch.from_numpy(video.reader.get(path, wanted))  # [T, H, W, C]
    if len(wanted) != len(indices):
        position = {frame: i for i, frame in enumerate(wanted)}
        frames = frames[[position[i] for i in indices]]
    if frames.shape[-1] == 1:  # both output RGB; this only guards single-channel output
        frames = frames.expand(-1, -1, -1, 3)
    # A view: in [T, C, H, W] order this memory is channels-last, what the resize kernels like.
    return frames.permute(3, 0, 1, 2)
