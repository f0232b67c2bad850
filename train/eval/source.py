"""Which run, which checkpoint file, which of its encoders: what a frozen evaluation reads.

A run directory resolves to `checkpoints/latest.pt`; a checkpoint file is used as given and its
run directory is the folder above `checkpoints/`. Results and cached features go to
`RUN_DIR/eval/`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from train.checkpoint import LATEST
from train.config import Config
from train.models import VisionTransformer
from train.pretrained import Pretrained, initial_models, load_pretrained


class RunNotFoundError(FileNotFoundError):
    pass


@dataclass
class EvalSource:
    run_dir: Path
    checkpoint: Path
    pretrained: Pretrained

    @property
    def config(self) -> Config:
        return self.pretrained.config

    @property
    def eval_dir(self) -> Path:
        return self.run_dir / "eval"

    def identity(self) -> dict[str, Any]:
        """What makes this checkpoint this checkpoint, for cache keys (plain JSON values)."""
        stat = self.checkpoint.stat()
        return {
            "checkpoint": str(self.checkpoint.resolve()),
            "step": self.pretrained.step,
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
        }


def resolve_checkpoint(path: str | Path) -> tuple[Path, Path]:
    """(run directory, checkpoint file) for a run directory or a checkpoint file."""
    path = Path(path).expanduser()
    if path.is_dir():
        checkpoint = path / "checkpoints" / LATEST
        if not checkpoint.is_file():
            raise RunNotFoundError(
                f"{path} holds no checkpoints/{LATEST}: give a run directory that "
                "`python -m train ... out=RUN_DIR` wrote, or a checkpoint file"
            )
        return path, checkpoint
    if not path.is_file():
        raise RunNotFoundError(f"no run directory or checkpoint file at {path}")
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return run_dir, path


def open_source(path: str | Path) -> EvalSource:
    run_dir, checkpoint = resolve_checkpoint(path)
    return EvalSource(run_dir, checkpoint, load_pretrained(checkpoint))


def initial_encoder(cfg: Config) -> VisionTransformer:
    """The encoder exactly as the run initialised it at step 0 (the untrained baseline).

    See `train.pretrained.initial_models`.
    """
    return initial_models(cfg).encoder.requires_grad_(False)


def choose_encoder(pretrained: Pretrained, which: str) -> VisionTransformer:
    if which == "target_encoder":
        return pretrained.target_encoder
    if which == "encoder":
        return pretrained.encoder
    if which == "random_init":
        return initial_encoder(pretrained.config)
    raise ValueError(f"encoder={which!r}: choose target_encoder, encoder or random_init")


def first_blocks(encoder: VisionTransformer, blocks: int | None) -> VisionTransformer:
    """A copy of `encoder` that stops after its first `blocks` blocks, then applies its final
    norm (None: the encoder itself). Hierarchical encoders are refused: their levels are tied
    to fixed depths."""
    if blocks is None:
        return encoder
    depth = len(encoder.blocks)
    if encoder.level_depths:
        raise ValueError(
            "blocks= probes an encoder with one final norm; this one keeps hierarchical "
            "levels at fixed depths (V-JEPA 2.1): leave blocks unset"
        )
    if not 1 <= blocks <= depth:
        raise ValueError(f"blocks={blocks}: this encoder has {depth} blocks; choose 1 to {depth}")
    truncated = copy.deepcopy(encoder)
    truncated.blocks = truncated.blocks[:blocks]
    return truncated
