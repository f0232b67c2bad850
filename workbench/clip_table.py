"""Clip features of a whole dataset, for the embedding map: one mean-pooled feature vector per
clip, its labels, and a way to get the clip back for thumbnails.

Sources: the physics world (a held-out world of its own, labelled shape / direction / speed /
count, and by what the scene shows besides: background, bar, object colour and size) or a folder
of videos (labelled by sub-folder when there are several, or by a list
file's labels). Features come from the bundle's target encoder and are cached on disk under
`.cache/workbench/`, keyed by the bundle file and the data, so the second map of the same data
is instant.
"""

from __future__ import annotations

import colorsys
import csv
import hashlib
import json
import logging
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from decoder.bundle import Bundle
from train.data.files import UnreadableError
from train.data.synthetic import RADIUS_RANGE, PhysicsWorld
from train.data.video import VideoDataset
from train.eval.features import cached_file, encode_clips, settings_key
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
    names: list[str] = field(default_factory=list)  # per row: "clip 12" or the video's name
    video_paths: list[Path] | None = None  # per row, resolved; None for the physics world

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


# Labels of what a physics clip shows besides its main object's motion. The neighbours of a
# clip often share its background rather than its shape: these make that visible on the map.
SCENE_LABEL_NAMES: dict[str, list[str]] = {
    "background": ["very dark", "dark", "light", "very light"],
    "bar": ["no bar", "bar"],
    "colour": ["red", "yellow", "green", "cyan", "blue", "magenta"],
    "size": ["small", "medium", "large"],
}
# Background lightness splits: the world draws dark backgrounds at 8-28% and light ones at
# 70-90%; each range is cut in half.
LIGHTNESS_SPLITS = (0.18, 0.5, 0.8)


def scene_labels(world: PhysicsWorld, indices: np.ndarray) -> dict[str, np.ndarray]:
    """SCENE_LABEL_NAMES values of clips `indices`, from their scenes (nothing rendered)."""
    low, high = RADIUS_RANGE
    size_splits = np.linspace(low, high, 4)[1:3] * world.img_size
    values: dict[str, list[int]] = {name: [] for name in SCENE_LABEL_NAMES}
    for index in indices:
        scene = world.clip_params(int(index))
        main = scene.objects[0]
        lightness = float(np.mean(scene.background)) / 255.0
        hue = colorsys.rgb_to_hsv(*(c / 255.0 for c in main.colour))[0]
        values["background"].append(int(np.searchsorted(LIGHTNESS_SPLITS, lightness)))
        values["bar"].append(int(scene.occluder is not None))
        values["colour"].append(round(hue * 6) % 6)  # hue bins centred on red, yellow, ...
        values["size"].append(int(np.searchsorted(size_splits, main.radius)))
    return {name: np.array(v, dtype=np.int64) for name, v in values.items()}


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
            precision = bundle.config.precision
            tokens = encode_clips(encoder, torch.stack(clips), bundle.device, precision)
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


def _save(data: dict[str, Any], path: Path) -> None:
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


def _load(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as stored:
        return {
            "features": stored["features"],
            "indices": stored["indices"],
            "labels": {k[6:]: stored[k] for k in stored.files if k.startswith("label_")},
            "skipped": [str(s) for s in stored["skipped"]],
        }


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
    key = settings_key({"format": TABLE_FORMAT, "bundle": bundle_identity, "data": source.settings})
    with _lock:
        if key in _tables:
            return _tables[key]
        path = FEATURE_CACHE_DIR / f"clips-{key}.npz"
        extract = lambda: _extract(bundle, source, progress)
        data = cached_file(path, extract, _load, _save, "clip-feature cache")
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
    labels = dict(data["labels"])
    label_names = dict(source.label_names)
    video_paths = None
    if isinstance(source.dataset, PhysicsWorld):
        labels.update(scene_labels(source.dataset, indices))
        label_names.update(SCENE_LABEL_NAMES)
    else:
        per_video = source.dataset.clips_per_video
        video_paths = [source.dataset.paths[int(i) // per_video].resolve() for i in indices]

    def clip_of(row: int) -> np.ndarray:
        clip = source.dataset[int(indices[row])]["clip"]  # uint8 [3, T, S, S]
        return bundle.fit_clip(clip).permute(1, 2, 3, 0).numpy()

    hover, names = [], []
    for row, index in enumerate(indices):
        names.append(f"clip {int(index)}")
        if isinstance(source.dataset, VideoDataset):
            names[-1] = source.dataset.name_of(int(index) // source.dataset.clips_per_video)
        parts = [names[-1]]
        for name, values in labels.items():
            parts.append(f"{name}: {label_names[name][int(values[row])]}")
        hover.append("<br>".join(parts))
    return ClipTable(
        key=key,
        title=source.title,
        features=data["features"],
        labels=labels,
        label_names=label_names,
        hover=hover,
        clip_of=clip_of,
        skipped=data["skipped"],
        names=names,
        video_paths=video_paths,
    )


# ---------------------------------------------------------------------------------------------
# Labels from a CSV the user uploads, and a selection exported as a list file.

MAX_CSV_BYTES = 4 << 20
UNLABELLED = "(unlabelled)"


def _row_keys(name: str) -> list[str]:
    """How a CSV may name a clip: `clip 12` or `12`; `cats/0.mp4`, `0.mp4` or `0`."""
    if name.startswith("clip "):
        return [name, name[5:]]
    path = Path(name)
    return [name, path.name, path.stem]


def labels_from_csv(data: bytes, names: list[str]) -> tuple[str, np.ndarray, list[str]]:
    """(label title, int64 [N] values, class names) from CSV lines `file name, label`.

    `names` are the table's clip names. A first line that names no clip is a header; its second
    cell titles the label. Clips the CSV does not name get UNLABELLED.
    """
    if len(data) > MAX_CSV_BYTES:
        raise ValueError(f"the label CSV is over {MAX_CSV_BYTES >> 20} MiB")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError("the label CSV is not UTF-8 text") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the label CSV is empty: give lines `file name, label`")
    # Comma-separated, or tab- or semicolon-separated as spreadsheets export them.
    delimiter = next((d for d in ",\t;" if d in lines[0]), ",")
    rows = [[cell.strip() for cell in row] for row in csv.reader(lines, delimiter=delimiter)]
    row_of = {key: row for row, name in enumerate(names) for key in _row_keys(name)}
    title, first_line = "uploaded", 1
    if rows[0][0] not in row_of:  # a header
        title = rows[0][1] if len(rows[0]) > 1 and rows[0][1] else title
        rows, first_line = rows[1:], 2
    short = [n for n, row in enumerate(rows, first_line) if len(row) < 2 or not row[1]]
    if short:
        raise ValueError(
            f"line {short[0]} of the label CSV has no label: each line is `file name, label`"
        )
    given = {row_of[row[0]]: row[1] for row in rows if row[0] in row_of}
    if not given:
        raise ValueError(
            f"none of the {len(rows)} names in the label CSV is a clip on the map: name clips as "
            f"the map does (`{names[0]}`), by file name or by number"
        )
    class_names = sorted(set(given.values()))
    if len(given) < len(names):
        class_names.append(UNLABELLED)
    number = {label: i for i, label in enumerate(class_names)}
    values = [number[given.get(row, UNLABELLED)] for row in range(len(names))]
    return f"csv: {title}", np.array(values, dtype=np.int64), class_names


def _label_word(text: str) -> str:
    """A label as one word: a list file's label is the last space-separated word of a line."""
    return re.sub(r"\s+", "_", text.strip()) or "_"


def export_selection(
    table: ClipTable,
    rows: list[int],
    folder: Path,
    labels: np.ndarray | None = None,
    label_names: list[str] | None = None,
    fps: float = 8.0,
) -> Path:
    """Write the clips `rows` as a list file `selection.txt` in `folder`, one `path label` per
    line, which `read_list_file` (training's and evaluation's `data.path=`) reads back.

    Videos are listed by their resolved paths (a video with several clips on the map once).
    Physics clips have no files: they are written next to the list as mp4s, listed by name, so
    the folder can be moved as a whole. Labels are `labels` by `label_names` ("selected" when
    none), spaces turned into underscores.
    """
    from workbench.video_io import write_mp4  # PyAV: only when exporting

    folder.mkdir(parents=True, exist_ok=True)
    lines: dict[str, str] = {}
    for row in rows:
        label = "selected" if labels is None else _label_word(label_names[int(labels[row])])
        if table.video_paths is not None:
            entry = str(table.video_paths[row])
        else:
            entry = f"{table.names[row].replace(' ', '-')}.mp4"
            write_mp4(table.clip_of(row), folder / entry, fps)
        lines.setdefault(entry, label)
    path = folder / "selection.txt"
    header = f"# {len(lines)} clips of {table.title}, exported by the workbench: `path label`\n"
    path.write_text(header + "".join(f"{entry} {label}\n" for entry, label in lines.items()))
    return path
