"""Encoder + predictor as one module: what DDP wraps and what `torch.compile` compiles."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from train.masks import MaskSet
from train.models.predictor import Predictor
from train.models.vit import VisionTransformer, gather_tokens


class JEPAOutputs(NamedTuple):
    """Per mask set: the predictions at the target tokens, the encoder's context features, and
    (when asked) the predictor's context head at the visible tokens."""

    predictions: list[torch.Tensor]
    contexts: list[torch.Tensor]
    context_predictions: list[torch.Tensor]


class JEPA(nn.Module):
    def __init__(self, encoder: VisionTransformer, predictor: Predictor):
        super().__init__()
        self.encoder = encoder
        self.predictor = predictor

    def forward(
        self, clips: torch.Tensor, masks: list[MaskSet], predict_context: bool = False
    ) -> JEPAOutputs:
        """One prediction [B, Nt, out] per mask set, each from its own context, with the
        encoder's context features [B, Nc, D] of each set (the last level: what a regulariser of
        the embeddings reads); with `predict_context`, also the predictor's context head at the
        visible tokens [B, Nc, out] (V-JEPA 2.1's context loss, train/context_loss.py).

        A predictor that reads several encoder levels (V-JEPA 2.1's deep self-supervision,
        `model.pred_levels`) gets them concatenated and predicts as many.

        Tubelets are embedded once and shared by all mask sets; the blocks run per mask set
        because each set leaves a different context visible.
        """
        clips = self.encoder.as_clip(clips)
        grid = self.encoder.token_grid(clips)
        modality = "image" if self.encoder.is_image(clips) else "video"
        tokens = self.encoder.embed(clips)
        levels = self.predictor.levels
        out = JEPAOutputs([], [], [])
        for mask_index, m in enumerate(masks):
            context_valid, target_valid = m.attention_validity(tokens.shape[1])
            context = self.encoder.encode_tokens(
                gather_tokens(tokens, m.context_idx), context_valid, m.context_idx, grid, levels
            )
            out.contexts.append(context[..., -self.encoder.embed_dim :])
            predicted = self.predictor(
                context,
                m.context_idx,
                m.target_idx,
                context_valid=context_valid,
                target_valid=target_valid,
                mask_index=mask_index,
                grid=grid,
                modality=modality,
                with_context=predict_context,
            )
            if predict_context:
                predicted, context_predicted = predicted
                out.context_predictions.append(context_predicted)
            out.predictions.append(predicted)
        return out
