"""The model's token grid: how clips of num_frames x img_size^2 px are cut into tubelets."""

from __future__ import annotations

import math
from dataclasses import dataclass

from train.config import ModelConfig


@dataclass(frozen=True)
class TokenGeometry:
    """How a model cuts clips into tokens: num_frames x img_size^2 px in tubelets."""

    num_frames: int
    img_size: int
    tubelet_size: int
    patch_size: int
    in_chans: int = 3

    @classmethod
    def from_model_config(cls, cfg: ModelConfig) -> TokenGeometry:
        return cls(cfg.num_frames, cfg.img_size, cfg.tubelet_size, cfg.patch_size, cfg.in_chans)

    @property
    def grid(self) -> tuple[int, int, int]:
        side = self.img_size // self.patch_size
        return (self.num_frames // self.tubelet_size, side, side)

    @property
    def num_tokens(self) -> int:
        return math.prod(self.grid)

    @property
    def patch_dim(self) -> int:
        """Pixel values in one token: tubelet frames x patch x patch x channels."""
        return self.tubelet_size * self.patch_size**2 * self.in_chans
