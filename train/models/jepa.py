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
        if predictor.levels > 1:
            # The objectives (train/objectives.py) regress one level of the target encoder.
            raise ValueError(
                f"training a predictor that reads and predicts {predictor.levels} encoder "
                "levels (V-JEPA 2.1's model.pred_levels) is not supported: the objectives "
                "regress one level. Imported 2.1 models run for inference; to train, set "
                "model.pred_levels=1"
            )
        self.encoder = encoder
        self.predictor = predictor

    def forward(
        self, clips: torch.Tensor, masks: list[MaskSet], return_contexts: bool = False
    ) -> list[torch.Tensor] | tuple[list[torch.Tensor], list[torch.Tensor]]:
        """One prediction [B, Nt, out] per mask set, each from its own context; with
        `return_contexts`, also the encoder's context features [B, Nc, D] of each set (what a
        regulariser of the embeddings reads).

        Tubelets are embedded once and shared by all mask sets; the blocks run per mask set
        because each set leaves a different context visible.
        """
        clips = self.encoder.as_clip(clips)
        grid = self.encoder.token_grid(clips)
        modality = "image" if self.encoder.is_image(clips) else "video"
        tokens = self.encoder.embed(clips)
        predictions, contexts = [], []
        for mask_index, m in enumerate(masks):
            context_valid, target_valid = m.attention_validity(tokens.shape[1])
            context = self.encoder.encode_tokens(
                gather_tokens(tokens, m.context_idx), context_valid, m.context_idx, grid
            )
            contexts.append(context)
            predictions.append(
                self.predictor(
                    context,
                    m.context_idx,
                    m.target_idx,
                    context_valid=context_valid,
                    target_valid=target_valid,
                    mask_index=mask_index,
                    grid=grid,
                    modality=modality,
                )
            )
        return (predictions, contexts) if return_contexts else predictions
