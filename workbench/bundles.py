"""Which model bundles the app can use: the committed starter, any `bundle.safetensors` under
the runs folder (decoder fits, including those the Train tab starts), and one given with
`--bundle`. Loaded bundles are kept in memory, reloaded when their file changes.

A bundle is chosen by its key, the file's path as text; only files this registry listed can be
loaded, so a browser cannot make the server open an arbitrary path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from decoder.bundle import STARTER_PATH, Bundle, BundleError, load_bundle

BUNDLE_NAME = "bundle.safetensors"
STARTER_LABEL = "starter (committed)"
# Bundles held in memory at once; the teaching models are a few MB each.
MAX_LOADED = 4


@dataclass(frozen=True)
class BundleEntry:
    key: str
    label: str
    path: Path


class BundleRegistry:
    def __init__(
        self,
        runs_dir: str | Path = "runs",
        starter: str | Path = STARTER_PATH,
        extra: str | Path | None = None,
    ):
        self.runs_dir = Path(runs_dir)
        self.starter = Path(starter)
        self.extra = Path(extra) if extra is not None else None
        if self.extra is not None and not self.extra.is_file():
            raise BundleError(f"--bundle {self.extra}: no such file")
        self._loaded: dict[str, tuple[int, Bundle]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------ listing

    def entries(self) -> list[BundleEntry]:
        """Every bundle on disk now: --bundle first, then the starter, then runs by name."""
        found: list[BundleEntry] = []
        if self.extra is not None:
            label = f"{self.extra.parent.name}/{self.extra.name} (--bundle)"
            found.append(BundleEntry(str(self.extra), label, self.extra))
        if self.starter.is_file():
            found.append(BundleEntry(str(self.starter), STARTER_LABEL, self.starter))
        if self.runs_dir.is_dir():
            for path in sorted(self.runs_dir.rglob(BUNDLE_NAME)):
                label = path.parent.relative_to(self.runs_dir).as_posix()
                found.append(BundleEntry(str(path), f"run: {label}", path))
        unique = {entry.key: entry for entry in found}
        return list(unique.values())

    def choices(self) -> list[tuple[str, str]]:
        """(label, key) pairs for a dropdown."""
        return [(entry.label, entry.key) for entry in self.entries()]

    def default_key(self) -> str | None:
        entries = self.entries()
        return entries[0].key if entries else None

    def entry(self, key: str | None) -> BundleEntry:
        if not key:
            raise BundleError(
                "no model bundle is selected: build the starter with `make starter`, or train "
                "a model and fit its decoder in the Train tab, then pick it in the Model tab"
            )
        for entry in self.entries():
            if entry.key == key:
                return entry
        raise BundleError(f"{key} is not one of the available bundles (refresh the Model tab)")

    # ------------------------------------------------------------------------ loading

    def load(self, key: str | None) -> Bundle:
        """The bundle under `key`, in eval mode on the CPU; loaded once per file version."""
        entry = self.entry(key)
        version = entry.path.stat().st_mtime_ns
        with self._lock:
            cached = self._loaded.get(entry.key)
            if cached is not None and cached[0] == version:
                return cached[1]
            bundle = load_bundle(entry.path)
            if len(self._loaded) >= MAX_LOADED:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[entry.key] = (version, bundle)
            return bundle

    def identity(self, key: str | None) -> dict[str, Any]:
        """What makes this bundle file this file, for cache keys."""
        path = self.entry(key).path
        stat = path.stat()
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    def label_of(self, key: str | None) -> str:
        try:
            return self.entry(key).label
        except BundleError:
            return "no model"
