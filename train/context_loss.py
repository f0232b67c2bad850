"""V-JEPA 2.1's context loss: the predictor also regresses the features of what it can see.

With the prediction loss alone, nothing asks a visible token to keep what is at its own place:
its features only have to help the predictor fill the holes, and V-JEPA 2.1 (Mur-Labadia et
al. 2026) reports that such tokens drift towards global summaries, which costs dense tasks.
The context loss gives the predictor a second head (`predictor_proj_context`) whose output at
each visible token is regressed onto the target encoder's features of that same token, with the
objective's distance. 2.1 weighs each token by 1 / sqrt(d), d its distance in tokens (over time,
height and width) to the nearest hidden token, so the tokens at a hole's edge count most, and
ramps the loss in after the prediction loss has shaped the features.
"""

from __future__ import annotations

import torch

from train.config import ContextLossConfig
from train.models.rope import grid_positions


def context_loss_weight(cfg: ContextLossConfig, step: int) -> float:
    """The loss's weight at `step`: 0 before ramp[0], rising linearly to cfg.weight at ramp[1]."""
    start, end = cfg.ramp
    if step >= end:
        return cfg.weight
    if step < start:
        return 0.0
    return cfg.weight * (step - start) / (end - start)


@torch.no_grad()
def distance_weights(
    context_idx: torch.Tensor,
    target_idx: torch.Tensor,
    target_valid: torch.Tensor,
    grid: tuple[int, int, int],
) -> torch.Tensor:
    """1 / sqrt(distance to the nearest valid target token) for each context token [B, Nc].

    Context and target tokens of a sample are disjoint, so every distance is at least 1 and
    every weight at most 1. Padded target slots are ignored; a padded context slot may repeat
    a target's index, and its distance is clamped to 1 so that its weight stays finite (the
    loss multiplies it by its validity, 0, and infinity x 0 would be NaN). A sample without a
    valid target (never built by the mask code) gets weight 0.
    """
    context = grid_positions(context_idx, grid).float()
    target = grid_positions(target_idx, grid).float()
    distances = torch.cdist(context, target)  # [B, Nc, Nt]
    distances = distances.masked_fill(~target_valid[:, None, :], float("inf"))
    return distances.amin(-1).clamp_min(1.0).rsqrt()
