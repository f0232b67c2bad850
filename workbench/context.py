"""What every tab shares: the bundles, the clips of the sessions, the job manager, and the
server folders a page may name (`--data-dir`; none by default)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from decoder.bundle import STARTER_PATH
from workbench.bundles import BundleRegistry, OpenOptions
from workbench.clip_store import ClipStore
from workbench.data_dirs import DataDirs
from workbench.jobs import JobManager


@dataclass
class AppContext:
    registry: BundleRegistry
    jobs: JobManager
    clips: ClipStore = field(default_factory=ClipStore)
    data_dirs: DataDirs = field(default_factory=DataDirs)

    @property
    def runs_dir(self) -> Path:
        return self.registry.runs_dir

    @classmethod
    def create(
        cls,
        runs_dir: str | Path = "runs",
        bundle: str | Path | None = None,
        starter: str | Path = STARTER_PATH,
        data_dirs: Iterable[str | Path] = (),
        model_flag: str = "--bundle",
        model_options: OpenOptions | None = None,
    ) -> AppContext:
        """`bundle`: a model to list first (any path `--model` takes); `model_flag` names the
        option it came from in messages; `model_options` how it opens (bf16, a smaller clip)."""
        registry = BundleRegistry(
            runs_dir, starter, extra=bundle, extra_flag=model_flag, extra_options=model_options
        )
        return cls(
            registry,
            JobManager(runs_dir),
            data_dirs=DataDirs.of(data_dirs),
        )
