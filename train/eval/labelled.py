"""The labelled clips a frozen evaluation reads: a probe-training split and a held-out split.

Synthetic: two physics worlds with their own seeds, so neither shares a clip with the
pretraining world nor with the other. Videos: labelled list files (`path label` lines); without
a validation list, a fixed random fraction of the training list's videos is held out.
Every sample is the dataset's deterministic evaluation view (no augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, Subset

from train.config import Config
from train.data import build_dataset
from train.eval.config import EvalDataConfig

# Seed offsets of the held-out worlds (added to the run's seed). The online probe uses its own.
PROBE_TRAIN_WORLD = 1_000_003
PROBE_VAL_WORLD = 2_000_003
SPLIT_SEED = 0


class EvalDataError(ValueError):
    """The labelled data cannot be used as asked; the message says what to change."""


@dataclass
class LabelledSplits:
    train: Dataset
    val: Dataset
    class_names: dict[str, list[str]]
    # What the data are, for the feature cache key and the report (plain JSON values).
    description: dict[str, Any]


def synthetic_world(
    run_cfg: Config, seed_offset: int, num_clips: int, max_objects: int | None = None
) -> Dataset:
    """A physics world shaped like the run's clips, with the run's world settings (and
    `max_objects` objects per clip when given)."""
    settings = run_cfg.data.synthetic
    if max_objects is not None:
        settings = replace(settings, max_objects=max_objects)
    cfg = replace(run_cfg, data=replace(run_cfg.data, source="synthetic", synthetic=settings))
    world = build_dataset(cfg, seed_offset=seed_offset)
    if num_clips > len(world):
        raise EvalDataError(
            f"asked for {num_clips} clips but the world holds {len(world)}; lower the count"
        )
    return Subset(world, range(num_clips))


def synthetic_splits(run_cfg: Config, data: EvalDataConfig) -> LabelledSplits:
    train = synthetic_world(run_cfg, PROBE_TRAIN_WORLD, data.train_clips, data.max_objects)
    val = synthetic_world(run_cfg, PROBE_VAL_WORLD, data.val_clips, data.max_objects)
    syn = train.dataset
    return LabelledSplits(
        train=train,
        val=val,
        class_names=dict(train.dataset.label_names),
        description={
            "source": "synthetic",
            "seed": run_cfg.seed,
            "worlds": [PROBE_TRAIN_WORLD, PROBE_VAL_WORLD],
            "train_clips": data.train_clips,
            "val_clips": data.val_clips,
            "max_objects": syn.max_objects,
            "gravity": syn.gravity,
            "occluders": syn.occluders,
            "noise": syn.noise,
        },
    )


def _video_list(run_cfg: Config, path: str):
    from train.data.video import VideoDataset

    data, model = run_cfg.data, run_cfg.model
    dataset = VideoDataset(
        path,
        num_frames=model.num_frames,
        img_size=model.img_size,
        frame_step=data.frame_step,
        fps=data.fps,
        short_video_policy=data.short_video_policy,
        decode_threads=data.decode_threads,
    )
    if dataset.labels is None:
        raise EvalDataError(
            f"{path} has no labels: a probe needs a list file of `path label` lines "
            "(a folder or an unlabelled list can pretrain, not evaluate)"
        )
    return dataset


def _file_identity(path: str) -> dict[str, Any]:
    stat = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def video_splits(run_cfg: Config, data: EvalDataConfig) -> LabelledSplits:
    train = _video_list(run_cfg, data.train_list)
    names = list(train.class_names)
    description = {
        "source": "videos",
        "train_list": _file_identity(data.train_list),
        "num_frames": run_cfg.model.num_frames,
        "img_size": run_cfg.model.img_size,
        "frame_step": run_cfg.data.frame_step,
        "fps": run_cfg.data.fps,
    }
    if data.val_list:
        val = _video_list(run_cfg, data.val_list)
        if list(val.class_names) != names:
            raise EvalDataError(
                f"{data.val_list} names classes {val.class_names}, but {data.train_list} names "
                f"{names}: both lists must use the same label set"
            )
        description["val_list"] = _file_identity(data.val_list)
        return LabelledSplits(train, val, {"label": names}, description)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(SPLIT_SEED))
    held = max(1, round(data.val_fraction * len(train)))
    if held >= len(train):
        raise EvalDataError(f"{data.train_list} has too few videos to hold {held} out")
    description["val_fraction"] = data.val_fraction
    return LabelledSplits(
        Subset(train, sorted(order[held:].tolist())),
        Subset(train, sorted(order[:held].tolist())),
        {"label": names},
        description,
    )


def labelled_splits(run_cfg: Config, data: EvalDataConfig) -> LabelledSplits:
    if data.source == "synthetic":
        return synthetic_splits(run_cfg, data)
    return video_splits(run_cfg, data)
