"""List files: one `path` or `path label` per line, as V-JEPA's space-separated CSV."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from train.data.base import DataError


@dataclass(frozen=True)
class VideoList:
    paths: list[Path]
    labels: list[int] | None
    class_names: list[str] | None


def label_ids(raw: Sequence[str]) -> tuple[list[int], list[str]]:
    """Non-negative integer labels are kept as given; names are numbered in sorted order."""
    if all(re.fullmatch(r"\d+", label) for label in raw):
        ids = [int(label) for label in raw]
        return ids, [str(i) for i in range(max(ids) + 1)]
    names = sorted(set(raw))
    number = {name: i for i, name in enumerate(names)}
    return [number[label] for label in raw], names


@dataclass(frozen=True)
class ListEntry:
    path: Path  # resolved against the list file's folder
    label: str | None  # the label word as written (None on unlabelled lines)


def read_list_entries(list_file: Path) -> list[ListEntry]:
    """The `path [label]` lines as written; blank lines and lines starting with # are ignored.

    The label is the last space-separated word, so paths may contain spaces when labelled.
    Either every line has a label or none has.
    """
    base = list_file.parent
    entries: list[ListEntry] = []
    unlabelled_lines: list[int] = []
    try:
        text = list_file.read_text()
    except UnicodeDecodeError:
        # Python's message quotes the offending byte: say what the file is instead.
        raise DataError(
            f"list file {list_file} is not UTF-8 text: give a folder of videos, a video, or a "
            "text file of `path [label]` lines"
        ) from None
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        words = line.rsplit(maxsplit=1)
        if len(words) == 1:
            unlabelled_lines.append(number)
        entries.append(
            ListEntry(base / Path(words[0]).expanduser(), words[1] if len(words) == 2 else None)
        )
    if not entries:
        raise DataError(f"list file {list_file} names no videos (expected `path [label]` lines)")
    if unlabelled_lines and len(unlabelled_lines) < len(entries):
        raise DataError(
            f"list file {list_file}: line {unlabelled_lines[0]} has no label but other lines do; "
            "give every line a label or none"
        )
    return entries


def read_list_file(list_file: Path) -> VideoList:
    """Paths and labels of a list file (`read_list_entries`), labels numbered by `label_ids`."""
    entries = read_list_entries(list_file)
    paths = [entry.path for entry in entries]
    if entries[0].label is None:
        return VideoList(paths, None, None)
    labels, class_names = label_ids([entry.label for entry in entries if entry.label is not None])
    return VideoList(paths, labels, class_names)
