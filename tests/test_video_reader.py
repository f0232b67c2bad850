"""The one video reader (train/data/reader.py): decord and its PyAV fallback give the same
frames, and the fallback takes over where decord cannot be imported."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from train.data.base import DataError
from train.data.files import UnreadableError
from train.data.reader import READER_ENV, backend_name, open_video, read_frames
from train.data.video import VideoDataset
from video_fixtures import clip_frame_numbers, write_broken_files, write_video

REPO = Path(__file__).resolve().parents[1]
INDICES = [0, 3, 3, 17, 39, 5]  # out of order, with a repeat


def frames_of(path: Path, backend: str, short_side: int, indices=INDICES) -> torch.Tensor:
    video = open_video(path, short_side, threads=1, backend=backend)
    assert video.reader.name == backend
    return read_frames(video, path, indices)


def assert_same_frames(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype == torch.uint8
    difference = (a.int() - b.int()).abs().float()
    assert difference.mean() <= 0.5 and difference.max() <= 4, (difference.mean(), difference.max())


@pytest.mark.parametrize(
    ("name", "size", "rotation", "short_side"),
    [
        ("plain.mp4", (96, 64), 0, 256),  # native size
        ("wide.mkv", (320, 180), 0, 64),  # resized
        ("odd.webm", (175, 143), 0, 100),  # odd sides, VP9
        ("old.avi", (200, 100), 0, 64),  # MPEG-4 part 2
        ("phone.mp4", (320, 180), 90, 64),  # a phone's rotation flag
        ("upside.mov", (160, 96), 180, 64),
        ("phone.mov", (320, 180), 270, 400),
    ],
)
def test_both_backends_give_the_same_frames(tmp_path, name, size, rotation, short_side):
    path = write_video(tmp_path / name, num_frames=40, size=size, rotation=rotation)
    by_decord = frames_of(path, "decord", short_side)
    by_pyav = frames_of(path, "pyav", short_side)
    assert_same_frames(by_decord, by_pyav)
    _, t, height, width = by_pyav.shape
    assert t == len(INDICES) and by_pyav.shape[0] == 3
    turned = rotation in (90, 270)
    assert (width < height) == turned or size[0] == size[1]
    if rotation == 0:  # the numbered halves read top to bottom only upright
        assert clip_frame_numbers(by_pyav.numpy()) == INDICES
    a = open_video(path, short_side, threads=1, backend="decord")
    b = open_video(path, short_side, threads=1, backend="pyav")
    assert (a.num_frames, a.fps, a.decode_size) == (b.num_frames, b.fps, b.decode_size)


def test_pyav_reads_on_in_chunks_and_starts_again_for_an_earlier_frame(tmp_path):
    """The app reads a clip chunk by chunk: the fallback continues where it stopped, and a
    request for an earlier frame (a new training clip) decodes from the start again."""
    path = write_video(tmp_path / "long.mp4", num_frames=60)
    video = open_video(path, 64, threads=1, backend="pyav")
    chunks = [read_frames(video, path, range(first, first + 16)) for first in (0, 16, 32)]
    chunks.append(read_frames(video, path, [2, 50]))
    numbers = [n for chunk in chunks for n in clip_frame_numbers(chunk.numpy())]
    assert numbers == [*range(48), 2, 50]
    with pytest.raises(UnreadableError, match=r"frames 58\.\.61 \(PyAV: the stream ends after 60"):
        read_frames(video, path, [58, 61])


def test_without_decord_the_fallback_reads_the_same_clips(tmp_path, monkeypatch):
    path = write_video(tmp_path / "clips" / "a.mp4", num_frames=40, size=(128, 96))
    monkeypatch.delenv(READER_ENV, raising=False)
    assert backend_name() == "decord"
    expected = VideoDataset(path.parent, num_frames=8, img_size=64, frame_step=2)[0]["clip"]
    expected_frames = frames_of(path, "decord", 64)

    monkeypatch.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
    assert backend_name() == "pyav"
    video = open_video(path, 64, threads=1)
    assert video.reader.name == "pyav"
    assert_same_frames(read_frames(video, path, INDICES), expected_frames)
    clip = VideoDataset(path.parent, num_frames=8, img_size=64, frame_step=2)[0]["clip"]
    assert_same_frames(clip, expected)
    with pytest.raises(DataError, match=rf"{READER_ENV}=decord, but decord cannot be imported"):
        backend_name("decord")


def test_the_environment_picks_the_reader(tmp_path, monkeypatch):
    path = write_video(tmp_path / "a.mp4", num_frames=8)
    monkeypatch.setenv(READER_ENV, "pyav")
    assert open_video(path, 64, threads=1).reader.name == "pyav"
    monkeypatch.setenv(READER_ENV, "Decord")
    assert open_video(path, 64, threads=1).reader.name == "decord"
    monkeypatch.setenv(READER_ENV, "ffmpeg")
    with pytest.raises(DataError, match=r"VJEPA_VIDEO_READER='ffmpeg': use auto, decord or pyav"):
        open_video(path, 64, threads=1)


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_both_backends_refuse_the_same_broken_files(tmp_path, backend):
    broken = write_broken_files(tmp_path / "bad")
    reasons = {}
    for kind, path in broken.items():
        with pytest.raises(UnreadableError) as caught:
            read_frames(open_video(path, 32, threads=1, backend=backend), path, [0])
        reasons[kind] = caught.value.reason
    assert "truncated or damaged" in reasons["truncated_faststart"]
    assert reasons["zero_byte"] == "empty file (0 bytes)"
    assert reasons["audio_only"].startswith("no video stream")


def test_only_the_reader_imports_decord():
    """The import-order workaround (PyAV before decord) lives in one module."""
    importers = [
        path.relative_to(REPO).as_posix()
        for folder in ("train", "decoder", "workbench", "tests", "benchmarks")
        for path in sorted((REPO / folder).rglob("*.py"))
        if re.search(r"^\s*(import decord|from decord\b)", path.read_text(), re.MULTILINE)
    ]
    assert importers == ["train/data/reader.py"]


def test_a_still_image_named_like_a_video_is_refused_by_both(tmp_path):
    from PIL import Image

    fake = tmp_path / "holiday.mp4"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(fake, format="PNG")
    for backend in ("decord", "pyav"):
        with pytest.raises(UnreadableError):
            read_frames(open_video(fake, 32, threads=1, backend=backend), fake, [0])
