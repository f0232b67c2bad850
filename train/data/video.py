"""Real videos as a clip dataset: a folder (recursive) or a list file, read through
train/data/reader.py (decord, or PyAV where decord is missing).

Sources
    * a folder: every .mp4/.webm/.mkv/.avi/.mov below it (hidden files skipped), sorted by path;
    * a list file: one `path` or `path label` per line (V-JEPA's space-separated CSV); relative
      paths resolve against the list file's folder; integer labels are kept, names are numbered
      in sorted order (`class_names[label]` gives the name back);
    * a single video file.

Clips (V-JEPA): `num_frames` frames, `stride` frames apart, where stride = `frame_step`, or the
video's own fps / `fps` when `fps` is set. Training starts at a random frame; evaluation takes
`clips_per_video` evenly spaced clips, and the int index enumerates (video, clip) pairs.

Decode size: frames are resized as they are decoded (train/data/reader.py), so a 4K file is
never held at 4K. Evaluation decodes with the short side at `eval_short_side(img_size)` (256 for
224), which the centre crop needs; training decodes with the short side at img_size/sqrt(min crop
scale) (409 for 224 and scale 0.3, capped at 2 × img_size), so that even the smallest random crop
has about img_size pixels across. Frames are never enlarged at decode time.

Several clips per open (V-JEPA's `num_clips`): `samples(draws)` gives the same samples as
`[dataset[d] for d in draws]`, but a run of consecutive draws of one video (a sampler repeating
the video's index, `data.clips_per_video`) opens that video once and decodes the frames of all
its clips in one pass, each clip still drawn from its own Draw's seed.

Bad files: the training view (`Draw`) replaces an unreadable video by the next readable one
(index + 1, + 2, ... wrapping, at most `max_skip_attempts`), lists one message per bad file in
the sample's `skipped`, and warns once per file per process. The evaluation view (int index)
raises `UnreadableError` instead: evaluation never substitutes. Construction probes files in
order until one reads (at most `probe_limit`), so a folder of nothing readable is refused at once.
"""

from __future__ import annotations

import itertools
import operator
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import torch

from train.data.base import DataError, Draw, Sample, draw_generator
from train.data.files import (
    MAX_SKIP_ATTEMPTS,
    PROBE_LIMIT,
    MediaDataset,
    UnreadableError,
    list_media,
    no_media_message,
)
from train.data.listfile import read_list_file
from train.data.reader import OpenVideo, open_video, read_frames
from train.data.sampling import clip_indices, clip_span, clip_stride, eval_starts, random_start

if TYPE_CHECKING:
    from train.config import DataConfig, ModelConfig

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
ShortVideoPolicy = Literal["repeat_last", "skip"]


@dataclass(frozen=True)
class DecodedClip:
    frames: torch.Tensor  # uint8 [C, T, H, W] at decode size, before any transform
    indices: list[int]  # frame numbers, in clip order
    stride: int
    source_size: tuple[int, int]
    decode_size: tuple[int, int]
    video_frames: int
    video_fps: float


# ---------------------------------------------------------------------------------------------
# The dataset.


class VideoDataset(MediaDataset):
    """Clips from real videos; see the module docstring for sources, sampling and bad files.

    `dataset[i]` (int) is evaluation clip i: video i // clips_per_video, clip i % clips_per_video,
    resized and centre-cropped. `dataset[Draw(i, seed)]` is a training clip of the same video with
    a random start, random resized crop and flip, all drawn from `draw_generator(seed)`.
    Samples carry `labels = {"label": int}` when a labelled list file was given, else `{}`.
    """

    kind, unit = "video", "clips"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        num_frames: int = 16,
        img_size: int = 224,
        frame_step: int = 4,
        fps: float | None = None,
        short_video_policy: ShortVideoPolicy = "repeat_last",
        clips_per_video: int = 1,
        crop_scale: tuple[float, float] = (0.3, 1.0),
        crop_aspect: tuple[float, float] = (0.75, 1.35),
        hflip: bool = True,
        decode_threads: int = 1,
        probe_limit: int = PROBE_LIMIT,
        max_skip_attempts: int = MAX_SKIP_ATTEMPTS,
        clips_per_open: int = 1,
    ) -> None:
        if num_frames < 1 or frame_step < 1 or clips_per_video < 1 or clips_per_open < 1:
            raise DataError(
                f"num_frames={num_frames}, frame_step={frame_step}, "
                f"clips_per_video={clips_per_video} and clips_per_open={clips_per_open} must "
                "all be at least 1"
            )
        if fps is not None and fps <= 0:
            raise DataError(f"fps={fps} must be positive (or None to use frame_step)")
        if short_video_policy not in ("repeat_last", "skip"):
            raise DataError(
                f"short_video_policy={short_video_policy!r}: use 'repeat_last' or 'skip'"
            )
        source = Path(path).expanduser()
        paths, labels, self.class_names = self._find_videos(source)
        super().__init__(
            source,
            paths,
            labels,
            img_size=img_size,
            crop_scale=crop_scale,
            crop_aspect=crop_aspect,
            hflip=hflip,
            max_skip_attempts=max_skip_attempts,
        )
        self.num_frames = num_frames
        self.frame_step = frame_step
        self.fps = fps
        self.short_video_policy = short_video_policy
        self.clips_per_video = clips_per_video
        # Training clips per opened video (data.clips_per_video): how many consecutive slots the
        # sampler gives one video; `samples` serves such a run from one open.
        self.clips_per_open = clips_per_open
        self.decode_threads = decode_threads
        # Verdicts that hold for the whole file (cannot open, too short), kept per process so a
        # bad file costs one failed open. Per-clip decode failures are not kept: they depend on
        # the draw, and keeping them would make a Draw's result depend on worker history.
        self._bad: dict[int, str] = {}
        self._require_readable(self._probe, probe_limit)

    @classmethod
    def from_config(cls, data: DataConfig, model: ModelConfig) -> VideoDataset:
        if not data.path:
            raise DataError("data.source=videos needs data.path=FOLDER_OR_LIST_FILE")
        return cls(
            data.path,
            num_frames=model.num_frames,
            img_size=model.img_size,
            frame_step=data.frame_step,
            fps=data.fps,
            short_video_policy=data.short_video_policy,
            crop_scale=data.crop_scale,
            crop_aspect=data.crop_aspect,
            hflip=data.hflip,
            decode_threads=data.decode_threads,
            clips_per_video=data.eval_clips_per_video,
            clips_per_open=data.clips_per_video,
        )

    @staticmethod
    def _find_videos(source: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
        """(paths, labels, class_names) of a folder, a list file or one video file."""
        if not source.exists():
            raise FileNotFoundError(f"video source {source} does not exist")
        if source.is_dir():
            paths = list_media(source, VIDEO_EXTENSIONS)
            if not paths:
                raise DataError(no_media_message(source, VIDEO_EXTENSIONS, "video"))
            return paths, None, None
        if source.suffix.lower() in VIDEO_EXTENSIONS:
            return [source], None, None
        listed = read_list_file(source)
        return listed.paths, listed.labels, listed.class_names

    @property
    def clips_per_file(self) -> int:
        return self.clips_per_video

    def _training_clip(self, file: int, generator: torch.Generator) -> torch.Tensor:
        return self.train_transform(self.read_clip(file, generator=generator).frames, generator)

    def _evaluation_clip(self, index: int) -> torch.Tensor:
        decoded = self.read_clip(self._file_of(index), clip=index % self.clips_per_video)
        return self.eval_transform(decoded.frames)

    def samples(self, draws: Sequence[Draw]) -> list[Sample]:
        """Training samples for `draws`: equal to `[self[d] for d in draws]`, but each run of
        consecutive draws with one index opens its video once and decodes once."""
        samples: list[Sample] = []
        for _, run in itertools.groupby(draws, key=operator.attrgetter("index")):
            samples.extend(self._training_group(list(run)))
        return samples

    def _training_group(self, draws: list[Draw]) -> list[Sample]:
        if len(draws) == 1:
            return [self._training_view(draws[0])]
        video = self._file_of(draws[0].index)
        generators = [draw_generator(draw.seed) for draw in draws]
        try:
            decoded = self.read_clips(video, generators)
        except UnreadableError:
            # The one-draw path substitutes, reports and counts exactly as without grouping
            # (a failed open is remembered, so this costs no second open of a broken file).
            return [self._training_view(draw) for draw in draws]
        return [
            {
                "clip": self.train_transform(clip.frames, generator).contiguous(),
                "labels": self.labels_of(video),
            }
            for clip, generator in zip(decoded, generators, strict=True)
        ]

    # -- decoding ---------------------------------------------------------------------------

    def read_clip(
        self, video: int, *, generator: torch.Generator | None = None, clip: int = 0
    ) -> DecodedClip:
        """Decode one clip of video `video`, before transforms.

        With a `generator`: the training clip (random start, decoded large enough for random
        crops). Without: evenly spaced clip number `clip` of `clips_per_video`, decoded at the
        evaluation size. Raises UnreadableError naming the file and the reason.
        """
        training = generator is not None
        opened = self._open(video, self.train_short_side if training else self.eval_short_side)
        stride = clip_stride(self.frame_step, self.fps, opened.fps)
        span = clip_span(self.num_frames, stride)
        if training:
            start = random_start(opened.num_frames, span, generator)
        else:
            start = eval_starts(opened.num_frames, span, self.clips_per_video)[clip]
        indices = clip_indices(start, self.num_frames, stride, opened.num_frames)
        frames = read_frames(opened, self.paths[video], indices)
        return self._decoded(opened, frames, indices, stride)

    def read_clips(self, video: int, generators: Sequence[torch.Generator]) -> list[DecodedClip]:
        """One training clip per generator from one open of `video`: the starts are drawn as
        `read_clip` draws them, and all frames are decoded in one call, so frames that clips
        share (and the seeks between them) are decoded once."""
        opened = self._open(video, self.train_short_side)
        stride = clip_stride(self.frame_step, self.fps, opened.fps)
        span = clip_span(self.num_frames, stride)
        clips = [
            clip_indices(
                random_start(opened.num_frames, span, generator),
                self.num_frames,
                stride,
                opened.num_frames,
            )
            for generator in generators
        ]
        frames = read_frames(opened, self.paths[video], [i for clip in clips for i in clip])
        return [
            self._decoded(opened, part, indices, stride)
            for part, indices in zip(frames.split(self.num_frames, dim=1), clips, strict=True)
        ]

    @staticmethod
    def _decoded(
        opened: OpenVideo, frames: torch.Tensor, indices: list[int], stride: int
    ) -> DecodedClip:
        return DecodedClip(
            frames=frames,
            indices=indices,
            stride=stride,
            source_size=opened.source_size,
            decode_size=opened.decode_size,
            video_frames=opened.num_frames,
            video_fps=opened.fps,
        )

    def _open(self, video: int, short_side: int) -> OpenVideo:
        path = self.paths[video]
        if video in self._bad:
            raise UnreadableError(path, self._bad[video])
        try:
            opened = open_video(path, short_side, self.decode_threads)
            span = clip_span(self.num_frames, clip_stride(self.frame_step, self.fps, opened.fps))
            if opened.num_frames < span and self.short_video_policy == "skip":
                raise UnreadableError(
                    path,
                    f"too short: {opened.num_frames} frames, a clip of {self.num_frames} frames "
                    f"needs {span} (short_video_policy=skip)",
                )
        except UnreadableError as err:
            self._bad[video] = err.reason
            raise
        return opened

    def _probe(self, video: int) -> None:
        """Open at a tiny size and decode the first frame: cheap, and catches most damage."""
        read_frames(self._open(video, short_side=32), self.paths[video], [0])
