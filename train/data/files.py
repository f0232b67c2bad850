"""Media files and the datasets over them: the error for a file that cannot be read, the
once-per-process warning, the training fallback to the next readable item, the start-up probe,
listing a folder of media, and `MediaDataset`, the part the video and image datasets share.
"""

from __future__ import annotations

import math
import operator
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import torch

from train.data.base import DataError, Draw, Sample, draw_generator
from train.data.transforms import EvalTransform, TrainTransform, eval_short_side

PROBE_LIMIT = 32
MAX_SKIP_ATTEMPTS = 16
T = TypeVar("T")


class UnreadableError(RuntimeError):
    """A media file that cannot give a sample; `reason` is written for the user to act on."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"cannot read {path}: {reason}")
        self.path = path
        self.reason = reason


class SkippedFileWarning(UserWarning):
    """Emitted once per bad file per process when training substitutes another item."""


_warned_files: set[str] = set()


def warn_once(message: str, path: Path) -> None:
    """`warnings.warn(message)` the first time `path` is reported in this process."""
    key = os.fspath(path)
    if key not in _warned_files:
        _warned_files.add(key)
        warnings.warn(message, SkippedFileWarning, stacklevel=3)


def load_with_fallback(
    start: int,
    count: int,
    load: Callable[[int], T],
    name_of: Callable[[int], str],
    max_attempts: int = MAX_SKIP_ATTEMPTS,
) -> tuple[T, list[str]]:
    """`load(start)`; if that item is unreadable, `load(start + 1)`, ... wrapping around.

    Returns the loaded item and one "skipped NAME: REASON" message per unreadable item passed
    over. Raises DataError when `max_attempts` items in a row are unreadable: the data is then
    mostly broken and the run should stop rather than spin.
    """
    skipped: list[str] = []
    for offset in range(min(max_attempts, count)):
        item = (start + offset) % count
        try:
            return load(item), skipped
        except UnreadableError as err:
            message = f"skipped {name_of(item)}: {err.reason}"
            skipped.append(message)
            warn_once(message, err.path)
    raise DataError(
        f"{len(skipped)} items in a row from item {start} on are unreadable; "
        f"check the data: {'; '.join(skipped)}"
    )


def require_readable(
    count: int,
    probe: Callable[[int], None],
    name_of: Callable[[int], str],
    where: Path,
    kind: str,
    limit: int = PROBE_LIMIT,
) -> None:
    """Probe items in order until one reads; raise DataError if none of the first `limit` does.

    Stopping at the first readable item keeps construction cheap on a healthy folder. Only a
    bounded sample is probed, so a huge folder whose first `limit` files are all bad is refused
    even if later ones would read: that folder is too broken to train on anyway.
    """
    failures = []
    for item in range(min(count, limit)):
        try:
            probe(item)
            return
        except UnreadableError as err:
            failures.append(f"{name_of(item)}: {err.reason}")
    tried = f"{count} files" if count <= limit else f"the first {limit} of {count} files probed"
    raise DataError(f"no readable {kind} among {tried} in {where}: {'; '.join(failures)}")


def list_media(root: Path, extensions: Sequence[str]) -> list[Path]:
    """Files below `root` with one of `extensions` (any case), sorted by path.

    Hidden files and folders are left out: they are mostly editor or OS debris such as macOS
    "._clip.mp4" resource forks, which carry a video suffix but no video. Names with a media
    suffix that are no files (a folder called x.mp4, a link loop, a broken link) are left out
    with one warning.
    """

    candidates = [
        path
        for path in root.rglob("*")
        if path.suffix.lower() in extensions
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    ]
    files = [path for path in candidates if path.is_file()]
    if len(files) < len(candidates):
        _warn_not_files([path for path in candidates if not path.is_file()], root)
    return sorted(files)


def _warn_not_files(paths: list[Path], root: Path) -> None:
    """One warning per folder and process for names with a media suffix that are no files."""

    def what(path: Path) -> str:
        if path.is_dir():
            return "a folder"
        return "a link loop or a broken link" if path.is_symlink() else "not a regular file"

    shown = "; ".join(f"{display_name(p, root)} ({what(p)})" for p in sorted(paths)[:5])
    more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
    warn_once(f"ignored {len(paths)} entries under {root} that are no files: {shown}{more}", root)


def no_media_message(root: Path, extensions: Sequence[str], kind: str) -> str:
    """Why a folder gave nothing, with the suffixes it does hold (often the real answer)."""
    suffixes = sorted({p.suffix.lower() or "(none)" for p in root.rglob("*") if p.is_file()})
    held = f"it holds files with suffixes {', '.join(suffixes)}" if suffixes else "it is empty"
    return f"no {kind} files ({', '.join(extensions)}) under {root}: {held}"


def display_name(path: Path, base: Path) -> str:
    """`path` relative to `base` when it lies below it (short, still unambiguous), else in full."""
    try:
        return path.relative_to(base).as_posix()
    except ValueError:
        return str(path)


class MediaDataset:
    """What the video and image datasets share: the transforms and their decode sizes, the
    start-up probe, `dataset[int | Draw]` (see train/data/base.py), the training view's
    fallback to the next readable file, and the evaluation view, which never substitutes.

    A subclass sets `paths` (and `labels`) through `__init__`, then calls `_require_readable`,
    and gives the two clips: `_training_clip(file, generator)` and `_evaluation_clip(index)`,
    both uint8 [C, T, H, W] after the transform.
    """

    kind = "file"  # how messages name one file: "video", "image"
    unit = "files"  # how messages name the items the int index counts

    def __init__(
        self,
        source: Path,
        paths: list[Path],
        labels: list[int] | None,
        *,
        img_size: int,
        crop_scale: tuple[float, float],
        crop_aspect: tuple[float, float],
        hflip: bool,
        max_skip_attempts: int,
    ) -> None:
        self.source = source
        self.paths = paths
        self.labels = labels
        self._base = source.parent  # messages name files relative to it
        self.img_size = img_size
        self.max_skip_attempts = max_skip_attempts
        self.train_transform = TrainTransform(img_size, crop_scale, crop_aspect, hflip)
        self.eval_transform = EvalTransform(img_size)
        self.eval_short_side = eval_short_side(img_size)
        # Bigger than img_size / sqrt(min scale) buys no detail for most crops, only memory.
        smallest_crop = math.ceil(self.train_transform.smallest_crop_side())
        self.train_short_side = max(self.eval_short_side, min(smallest_crop, 2 * img_size))

    @property
    def clips_per_file(self) -> int:
        return 1

    def _require_readable(self, probe: Callable[[int], object], limit: int) -> None:
        require_readable(len(self.paths), probe, self.name_of, self.source, self.kind, limit)

    def _training_clip(self, file: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def _evaluation_clip(self, index: int) -> torch.Tensor:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.paths) * self.clips_per_file

    def __getitem__(self, key: int | Draw) -> Sample:
        if isinstance(key, Draw):
            return self._training_view(key)
        try:
            index = operator.index(key)
        except TypeError:
            raise TypeError(f"index with an int or a Draw, not {type(key).__name__}") from None
        return self._evaluation_view(index)

    def name_of(self, file: int) -> str:
        """How messages name file `file`: its path relative to the source's folder."""
        return display_name(self.paths[file], self._base)

    def labels_of(self, file: int) -> dict[str, int]:
        return {} if self.labels is None else {"label": self.labels[file]}

    def _file_of(self, index: int) -> int:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} {self.unit}")
        return index // self.clips_per_file

    def _training_view(self, draw: Draw) -> Sample:
        def load(file: int) -> Sample:
            # A fresh generator per attempt: a substitute gets the draws it would get itself.
            clip = self._training_clip(file, draw_generator(draw.seed))
            return {"clip": clip.contiguous(), "labels": self.labels_of(file)}

        sample, skipped = load_with_fallback(
            self._file_of(draw.index), len(self.paths), load, self.name_of, self.max_skip_attempts
        )
        if skipped:
            sample["skipped"] = skipped
        return sample

    def _evaluation_view(self, index: int) -> Sample:
        if index < 0:
            index += len(self)
        file = self._file_of(index)
        try:
            clip = self._evaluation_clip(index)
        except UnreadableError as err:
            raise UnreadableError(
                err.path, f"{err.reason} (evaluation never substitutes: fix or remove the file)"
            ) from None
        return {"clip": clip.contiguous(), "labels": self.labels_of(file)}
