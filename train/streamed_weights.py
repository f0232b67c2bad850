"""Open a checkpoint's models in the precision they will run in, without a float32 copy of them.

The plain way (train.pretrained.models_from_state) reads the whole file into memory, builds
float32 models with random weights, copies the weights in and, for bf16, casts afterwards: a
ViT-L peaks at about twice its float32 size before settling at half of it. Here

* the models are built on the meta device (shapes, no storage, no random init) and then given
  storage directly in the target dtype; position tables (buffers) keep float32;
* the file is memory-mapped (`torch.load(mmap=True)`): a tensor is read from disk when it is
  copied, cast on the way, into its place in the model;
* on Linux each source tensor's pages are handed back (madvise MADV_DONTNEED) once copied, so the
  process never holds more than one float32 tensor of the file at a time. Only pages of a private
  mapping of the checkpoint file itself are handed back, and nothing writes to it: touching
  them again reads them from the file again, so nothing can be lost.

Loading stays strict: every missing, unexpected or mis-shaped key is listed before anything is
copied. With float32 the result equals the plain way's exactly.
"""

from __future__ import annotations

import ctypes
import mmap
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from train.checkpoint import load_checkpoint
from train.config import Config, from_dict
from train.pretrained import MODEL_PARTS, Pretrained, build_models, cast_weights, state_problems

Release = Callable[[torch.Tensor], None]
MADV_DONTNEED = 4  # Linux's value (asm-generic/mman-common.h)


def empty_models(cfg: Config, dtype: torch.dtype) -> Pretrained:
    """The run's models with uninitialised parameters in `dtype` and float32 buffers, in eval
    mode: only what a checkpoint then fills. The float32 random init never happens."""
    with torch.device("meta"):
        models = build_models(cfg)
    cast_weights(models, dtype)  # on meta: only the dtype changes, nothing is allocated
    for part in MODEL_PARTS:
        getattr(models, part).to_empty(device="cpu")
    return models.eval()


def fill_streamed(
    module: nn.Module, state: Mapping[str, torch.Tensor], what: str, release: Release
) -> None:
    """Copy `state` into `module` tensor by tensor (cast to each parameter's dtype), handing
    each source tensor's memory back after its copy. CheckpointError lists every disagreement
    at once, before anything is copied."""
    state_problems(module, state, what)
    own = module.state_dict()  # tensors sharing the module's storage
    with torch.no_grad():
        for name, source in state.items():
            own[name].copy_(source)
            release(source)


def models_from_file(
    path: str | Path, dtype: torch.dtype = torch.float32
) -> tuple[Pretrained, dict]:
    """A checkpoint file -> (its models in eval mode on the CPU, parameters in `dtype`; the
    checkpoint's other entries: step, loss, import report, ...). KeyError / TypeError /
    ConfigError when the file is not a checkpoint of `python -m train`, as models_from_state."""
    path = Path(path)
    # mmap needs torch's zip format (every torch.save since 1.6); an older file loads whole.
    mapped = zipfile.is_zipfile(path)
    state = load_checkpoint(path, mmap=mapped)
    release = file_page_releaser(path) if mapped else _keep
    models = empty_models(from_dict(Config, state["config"]), dtype)
    for part in MODEL_PARTS:
        fill_streamed(getattr(models, part), state.pop(part), part, release)
    models.step = int(state.get("step", 0))
    return models, state


def _keep(_tensor: torch.Tensor) -> None:
    """Nothing to hand back (the file was read whole; its memory goes with the dict)."""


def file_page_releaser(path: Path) -> Release:
    """A function that hands back the pages under a tensor when they belong to a mapping of
    `path` (Linux); a no-op elsewhere, or for any tensor outside such a mapping."""
    if not sys.platform.startswith("linux"):
        return _keep
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        spans = _mapped_spans(path.resolve())
    except (AttributeError, OSError):
        return _keep
    page = mmap.PAGESIZE

    def release(tensor: torch.Tensor) -> None:
        start, end = tensor.data_ptr(), tensor.data_ptr() + tensor.nbytes
        for low, high in spans:
            if low <= start and end <= high:
                # Whole pages around the tensor, inside the mapping: a neighbour's bytes on a
                # shared page are read from the file again if they are touched later.
                first = max(low, start // page * page)
                last = min(high, -(-end // page) * page)
                libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first), MADV_DONTNEED)
                return

    return release


def file_pages_dropper(path: Path) -> Callable[[], None]:
    """A function that hands back every page of this process's read-only mappings of `path`
    (safetensors maps a whole file; Linux); a no-op elsewhere. Pages touched again are read
    from the file again."""
    if not sys.platform.startswith("linux"):
        return lambda: None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except (AttributeError, OSError):
        return lambda: None
    resolved = path.resolve()

    def drop() -> None:
        for low, high in _mapped_spans(resolved):
            libc.madvise(ctypes.c_void_p(low), ctypes.c_size_t(high - low), MADV_DONTNEED)

    return drop


def _mapped_spans(path: Path) -> list[tuple[int, int]]:
    """Address ranges of this process's mappings of `path` that nothing can write through:
    private ones (torch.load's) and read-only shared ones (safetensors')."""
    spans = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        perms = fields[1] if len(fields) == 6 else ""
        read_only = perms[:2] == "r-"
        if fields[-1] == str(path) and perms.startswith("r") and (perms.endswith("p") or read_only):
            low, high = (int(x, 16) for x in fields[0].split("-"))
            spans.append((low, high))
    return spans
