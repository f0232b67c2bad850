"""Real videos as a clip dataset: a folder (recursive) or a list file, decoded with decord.

Sources
    * a folder: every .mp4/.webm/.mkv/.avi/.mov below it (hidden files skipped), sorted by path;
    * a list file: one `path` or `path label` per line (V-JEPA's space-separated CSV); relative
      paths resolve against the list file's folder; integer labels are kept, names are numbered
      in sorted order (`class_names[label]` gives the name back);
    * a single video file.

Clips (V-JEPA): `num_frames` frames, `stride` frames apart, where stride = `frame_step`, or the
video's own fps / `fps` when `fps` is set. Training starts at a random frame; evaluation takes
`clips_per_video` evenly spaced clips, and the int index enumerates (video, clip) pairs.

Decode size: frames are resized inside the decoder (decord's `width`/`height`), so a 4K file is
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

import functools
import itertools
import math
import operator
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

# PyAV before decord: decord bundles an older libvpx whose symbols would otherwise shadow PyAV's
# (PyAV's VP9 encoder then refuses to open). PyAV reads headers here; decord decodes.
import av
import decord
import torch
from decord import DECORDError

from train.data.base import DataError, Draw, Sample, draw_generator
from train.data.files import (
    MAX_SKIP_ATTEMPTS,
    PROBE_LIMIT,
    UnreadableError,
    display_name,
    list_media,
    load_with_fallback,
    no_media_message,
    require_readable,
)
from train.data.listfile import read_list_file
from train.data.sampling import clip_indices, clip_span, clip_stride, eval_starts, random_start
from train.data.transforms import EvalTransform, TrainTransform, eval_short_side

if TYPE_CHECKING:
    from train.config import DataConfig, ModelConfig

VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov")
# decord 0.6 fails on some small output widths (4, 6, 8, 12, 16, 24, 48 and 72 pixels, resized or
# native: "DECORDArrayCopyFromTo: The size must exactly match"), so frames are never narrower.
MIN_DECODE_WIDTH = 96
ATTACHED_PICTURE = 0x0400  # FFmpeg's AV_DISPOSITION_ATTACHED_PIC
ShortVideoPolicy = Literal["repeat_last", "skip"]


# ---------------------------------------------------------------------------------------------
# Decoding.


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
    arguments besides `path` only key the cache). 0 when no frame decodes: decord then says
    what is wrong with the file."""
    try:
        with av.open(path, metadata_errors="ignore") as container:
            for frame in container.decode(video=0):
                return round(frame.rotation or 0) % 360
    except (av.FFmpegError, ValueError, IndexError):
        return 0
    return 0


def read_frame_size(path: Path) -> tuple[int, int]:
    """(width, height) of the first video stream as displayed: from the container header, with
    the sides swapped for a picture rotated by 90 or 270 degrees (decord outputs the rotated
    picture, and must be asked for a size in its orientation, or it squashes it).

    decord cannot tell the size before decoding a frame, and its resize does not keep aspect, so
    PyAV reads the header. A tiny probe size keeps this at ~1 ms; formats that need more
    probing to know the size are retried with FFmpeg's defaults. The rotation costs one decoded
    frame per file and process.
    """
    width, height = _stored_frame_size(path)
    stat = os.stat(path)
    if display_rotation(os.fspath(path), stat.st_size, stat.st_mtime_ns) in (90, 270):
        return height, width
    return width, height


def _stored_frame_size(path: Path) -> tuple[int, int]:
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
                # Cover art is a one-picture "video" stream; decord passes over it, so do we.
                footage = [
                    stream
                    for stream in container.streams.video
                    if not int(getattr(stream, "disposition", 0)) & ATTACHED_PICTURE
                ]
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


def decord_message(err: Exception, path: Path | None = None, limit: int = 200) -> str:
    """decord's first message line without its "[time] source.cc:line:" prefix, shortened.
    decord names the file by its full path; with `path` given, by its name only (the caller
    names the file already, and a web client must not learn the server's folders)."""
    lines = str(err).strip().splitlines()
    message = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0] if lines else repr(err))
    if path is not None:
        message = message.replace(os.fspath(path), path.name)
    return message if len(message) <= limit else message[: limit - 3] + "..."


@dataclass(frozen=True)
class OpenVideo:
    reader: decord.VideoReader
    source_size: tuple[int, int]  # (width, height) as displayed (rotation applied)
    decode_size: tuple[int, int]  # (width, height) the decoder outputs
    num_frames: int
    fps: float


def open_video(
    path: Path, short_side: int, threads: int, max_pixels: int | None = None
) -> OpenVideo:
    """A decord reader that outputs frames with the short side at most `short_side` (and at
    most `max_pixels` pixels a frame, when given; see `decode_size`)."""
    width, height = read_frame_size(path)
    out_w, out_h = decode_size(width, height, short_side, max_pixels)
    if out_w < MIN_DECODE_WIDTH:  # enlarge rather than trip decord's size bug (tiny files only)
        out_w, out_h = MIN_DECODE_WIDTH, max(1, round(height * MIN_DECODE_WIDTH / width))
    resized = (out_w, out_h) != (width, height)
    try:
        reader = decord.VideoReader(
            os.fspath(path),
            ctx=decord.cpu(0),
            width=out_w if resized else -1,
            height=out_h if resized else -1,
            num_threads=threads,
        )
        fps = float(reader.get_avg_fps())
    # decord raises DECORDError or RuntimeError, and asserts a positive frame count.
    except (DECORDError, RuntimeError, AssertionError) as err:
        raise UnreadableError(
            path, f"cannot decode, truncated or damaged? (decord: {decord_message(err, path)})"
        ) from None
    if len(reader) < 1:
        raise UnreadableError(path, "no frames")
    return OpenVideo(reader, (width, height), (out_w, out_h), len(reader), fps)


def read_frames(video: OpenVideo, path: Path, indices: Sequence[int]) -> torch.Tensor:
    """Frames `indices` (repeats allowed) as uint8 [C, T, H, W]; each frame is decoded once."""
    wanted = sorted(set(indices))
    try:
        batch = video.reader.get_batch(wanted).asnumpy()  # [T, H, W, 3]
    except (DECORDError, RuntimeError, IndexError) as err:
        raise UnreadableError(
            path,
            f"cannot decode frames {wanted[0]}..{wanted[-1]} (decord: {decord_message(err, path)})",
        ) from None
    frames = torch.from_numpy(batch)
    if len(wanted) != len(indices):
        position = {frame: i for i, frame in enumerate(wanted)}
        frames = frames[[position[i] for i in indices]]
    if frames.shape[-1] == 1:  # decord outputs RGB; this only guards single-channel output
        frames = frames.expand(-1, -1, -1, 3)
    # A view: in [T, C, H, W] order this memory is channels-last, what the resize kernels like.
    return frames.permute(3, 0, 1, 2)


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


class VideoDataset:
    """Clips from real videos; see the module docstring for sources, sampling and bad files.

    `dataset[i]` (int) is evaluation clip i: video i // clips_per_video, clip i % clips_per_video,
    resized and centre-cropped. `dataset[Draw(i, seed)]` is a training clip of the same video with
    a random start, random resized crop and flip, all drawn from `draw_generator(seed)`.
    Samples carry `labels = {"label": int}` when a labelled list file was given, else `{}`.
    """

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
        self.source = Path(path).expanduser()
        self.paths, self.labels, self.class_names, self._base = self._find_videos(self.source)
        self.num_frames = num_frames
        self.img_size = img_size
        self.frame_step = frame_step
        self.fps = fps
        self.short_video_policy = short_video_policy
        self.clips_per_video = clips_per_video
        # Training clips per opened video (data.clips_per_video): how many consecutive slots the
        # sampler gives one video; `samples` serves such a run from one open.
        self.clips_per_open = clips_per_open
        self.decode_threads = decode_threads
        self.max_skip_attempts = max_skip_attempts
        self.train_transform = TrainTransform(img_size, crop_scale, crop_aspect, hflip)
        self.eval_transform = EvalTransform(img_size)
        self.eval_short_side = eval_short_side(img_size)
        # Bigger than img_size / sqrt(min scale) buys no detail for most crops, only memory.
        smallest_crop = math.ceil(self.train_transform.smallest_crop_side())
        self.train_short_side = max(self.eval_short_side, min(smallest_crop, 2 * img_size))
        # Verdicts that hold for the whole file (cannot open, too short), kept per process so a
        # bad file costs one failed open. Per-clip decode failures are not kept: they depend on
        # the draw, and keeping them would make a Draw's result depend on worker history.
        self._bad: dict[int, str] = {}
        require_readable(
            len(self.paths), self._probe, self.name_of, self.source, "video", probe_limit
        )

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
    def _find_videos(source: Path) -> tuple[list[Path], list[int] | None, list[str] | None, Path]:
        """(paths, labels, class_names, base folder for display names) of a folder/list/file."""
        if not source.exists():
            raise FileNotFoundError(f"video source {source} does not exist")
        if source.is_dir():
            paths = list_media(source, VIDEO_EXTENSIONS)
            if not paths:
                raise DataError(no_media_message(source, VIDEO_EXTENSIONS, "video"))
            return paths, None, None, source.parent
        if source.suffix.lower() in VIDEO_EXTENSIONS:
            return [source], None, None, source.parent
        listed = read_list_file(source)
        return listed.paths, listed.labels, listed.class_names, source.parent

    # -- map-style dataset ----------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.paths) * self.clips_per_video

    def __getitem__(self, key: int | Draw) -> Sample:
        if isinstance(key, Draw):
            return self._training_view(key)
        try:
            index = operator.index(key)
        except TypeError:
            raise TypeError(f"index with an int or a Draw, not {type(key).__name__}") from None
        return self._evaluation_view(index)

    def name_of(self, video: int) -> str:
        """How messages name video `video`: its path relative to the source's folder."""
        return display_name(self.paths[video], self._base)

    def labels_of(self, video: int) -> dict[str, int]:
        return {} if self.labels is None else {"label": self.labels[video]}

    def _video_of(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        return index // self.clips_per_video

    def _training_view(self, draw: Draw) -> Sample:
        def load(video: int) -> Sample:
            # A fresh generator per attempt: a substitute gets the draws it would get itself.
            generator = draw_generator(draw.seed)
            decoded = self.read_clip(video, generator=generator)
            clip = self.train_transform(decoded.frames, generator)
            return {"clip": clip.contiguous(), "labels": self.labels_of(video)}

        sample, skipped = load_with_fallback(
            self._video_of(draw.index), len(self.paths), load, self.name_of, self.max_skip_attempts
        )
        if skipped:
            sample["skipped"] = skipped
        return sample

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
        video = self._video_of(draws[0].index)
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

    def _evaluation_view(self, index: int) -> Sample:
        if index < 0:
            index += len(self)
        video = self._video_of(index)
        try:
            decoded = self.read_clip(video, clip=index % self.clips_per_video)
        except UnreadableError as err:
            raise UnreadableError(
                err.path, f"{err.reason} (evaluation never substitutes: fix or remove the file)"
            ) from None
        clip = self.eval_transform(decoded.frames)
        return {"clip": clip.contiguous(), "labels": self.labels_of(video)}

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
