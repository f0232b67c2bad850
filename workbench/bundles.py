"""Which models the app can use: the committed starter, any `bundle.safetensors` under the runs
folder (decoder fits, including those the Train tab starts), the runs there that have no decoder
yet (listed as "run (no decoder)"), and one given with `--model` (or `--bundle`). Loaded models
are kept in memory, reloaded when their file changes.

A model without a decoder is a `Bundle` whose `decoder` is None (decoder.bundle.without_decoder):
every tab works on it, Predict shows the predicted latents instead of decoded pixels.

A model is chosen by its key, the loaded file's path as text; only files this registry listed
can be loaded, so a browser cannot make the server open an arbitrary path.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from decoder.bundle import STARTER_PATH, Bundle, BundleError, load_bundle, without_decoder
from train.checkpoint import LATEST
from train.config import ConfigError
from train.pretrained import WEIGHT_DTYPES, cast_weights, resized_config
from train.streamed_weights import models_from_file
from workbench.runs import core_runs, is_core_run

BUNDLE_NAME = "bundle.safetensors"
STARTER_LABEL = "starter (committed)"
NO_DECODER = "run (no decoder)"
# Where, inside a run directory, the Train tab puts its decoder fit.
DECODER_SUBDIR = "decoder"
# Bundles held in memory at once; the teaching models are a few MB each.
MAX_LOADED = 4


@dataclass(frozen=True)
class BundleEntry:
    key: str
    label: str
    path: Path  # the file loaded: a bundle, or a run's checkpoint when has_decoder is False
    has_decoder: bool = True


def run_bundle(run_dir: Path) -> Path | None:
    """The decoder bundle kept in a run directory (a decoder fit, or the Train tab's
    RUN/decoder/), if any."""
    for path in (run_dir / BUNDLE_NAME, run_dir / DECODER_SUBDIR / BUNDLE_NAME):
        if path.is_file():
            return path
    return None


def model_entry(path: Path, flag: str = "--model") -> BundleEntry:
    """The entry for a path given on the command line: a bundle file, a checkpoint file, or a
    run directory (a training, an imported release, a decoder fit). A run with a decoder bundle
    in it opens with that decoder."""
    name = f"{path.parent.name}/{path.name}" if path.parent.name else path.name
    if path.is_dir():
        bundle = run_bundle(path)
        if bundle is not None:
            return BundleEntry(str(bundle), f"{name} ({flag})", bundle)
        if is_core_run(path):
            checkpoint = path / "checkpoints" / LATEST
        elif (path / LATEST).is_file():  # a run's checkpoints/ folder
            checkpoint = path / LATEST
        else:
            raise BundleError(
                f"{flag} {path}: a folder, but not a run directory (no checkpoints/{LATEST} "
                f"with a training config.yaml) nor a decoder fit (no {BUNDLE_NAME}). Give a "
                "run directory, a checkpoint file or a bundle; import a released V-JEPA file "
                "first with `python -m train.released FILE RUN_DIR`"
            )
        return BundleEntry(str(checkpoint), f"{name} ({flag}, no decoder)", checkpoint, False)
    if not path.is_file():
        raise BundleError(
            f"{flag} {path}: no such file or folder (give a run directory, a checkpoint file "
            "or a bundle .safetensors)"
        )
    if path.suffix == ".safetensors":
        return BundleEntry(str(path), f"{name} ({flag})", path)
    return BundleEntry(str(path), f"{name} ({flag}, no decoder)", path, False)


@dataclass(frozen=True)
class OpenOptions:
    """How the `--model` model opens, for big models on a CPU: weights in bf16 (half the
    memory, outputs within docs/training.md's tolerance of fp32), and a smaller clip (fewer
    frames or pixels: fewer tokens, a faster Predict). None keeps the model's own size."""

    weights: str = "fp32"
    num_frames: int | None = None
    img_size: int | None = None

    @property
    def resizes(self) -> bool:
        return self.num_frames is not None or self.img_size is not None

    def check(self) -> OpenOptions:
        if self.weights not in WEIGHT_DTYPES:
            raise ConfigError(f"--weights {self.weights}: use one of {', '.join(WEIGHT_DTYPES)}")
        return self


def opened_with(bundle: Bundle, options: OpenOptions) -> Bundle:
    """The bundle with `options` applied: a resize gives a new Bundle (its config), bf16 casts
    the weights in place (the registry holds one copy of a model)."""
    options.check()
    if options.resizes:
        if bundle.has_decoder:
            raise BundleError(
                "--frames / --img-size apply to models without a pixel decoder: a decoder is "
                "fitted at one clip size. Open the run's checkpoint "
                "(RUN/checkpoints/latest.pt) instead, or fit a decoder at the smaller size"
            )
        try:
            config = resized_config(bundle.config, options.num_frames, options.img_size)
        except ConfigError as err:  # a BundleError stops the app at start with the reason
            raise BundleError(f"--frames / --img-size: {err}") from None
        bundle = bundle.with_config(config)
    dtype = WEIGHT_DTYPES[options.weights]
    if dtype != torch.float32:
        # The pixel decoder (a few MB) stays float32: it reads the latents as float32.
        cast_weights(bundle.pretrained, dtype)
    return bundle


def load_without_decoder(path: Path, dtype: torch.dtype = torch.float32) -> Bundle:
    """A core checkpoint -> its models in a Bundle with no decoder, in eval mode on the CPU,
    their weights in `dtype`: read from the file straight into that precision, so a bf16 ViT-L
    never holds its float32 weights while it opens (train.streamed_weights)."""
    try:
        pretrained, state = models_from_file(path, dtype)
    except (KeyError, TypeError, ConfigError) as err:
        raise BundleError(
            f"{path} is not a checkpoint of `python -m train` ({type(err).__name__}: {err}). "
            "A released V-JEPA file must be imported first: "
            "`python -m train.released FILE RUN_DIR`, then open RUN_DIR"
        ) from None
    pretrain = {"checkpoint": str(path), "steps": pretrained.step, "loss": state.get("loss")}
    provenance: dict[str, Any] = {"pretrain": pretrain, "decoder": None}
    if "import_report" in state:
        provenance["import_report"] = state["import_report"]
    return without_decoder(pretrained, provenance)


class BundleRegistry:
    def __init__(
        self,
        runs_dir: str | Path = "runs",
        starter: str | Path = STARTER_PATH,
        extra: str | Path | None = None,
        extra_flag: str = "--bundle",
        extra_options: OpenOptions | None = None,
    ):
        self.runs_dir = Path(runs_dir)
        self.starter = Path(starter)
        self.extra = model_entry(Path(extra), extra_flag) if extra is not None else None
        # Only the model named on the command line opens with these; the others as they are.
        self.extra_options = (extra_options or OpenOptions()).check()
        # Models opened from the Model tab's path field, with their options (key -> ...).
        self._opened: dict[str, tuple[BundleEntry, OpenOptions]] = {}
        self._loaded: dict[str, tuple[int, Bundle]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------ listing

    def entries(self) -> list[BundleEntry]:
        """Every model on disk now: --model (--bundle) first, then the starter, then bundles
        under the runs folder by name, then its runs that have no decoder bundle."""
        found: list[BundleEntry] = []
        if self.extra is not None and self.extra.path.is_file():
            found.append(self.extra)
        found += [entry for entry, _ in self._opened.values() if entry.path.is_file()]
        if self.starter.is_file():
            found.append(BundleEntry(str(self.starter), STARTER_LABEL, self.starter))
        if self.runs_dir.is_dir():
            for path in sorted(self.runs_dir.rglob(BUNDLE_NAME)):
                label = path.parent.relative_to(self.runs_dir).as_posix()
                found.append(BundleEntry(str(path), f"run: {label}", path))
            for run in core_runs(self.runs_dir):
                if run_bundle(run) is None:
                    checkpoint = run / "checkpoints" / LATEST
                    label = f"{NO_DECODER}: {run.relative_to(self.runs_dir).as_posix()}"
                    found.append(BundleEntry(str(checkpoint), label, checkpoint, False))
        unique: dict[str, BundleEntry] = {}
        for entry in found:  # the first listing of a file wins (its label says --model)
            unique.setdefault(entry.key, entry)
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
                "no model bundle is selected: build the starter with `make starter`, train a "
                "model in the Train tab, or open one with `python -m workbench --model PATH`, "
                "then pick it in the Model tab"
            )
        for entry in self.entries():
            if entry.key == key:
                return entry
        raise BundleError(f"{key} is not one of the available bundles (refresh the Model tab)")

    # ------------------------------------------------------------------------ loading

    def load(self, key: str | None) -> Bundle:
        """The model under `key`, in eval mode on the CPU; loaded once per file version."""
        entry = self.entry(key)
        version = entry.path.stat().st_mtime_ns
        with self._lock:
            cached = self._loaded.get(entry.key)
            if cached is not None and cached[0] == version:
                return cached[1]
            options = self.options_for(entry.key)
            dtype = WEIGHT_DTYPES[options.weights]
            if entry.has_decoder:
                bundle = load_bundle(entry.path, weight_dtype=dtype)
            else:
                bundle = load_without_decoder(entry.path, dtype)
            bundle = opened_with(bundle, options)
            if len(self._loaded) >= MAX_LOADED:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[entry.key] = (version, bundle)
            return bundle

    def options_for(self, key: str) -> OpenOptions:
        """How the model under `key` opens: the --model model with the command line's options,
        every other one as it is."""
        if self.extra is not None and key == self.extra.key:
            return self.extra_options
        if key in self._opened:
            return self._opened[key][1]
        return OpenOptions()

    def open_path(self, path: Path, options: OpenOptions, flag: str) -> BundleEntry:
        """Open a run directory, checkpoint or bundle that the caller has checked may be opened
        (the Model tab's path field: under the runs folder or a data folder) with `options`,
        and list it from now on; its entry. BundleError / CheckpointError when it cannot be
        opened; it is then not listed. Opening a listed file again applies the new options."""
        options.check()
        entry = model_entry(path, flag)
        if self.extra is not None and entry.key == self.extra.key:
            raise BundleError(
                "that model was opened with --model when the app started; pick it in the list "
                "(its options are the command line's)"
            )
        with self._lock:
            previous = self._opened.get(entry.key)
            self._opened[entry.key] = (entry, options)
            self._loaded.pop(entry.key, None)  # reopened with these options
        try:
            self.load(entry.key)
        except Exception:
            with self._lock:
                if previous is None:
                    self._opened.pop(entry.key, None)
                else:
                    self._opened[entry.key] = previous
            raise
        return entry

    def identity(self, key: str | None) -> dict[str, Any]:
        """What makes this bundle file this file, for cache keys."""
        path = self.entry(key).path
        stat = path.stat()
        return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
