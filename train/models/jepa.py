"""Encoder + predictor as one module: what DDP wraps and what `torch.compile` compiles."""

from __future__ import annotations

import torch
from torch import nn

from train.masks import MaskSet
from train.models.predictor import Predictor
from train.models.vit import VisionTransformer, gather_tokens


class JEPA(nn.Module):
    def __init__(self, encoder: VisionTransformer, predictor: Predictor):
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(self, clips: torch.Tensor, masks: list[MaskSet]) -> list[torch.Tensor]:
        """One prediction [B, Nt, out] per mask set, each from its own context.

        Tubelets are embedded once and shared by all mask sets; the blocks run per mask set
        because each set leaves a different context visible.
        """
        clips = self.encoder.as_clip(clips)
        grid = self.encoder.patch_embed.grid(clips.shape)
        tokens = self.encoder.embed(clips)
        predictions = []
        for mask_index, m in enumerate(masks):
            context = self.encoder.encode_tokens(
                gather_tokens(tokens, m.context_idx), m.context_valid
            )
            predictions.append(
                self.predictor(
                    context,
                    m.context_idx,
                    m.target_idx,
                    context_valid=m.context_valid,
                    target_valid=m.target_valid,
                    mask_index=mask_index,
                    grid=grid,
                )
            )
        return predictions
