"""Sections of the docs that measuring scripts write: the text between two HTML comment markers.

    replace_section(Path("docs/results.md"), "physics-levers", text)

puts `text` between `<!-- physics-levers:start -->` and `<!-- physics-levers:end -->` in place of
what was there, or appends a new marked section when the file has none (creating the file, with a
title, when it is absent). The rest of the file is never touched, so several benchmarks can each
own a section of one page and re-run independently.
"""

from __future__ import annotations

from pathlib import Path


def markers(name: str) -> tuple[str, str]:
    """The start and end comments of section `name`."""
    return f"<!-- {name}:start -->", f"<!-- {name}:end -->"


def replace_section(path: Path, name: str, text: str, title: str = "Results") -> None:
    start, end = markers(name)
    old = path.read_text() if path.exists() else f"# {title}\n"
    block = f"{start}\n{text.strip()}\n{end}"
    if start in old and end in old.split(start, 1)[1]:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1]
        new = before + block + after
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(new)
