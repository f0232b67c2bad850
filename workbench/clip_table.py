"""Clip features of a whole dataset, for the embedding map: one mean-pooled feature vector per
clip, its labels, and a way to get the clip back for thumbnails.

Sources: the physics world (a held-out world of its own, labelled shape / direction / speed /
count) or a folder of videos (labelled by sub-folder when there are several, or by a list
file's labels). Features come from the bundle's target encoder and are cached on disk under
`.cache/workbench/`, keyed by the bundle file and the data, so the second map of the same data
is instant.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decoder.bundle import Bundle
from train.data import normalize_clip
from train.data.files import UnreadableError
from train.data.synthetic import PhysicsWorld
from train.data.video import VideoDataset
from train.step import autocast
from workbench.paths import FEATURE_CACHE_DIR

log = logging.getLogger("workbench")

TABLE_FORMAT = 1
SYNTHETIC = "physics world (labelled)"
FOLDER = "video folder"
SOURCES = (SYNTHETIC, FOLDER)
DEFAULT_CLIPS = 2000
MAX_CLIPS = 20_000
# Disjoint from the training world (seed 0) and from the online probe's world.
EMBEDDING_WORLD_SEED = 7_000_003
BATCH = 64
MAX_LOADED = 4
Progress = Callable[[float, str], None]


@dataclass(frozen=True)
class DataChoice:
    source: str = SYNTHETIC
    count: int = DEFAULT_CLIPS  # physics world: how many clips
    folder: str = ""  # video folder (or list file)


@dataclass
class ClipTable:
    key: str
    title: str
    features: np.ndarray  # float32 [N, D]
    labels: dict[str, np.ndarray]  # name -> int64 [N]
    label_names: dict[str, list[str]]
    hover: list[str]
    clip_of: Callable[[int], np.ndarray] = field(repr=False)  # i -> uint8 [T, S, S, 3]
    skipped: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.features)


# ---------------------------------------------------------------------------------------------
# Sources.


@dataclass
class _Source:
    """A dataset reduced to what a table needs: items, labels and how to name them."""

    dataset: Any
    count: int
    label_names: dict[str, list[str]]
    settings: dict[str, Any]  # everything the features depend on besides the bundle
    title: str
    folder_labels: np.ndarray | None = None  # per clip, for folder sources with sub-folders


def physics_world_for(bundle: Bundle, num_clips: int) -> PhysicsWorld:
    """The app's held-out embedding world (never trained on), shaped for `bundle`."""
    synthetic = bundle.config.data.synthetic
    return PhysicsWorld(
        num_clips=num_clips,
        num_frames=bundle.num_frames,
        img_size=bundle.img_size,
        seed=EMBEDDING_WORLD_SEED,
        max_objects=synthetic.max_objects,
        gravity=synthetic.gravity,
        occluders=synthetic.occluders,
        noise=synthetic.noise,
    )


def _physics_source(bundle: Bundle, count: int) -> _Source:
    if not 2 <= count <= MAX_CLIPS:
        raise ValueError(f"number of clips must lie between 2 and {MAX_CLIPS}, got {count}")
    world = physics_world_for(bundle, count)
    synthetic = bundle.config.data.synthetic
    settings = {
        "source": "synthetic",
        "count": count,
        "seed": EMBEDDING_WORLD_SEED,
        "max_objects": synthetic.max_objects,
        "gravity": synthetic.gravity,
        "occluders": synthetic.occluders,
        "noise": synthetic.noise,
    }
    title = f"{count} physics-world clips"
    return _Source(world, count, dict(world.label_names), settings, title)


def _folder_source(bundle: Bundle, folder: str) -> _Source:
    if not folder.strip():
        raise ValueError("type the path of a folder of videos (or of a list file)")
    path = Path(folder.strip()).expanduser()
    if not path.exists():
        raise ValueError(f"{path} does not exist on the machine running the app")
    dataset = VideoDataset(
        path,
        num_frames=bundle.num_frames,
        img_size=bundle.img_size,
        frame_step=bundle.config.data.frame_step,
    )
    count = min(len(dataset), MAX_CLIPS)
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in dataset.paths[:count]]
    settings = {
        "source": "videos",
        "path": str(path.resolve()),
        "files": hashlib.sha256(json.dumps(files).encode()).hexdigest(),
        "frame_step": bundle.config.data.frame_step,
    }
    label_names: dict[str, list[str]] = {}
    folder_labels = None
    if dataset.labels is not None:
        label_names["label"] = list(dataset.class_names)
    elif path.is_dir():
        parents = [p.parent.relative_to(path).as_posix() for p in dataset.paths[:count]]
        names = sorted(set(parents))
        if len(names) > 1:
            label_names["folder"] = names
            folder_labels = np.array([names.index(p) for p in parents], dtype=np.int64)
    title = f"{count} videos of {path.name}"
    return _Source(dataset, count, label_names, settings, title, folder_labels)


def _open_source(bundle: Bundle, choice: DataChoice) -> _Source:
    if choice.source == SYNTHETIC:
        return _physics_source(bundle, int(choice.count))
    if choice.source == FOLDER:
        return _folder_source(bundle, choice.folder)
    raise ValueError(f"unknown data source {choice.source!r}; choose one of {', '.join(SOURCES)}")


# ---------------------------------------------------------------------------------------------
# Extraction, with the disk cache.


@torch.no_grad()
def _extract(bundle: Bundle, source: _Source, progress: Progress | None) -> dict[str, Any]:
    """Mean-pooled target-encoder features, labels and names of every readable clip."""
    encoder = bundle.target_encoder
    features, kept, skipped = [], [], []
    labels: dict[str, list[int]] = {name: [] for name in source.label_names}
    for start in range(0, source.count, BATCH):
        clips = []
        for index in range(start, min(start + BATCH, source.count)):
            try:
                sample = source.dataset[index]
            except UnreadableError as err:
                skipped.append(f"{err.path.name}: {err.reason}")
                continue
            clips.append(sample["clip"])
            kept.append(index)
            for name in labels:
                if source.folder_labels is not None and name == "folder":
                    labels[name].append(int(source.folder_labels[index]))
                else:
                    labels[name].append(int(sample["labels"][name]))
        if clips:
            # At the run's own precision: bf16 roughly halves the time on CPUs with AMX.
            with autocast(bundle.device, bundle.config.precision):
                tokens = encoder(normalize_clip(torch.stack(clips).to(bundle.device)))
            features.append(tokens.float().mean(1).cpu().numpy())
        if progress is not None:
            done = min(start + BATCH, source.count)
            progress(done / source.count, f"features of {done} / {source.count} clips")
    if not kept:
        raise ValueError(f"none of the clips could be read: {'; '.join(skipped[:5])}")
    return {
        "features": np.concatenate(features).astype(np.float32),
        "indices": np.array(kept, dtype=np.int64),
        "labels": {name: np.array(values, dtype=np.int64) for name, values in labels.items()},
        "skipped": skipped,
    }


def _cache_path(key: str) -> Path:
    return FEATURE_CACHE_DIR / f"clips-{key}.npz"


def _save(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"label_{name}": values for name, values in data["labels"].items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}.npz")
    np.savez(
        tmp,
        features=data["features"],
        indices=data["indices"],
        skipped=np.array(data["skipped"], dtype=str),
        **arrays,
    )
    tmp.replace(path)


def _load(path: Path) -> dict[str, Any] | None:
    """The cached table data, or None when the file cannot be read (truncated, damaged, an
    older layout): it is deleted, with a warning, and the caller extracts the features again."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {
                "features": stored["features"],
                "indices": stored["indices"],
                "labels": {k[6:]: stored[k] for k in stored.files if k.startswith("label_")},
                "skipped": [str(s) for s in stored["skipped"]],
            }
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        log.warning(
            "clip-feature cache %s cannot be read (%s): deleted, extracting again", path.name, err
        )
        path.unlink(missing_ok=True)
        return None


def table_key(bundle_identity: dict[str, Any], settings: dict[str, Any]) -> str:
    text = json.dumps(
        {"format": TABLE_FORMAT, "bundle": bundle_identity, "data": settings}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


_tables: dict[str, ClipTable] = {}
_lock = threading.Lock()


def clip_table(
    bundle: Bundle,
    bundle_identity: dict[str, Any],
    choice: DataChoice,
    progress: Progress | None = None,
) -> ClipTable:
    """The table of `choice`'s clips under `bundle`: from memory, from disk, or extracted."""
    source = _open_source(bundle, choice)
    key = table_key(bundle_identity, source.settings)
    with _lock:
        if key in _tables:
            return _tables[key]
        path = _cache_path(key)
        data = _load(path) if path.is_file() else None
        if data is None:
            data = _extract(bundle, source, progress)
            _save(path, data)
        table = _make_table(key, source, data, bundle)
        if len(_tables) >= MAX_LOADED:
            _tables.pop(next(iter(_tables)))
        _tables[key] = table
        return table


def cached_table(key: str) -> ClipTable:
    """A table built earlier in this process, by its key."""
    table = _tables.get(key)
    if table is None:
        raise ValueError("this map is no longer in memory: press 'Map clips' again")
    return table


def _make_table(key: str, source: _Source, data: dict[str, Any], bundle: Bundle) -> ClipTable:
    indices = data["indices"]

    def clip_of(row: int) -> np.ndarray:
        clip = source.dataset[int(indices[row])]["clip"]  # uint8 [3, T, S, S]
        return bundle.fit_clip(clip).permute(1, 2, 3, 0).numpy()

    hover = []
    for row, index in enumerate(indices):
        parts = [f"clip {int(index)}"]
        if isinstance(source.dataset, VideoDataset):
            parts = [source.dataset.name_of(int(index) // source.dataset.clips_per_video)]
        for name, values in data["labels"].items():
            parts.append(f"{name}: {source.label_names[name][int(values[row])]}")
        hover.append("<br>".join(parts))
    return ClipTable(
        key=key,
        title=source.title,
        features=data["features"],
        labels=data["labels"],
        label_names=source.label_names,
        hover=hover,
        clip_of=clip_of,
        skipped=data["skipped"],
    )
