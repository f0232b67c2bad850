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


def read_list_file(list_file: Path) -> VideoList:
    """Parse `path` or `path label` lines; blank lines and lines starting with # are ignored.

    The label is the last space-separated word, so paths may contain spaces when labelled.
    Either every line has a label or none has.
    """
    base = list_file.parent
    paths: list[Path] = []
    raw_labels: list[str] = []
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
        if len(words) == 2:
            raw_labels.append(words[1])
        else:
            unlabelled_lines.append(number)
        paths.append(base / Path(words[0]).expanduser())
    if not paths:
        raise DataError(f"list file {list_file} names no videos (expected `path [label]` lines)")
    if not raw_labels:
        return VideoList(paths, None, None)
    if unlabelled_lines:
        raise DataError(
            f"list file {list_file}: line {unlabelled_lines[0]} has no label but other lines do; "
            "give every line a label or none"
        )
    labels, class_names = label_ids(raw_labels)
    return VideoList(paths, labels, class_names)
