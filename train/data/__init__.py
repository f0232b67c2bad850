"""Clip datasets: the procedural physics world, folders of videos, folders of images."""

from __future__ import annotations

from typing import TYPE_CHECKING

from train.data.base import (
    ClipDataset,
    DataError,
    Draw,
    Sample,
    denormalize_clip,
    draw_generator,
    normalize_clip,
)

if TYPE_CHECKING:
    from train.config import Config

__all__ = [
    "ClipDataset",
    "DataError",
    "Draw",
    "Sample",
    "build_dataset",
    "denormalize_clip",
    "draw_generator",
    "normalize_clip",
]


def build_dataset(cfg: Config, seed_offset: int = 0) -> ClipDataset:
    """The training dataset named by `cfg.data.source`, shaped for `cfg.model`'s clips.

    `seed_offset` selects a disjoint synthetic world (held-out clips for probes and monitors).
    """
    data, model = cfg.data, cfg.model
    if data.source == "synthetic":
        from train.data.synthetic import PhysicsWorld

        return PhysicsWorld(
            num_clips=data.synthetic.num_clips,
            num_frames=model.num_frames,
            img_size=model.img_size,
            seed=cfg.seed + seed_offset,
            max_objects=data.synthetic.max_objects,
            gravity=data.synthetic.gravity,
            occluders=data.synthetic.occluders,
            noise=data.synthetic.noise,
        )
    if data.source == "videos":
        from train.data.video import VideoDataset

        return VideoDataset.from_config(data, model)
    from train.data.images import ImageDataset

    return ImageDataset.from_config(data, model)
