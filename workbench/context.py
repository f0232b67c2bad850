"""What every tab shares: the bundles, the clips of the sessions, the job manager."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from decoder.bundle import STARTER_PATH
from workbench.bundles import BundleRegistry
from workbench.clip_store import ClipStore
from workbench.training import JobManager


@dataclass
class AppContext:
    registry: BundleRegistry
    jobs: JobManager
    clips: ClipStore = field(default_factory=ClipStore)

    @property
    def runs_dir(self) -> Path:
        return self.registry.runs_dir

    @classmethod
    def create(
        cls,
        runs_dir: str | Path = "runs",
        bundle: str | Path | None = None,
        starter: str | Path = STARTER_PATH,
    ) -> AppContext:
        return cls(BundleRegistry(runs_dir, starter, extra=bundle), JobManager(runs_dir))
