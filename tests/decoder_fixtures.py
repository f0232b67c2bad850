"""Shared by the decoder tests (a helper module: pytest collects no tests here): micro V-JEPA
models (random weights) and decoders, 4 frames x 32 px in tubelets of 2 x 8 x 8 (a 2 x 4 x 4
token grid), widths of 32 and less."""

from __future__ import annotations

import torch

from conftest import MICRO
from decoder.config import DecoderConfig, DecoderModelConfig, load_decoder_config
from decoder.model import PixelDecoder, build_decoder
from train.config import load_config
from train.pretrained import Pretrained, build_models
from train.tokens import TokenGeometry

MICRO_DECODER = DecoderModelConfig(embed_dim=32, depth=1, num_heads=2)


def micro_pretrained(seed: int = 0, scrambled: bool = False) -> Pretrained:
    """Freshly initialised micro models; `scrambled` redraws every weight with std 0.2, so that
    each output depends strongly on each input (a fresh init attenuates the context a lot)."""
    cfg = load_config("tiny_cpu", [*MICRO, "out=runs/unused"])
    torch.manual_seed(seed)
    pretrained = build_models(cfg)
    if scrambled:
        with torch.no_grad():
            for param in [*pretrained.encoder.parameters(), *pretrained.predictor.parameters()]:
                param.normal_(0.0, 0.2)
        # the target encoder stays the encoder's copy, as a run's is at step 0
        pretrained.target_encoder.load_state_dict(pretrained.encoder.state_dict())
    return pretrained.eval()


def micro_decoder(pretrained: Pretrained, seed: int = 1) -> PixelDecoder:
    geometry = TokenGeometry.from_model_config(pretrained.config.model)
    torch.manual_seed(seed)
    return build_decoder(
        MICRO_DECODER, pretrained.encoder.embed_dim, geometry.grid, geometry.patch_dim
    ).eval()


def micro_decoder_config(*overrides: str) -> DecoderConfig:
    model = [f"model.{k}={v}" for k, v in vars(MICRO_DECODER).items()]
    return load_decoder_config(None, [*model, *overrides])


def random_clip(frames: int = 4, size: int = 32, seed: int = 0) -> torch.Tensor:
    """uint8 [3, T, H, W]."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, frames, size, size), dtype=torch.uint8, generator=gen)
