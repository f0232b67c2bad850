"""Videos in and out of the app: reading uploads (bounded in size and length) and writing
browser-playable H.264 mp4 files.

Reading goes through the core's video reader (train/data/reader.py), which resizes as it
decodes: a 4K upload is never held at 4K. What an upload may cost is bounded by pixels, not by
the file's size: each frame is decoded with its short side at most 256 px and at most
`FRAME_PIXELS` pixels (an 8192 x 256 frame comes out 1932 x 60), and a clip holds at most
`MAX_DECODE_PIXELS` pixels in all (about 105 MB of RGB), so only the first `max_seconds`, at
most `MAX_FRAMES` frames, and fewer for very large frames, are decoded. They are decoded in
chunks straight into the clip's array: no second full-size copy. Files with more pixels a
frame than `MAX_SOURCE_SIZE` (4096 x 2304) are refused before decoding, since the decoder
holds a few frames at full size. `python benchmarks/app_latency.py --upload-memory` measures
what one upload costs.

Every frame of those first seconds is decoded, not only the ones a model input uses: the
Predict tab lets the user move the model's window (first frame and step) over the whole clip
without reloading it, and the Physics tab's surprise curve runs over all of it.

Writing uses PyAV's libx264 in yuv420p, what every browser plays; there is no ffmpeg binary to
call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from train.data.files import UnreadableError
from train.data.reader import OpenVideo, open_video, read_frames, stored_frame_size
from train.data.video import VIDEO_EXTENSIONS

MAX_UPLOAD_BYTES = 200 * 1024 * 1024
MAX_SECONDS = 10.0
MAX_FRAMES = 300
# The decoder holds a few frames at the file's own size before resizing them: bigger frames are
# refused before anything is decoded. H.264's level 5.2 limit: 4K UHD and DCI 4K fit, 8K not.
MAX_SOURCE_SIZE = (4096, 2304)
# Frames are decoded with the short side at most this: above every model size the app shows
# (the largest preset is 224 px), small enough to keep a 10 s clip in memory.
DECODE_SHORT_SIDE = 256
# ...and with at most this many pixels (a 16:9 frame at 256 px): a very wide or tall frame
# shrinks further. A clip holds at most MAX_DECODE_PIXELS pixels, 3 bytes each (~105 MB).
FRAME_PIXELS = 256 * 456
MAX_DECODE_PIXELS = MAX_FRAMES * FRAME_PIXELS
DECODE_CHUNK = 16  # frames decoded at once
FALLBACK_FPS = 25.0


class VideoError(ValueError):
    """A video the app cannot use; the message says why and what to do."""


@dataclass
class Video:
    frames: np.ndarray  # uint8 [T, H, W, 3]
    fps: float
    name: str
    source_size: tuple[int, int]  # (width, height) as displayed (rotation applied)
    total_frames: int  # frames in the file; more than len(frames) when cut to max_seconds

    @property
    def cut(self) -> bool:
        return self.total_frames > len(self.frames)

    def describe(self) -> str:
        t, h, w, _ = self.frames.shape
        text = f"{self.name}: {t} frames of {w}x{h} px at {self.fps:.3g} fps"
        if (w, h) != self.source_size:
            text += f" (resized from {self.source_size[0]}x{self.source_size[1]})"
        if self.cut:
            text += f"; first {t} of {self.total_frames} frames"
        return text


def read_video(
    path: str | os.PathLike[str],
    max_seconds: float = MAX_SECONDS,
    short_side: int = DECODE_SHORT_SIDE,
    max_bytes: int = MAX_UPLOAD_BYTES,
) -> Video:
    """The first `max_seconds` of a video file as RGB frames, short side at most `short_side`,
    bounded in pixels (see the module docstring). Messages name the file by its name only."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_EXTENSIONS:
        raise VideoError(
            f"{path.name} is not a video file the app reads; use one of "
            f"{', '.join(VIDEO_EXTENSIONS)}"
        )
    if path.is_file() and path.stat().st_size > max_bytes:
        raise VideoError(
            f"{path.name} is {path.stat().st_size / 2**20:.0f} MiB; the limit is "
            f"{max_bytes / 2**20:.0f} MiB: cut or compress it first"
        )
    try:
        width, height = stored_frame_size(path)
        if width * height > math.prod(MAX_SOURCE_SIZE):
            most = "x".join(map(str, MAX_SOURCE_SIZE))
            raise VideoError(
                f"{path.name} has frames of {width}x{height} pixels; the app reads frames of at "
                f"most {most} pixels (or as many in another shape): scale it down first"
            )
        video = open_video(path, short_side, threads=1, max_pixels=FRAME_PIXELS)
        fps = video.fps if math.isfinite(video.fps) and video.fps > 0 else FALLBACK_FPS
        width, height = video.decode_size
        count = min(
            video.num_frames,
            MAX_FRAMES,
            max(1, math.ceil(max_seconds * fps)),
            max(1, MAX_DECODE_PIXELS // (width * height)),
        )
        frames = _decode(video, path, count)
    except UnreadableError as err:
        # The upload's server path (a temporary folder) is no business of the page's.
        reason = err.reason.replace(os.fspath(path), path.name)
        raise VideoError(f"{path.name} cannot be read: {reason}") from None
    return Video(
        frames=frames,
        fps=fps,
        name=path.name,
        source_size=video.source_size,
        total_frames=video.num_frames,
    )


def _decode(video: OpenVideo, path: Path, count: int) -> np.ndarray:
    """Frames 0..count-1 as uint8 [T, H, W, 3], decoded DECODE_CHUNK at a time into one array."""

    def chunk(first: int) -> np.ndarray:
        indices = range(first, min(first + DECODE_CHUNK, count))
        return read_frames(video, path, indices).permute(1, 2, 3, 0).numpy()

    head = chunk(0)
    frames = np.empty((count, *head.shape[1:]), dtype=np.uint8)
    frames[: len(head)] = head
    for first in range(len(head), count, DECODE_CHUNK):
        frames[first : first + DECODE_CHUNK] = chunk(first)
    return frames


def _even(frames: np.ndarray) -> np.ndarray:
    """4:2:0 video needs even sides: repeat the last row / column where one is odd."""
    _, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def write_mp4(frames: np.ndarray, path: str | os.PathLike[str], fps: float) -> Path:
    """uint8 [T, H, W, 3] -> an H.264 / yuv420p mp4 that browsers play."""
    frames = _even(np.ascontiguousarray(frames, dtype=np.uint8))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rate = Fraction(fps).limit_denominator(1000)
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        # Every frame a keyframe: short clips seek and loop without artefacts in the browser.
        stream.options = {"crf": "18", "preset": "veryfast", "g": "1"}
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path
