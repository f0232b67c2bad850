"""The server folders a browser may name: the allow-list given with `--data-dir` at start.

    dirs = DataDirs.of(["data/videos"])        # from `python -m workbench --data-dir data/videos`
    path = dirs.video_source("cats")           # a resolved folder, video or list file under one

A path typed in the page is resolved (symlinks, `..`) and must lie under one of the folders; a
relative one is taken relative to each folder in turn. With no folder given, none is allowed.
Whatever a video source names must lie there too: the videos a folder holds (symlinks
resolved) and every entry of a list file, which must be an existing file. Messages never quote
a file's contents: a text file given as a list file is refused by entry numbers, not by its
lines.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from train.data.base import DataError
from train.data.files import list_media
from train.data.listfile import read_list_file
from train.data.video import VIDEO_EXTENSIONS
from workbench.paths import shown

MAX_LIST_FILE_BYTES = 16 << 20
NO_DATA_DIRS = (
    "this app serves no video folders: start it with `python -m workbench --data-dir FOLDER` "
    "(repeatable) to map the videos under FOLDER"
)


class PathRefused(ValueError):
    """A path from the page that lies outside the data folders, or names what it must not."""


@dataclass(frozen=True)
class DataDirs:
    roots: tuple[Path, ...] = ()  # resolved, existing folders

    @classmethod
    def of(cls, folders: Iterable[str | os.PathLike[str]]) -> DataDirs:
        """The allow-list from the command line; every folder must exist."""
        roots = []
        for folder in folders:
            root = Path(folder).expanduser().resolve()
            if not root.is_dir():
                raise ValueError(f"--data-dir {folder}: not a folder on this machine")
            roots.append(root)
        return cls(tuple(dict.fromkeys(roots)))

    def describe(self) -> str:
        return ", ".join(shown(root) for root in self.roots) or "none"

    def contains(self, path: Path) -> bool:
        """Whether `path`, resolved, lies under (or is) one of the folders."""
        real = path.resolve()
        return any(real.is_relative_to(root) for root in self.roots)

    def resolve(self, text: str) -> Path:
        """The existing path `text` names under the folders, resolved; PathRefused otherwise.
        Outside the folders, whether the path exists is not told."""
        if not self.roots:
            raise PathRefused(NO_DATA_DIRS)
        text = (text or "").strip()
        if not text:
            raise PathRefused(
                f"type the path of a folder of videos (or of a list file) under {self.describe()}"
            )
        typed = Path(text)
        candidates = [typed] if typed.is_absolute() else [root / typed for root in self.roots]
        inside = [path.resolve() for path in candidates if self.contains(path)]
        for path in inside:
            if path.exists():
                return path
        if inside:
            raise PathRefused(f"{text} does not exist under the data folders ({self.describe()})")
        raise PathRefused(
            f"{text} lies outside the folders this app serves ({self.describe()}); the person "
            "who starts the app chooses them with --data-dir"
        )

    def video_source(self, text: str) -> Path:
        """A folder of videos, a video or a list file under the folders, checked with all it
        names; the resolved path."""
        path = self.resolve(text)
        if path.is_dir():
            outside = [p for p in list_media(path, VIDEO_EXTENSIONS) if not self.contains(p)]
            if outside:
                raise PathRefused(
                    f"{len(outside)} videos under {text} are links to files outside the data "
                    "folders; the app does not read them"
                )
        elif path.suffix.lower() not in VIDEO_EXTENSIONS:
            self._check_list_file(path, text)
        return path

    def _check_list_file(self, path: Path, text: str) -> None:
        if path.stat().st_size > MAX_LIST_FILE_BYTES:
            raise PathRefused(
                f"{text} is not a video and too large for a list file "
                f"(over {MAX_LIST_FILE_BYTES >> 20} MiB)"
            )
        try:
            listed = read_list_file(path)
        except DataError as err:  # it names the file as resolved: name it as typed
            raise PathRefused(str(err).replace(os.fspath(path), text)) from None
        bad = [n for n, p in enumerate(listed.paths, 1) if not (self.contains(p) and p.is_file())]
        if bad:
            raise PathRefused(
                f"{text} is not a video, nor a list file of videos under the data folders: "
                f"{len(bad)} of its {len(listed.paths)} entries name no file there (the first "
                f"is entry {bad[0]}). A list file holds one `path [label]` per line."
            )
