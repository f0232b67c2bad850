"""Which frames of a video make a clip: stride, span, evenly spaced and random starts."""

from __future__ import annotations

import math

import torch


def clip_stride(frame_step: int, fps: float | None, video_fps: float) -> int:
    """Frames between samples: `frame_step`, or the video's fps over the wanted `fps`."""
    if fps is None or not math.isfinite(video_fps) or video_fps <= 0:
        return frame_step  # no target rate, or a file that reports none: use the fixed step
    return max(1, round(video_fps / fps))


def clip_span(num_frames: int, stride: int) -> int:
    """Frames of video a clip covers, first to last sample inclusive."""
    return (num_frames - 1) * stride + 1


def eval_starts(video_frames: int, span: int, clips: int) -> list[int]:
    """Starts of `clips` evenly spaced clips: the centres of `clips` equal segments."""
    room = max(0, video_frames - span)
    return [round((2 * k + 1) * room / (2 * clips)) for k in range(clips)]


def random_start(video_frames: int, span: int, generator: torch.Generator) -> int:
    room = max(0, video_frames - span)
    return int(torch.randint(room + 1, (), generator=generator).item())


def clip_indices(start: int, num_frames: int, stride: int, video_frames: int) -> list[int]:
    """Frame numbers of a clip; past the end the last frame repeats (short videos)."""
    return [min(start + k * stride, video_frames - 1) for k in range(num_frames)]
