"""Sections of the docs that benchmark scripts write: the text between two HTML comment markers.

    replace_section(Path("docs/results.md"), "physics-levers", text)

replaces what lies between `<!-- physics-levers:start -->` and `<!-- physics-levers:end -->`,
or appends a new marked section when the file has none; the rest of the file is left as it is.
"""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, name: str, text: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else ""
    block = f"{start}\n{text.strip()}\n{end}"
    if start in old and end in old:
        before, rest = old.split(start, 1)
        after = rest.split(end, 1)[1]
        new = before + block + after
    else:
        new = old.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(new)
