"""The one-time pre-resize (`python -m train.data.cache`) on real small videos written here."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from train.data.cache import main
from train.data.listfile import read_list_entries
from train.data.reader import read_frame_size
from train.data.video import VideoDataset
from video_fixtures import clip_frame_numbers, write_broken_files, write_video


def frame_count(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def write_rotated(path: Path, size: tuple[int, int] = (320, 180)) -> Path:
    """A landscape-stored clip flagged to display rotated by 90 degrees, as phones record,
    showing a centred 80 px white square."""
    width, height = size
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.set_display_rotation(90)
        picture = np.zeros((height, width, 3), np.uint8)
        picture[height // 2 - 40 : height // 2 + 40, width // 2 - 40 : width // 2 + 40] = 255
        for _ in range(6):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        container.mux(stream.encode())
    return path


def test_a_labelled_list_is_resized_with_its_labels(tmp_path: Path) -> None:
    source = tmp_path / "source"
    write_video(source / "cats" / "wide.mp4", num_frames=20, size=(200, 100))
    write_video(source / "dogs" / "odd.webm", num_frames=12, size=(175, 143))
    write_video(source / "small.mp4", num_frames=8, size=(64, 48))  # smaller: never enlarged
    write_rotated(source / "phone.mp4")
    elsewhere = write_video(tmp_path / "elsewhere" / "far.mp4", num_frames=8, size=(96, 64))
    listed = ["cats/wide.mp4 cat", "dogs/odd.webm dog", "small.mp4 cat", "phone.mp4 dog"]
    listed += [f"{elsewhere} dog", "cats/wide.mp4 cat"]  # outside the list's folder; twice
    (source / "train.csv").write_text("\n".join(listed) + "\n")
    out = tmp_path / "out"
    assert main([str(source / "train.csv"), str(out), "--short-side", "64", "--jobs", "2"]) == 0

    entries = read_list_entries(out / "train.csv")
    names = [(e.path.relative_to(out).as_posix(), e.label) for e in entries]
    assert names[:4] == [
        ("cats/wide.mp4", "cat"),
        ("dogs/odd.webm.mp4", "dog"),
        ("small.mp4", "cat"),
        ("phone.mp4", "dog"),
    ]
    # A path outside the list's folder goes below external/ (no folder names of the source).
    assert names[4][0].startswith("external/") and names[4][0].endswith("/far.mp4")
    assert "elsewhere" not in names[4][0] and names[5] == names[0]
    sizes = [read_frame_size(e.path) for e in entries[:4]]
    # Short side 64, aspect kept, even sides; the 64 x 48 file keeps its size; the phone clip
    # is stored upright (180 x 320 displayed -> 64 x 113.8 -> 64 x 114) and not squashed.
    assert sizes == [(128, 64), (78, 64), (64, 48), (64, 114)]
    with av.open(str(out / "phone.mp4")) as container:
        frame = next(container.decode(video=0))
        assert round(frame.rotation or 0) == 0 and (frame.width, frame.height) == (64, 114)
        bright = frame.to_ndarray(format="gray") > 128
    width, height = int(bright.any(0).sum()), int(bright.any(1).sum())
    assert abs(width - height) <= 2 and abs(width - 80 * 64 / 180) <= 2
    assert frame_count(out / "cats" / "wide.mp4") == 20
    assert frame_count(out / "dogs" / "odd.webm.mp4") == 12
    # The copies are a dataset: labels as before, and the numbered frames survive.
    dataset = VideoDataset(out / "train.csv", num_frames=4, img_size=32, frame_step=2)
    assert dataset.labels == [0, 1, 0, 1, 1, 0] and dataset.class_names == ["cat", "dog"]
    original = VideoDataset(source / "train.csv", num_frames=4, img_size=32, frame_step=2)
    assert clip_frame_numbers(dataset[0]["clip"]) == clip_frame_numbers(original[0]["clip"])


def test_bad_files_are_named_and_left_out_and_a_rerun_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "clips"
    write_video(source / "a.mp4", num_frames=10, size=(128, 96))
    write_video(source / "b.mp4", num_frames=10, size=(128, 96))
    write_broken_files(source / "bad")
    out = tmp_path / "small"
    assert main([str(source), str(out), "--short-side", "32"]) == 0
    report = capsys.readouterr().out
    assert "unreadable, left out: bad/zero.mp4: empty file (0 bytes)" in report
    assert "bad/truncated_faststart.mp4: cannot decode" in report
    assert "2 converted, 0 already converted (kept), 6 unreadable, of 8 videos" in report
    listed = (out / "videos.csv").read_text().splitlines()
    assert listed == ["a.mp4", "b.mp4"]
    assert read_frame_size(out / "a.mp4") == (42, 32)  # 128 x 96 -> 42.7 x 32 -> even
    assert not list(out.rglob("*.part"))  # no half-written copy of a bad file

    # Resume: a finished copy is kept as it is, a missing one is written again.
    kept = (out / "a.mp4").stat().st_mtime_ns
    (out / "b.mp4").unlink()
    assert main([str(source), str(out), "--short-side", "32"]) == 0
    assert "1 converted, 1 already converted (kept), 6 unreadable" in capsys.readouterr().out
    assert (out / "a.mp4").stat().st_mtime_ns == kept and (out / "b.mp4").is_file()
    assert (out / "videos.csv").read_text().splitlines() == listed


def test_nothing_convertible_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_broken_files(tmp_path / "bad")
    assert main([str(tmp_path / "bad"), str(tmp_path / "out"), "--short-side", "32"]) == 1
    assert "no video could be converted" in capsys.readouterr().err
    assert not (tmp_path / "out" / "videos.csv").exists()


def test_bad_arguments_are_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_video(tmp_path / "in" / "a.mp4", num_frames=4)
    a_file = tmp_path / "taken.txt"
    a_file.write_text("")
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "out")], "missing does not exist"),
        ([str(video.parent), str(a_file)], "is a file"),
        ([str(video.parent), str(tmp_path / "out"), "--short-side", "15"], "below 16 pixels"),
        ([str(video.parent), str(video.parent / "copies")], "lies inside"),
    ]
    for argv, message in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert message in capsys.readouterr().err
