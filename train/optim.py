"""AdamW with weight decay on weight matrices only, its schedule and its clipped step."""

from __future__ import annotations

import math

import torch
from torch import nn

from train.config import OptimConfig


def decays(name: str, param: nn.Parameter) -> bool:
    """Biases, norm scales and learned mask tokens are not decayed: shrinking them toward zero
    has no regularising meaning. Weight matrices and conv kernels are."""
    return param.ndim >= 2 and "mask_tokens" not in name


def build_optimizer(modules: dict[str, nn.Module], cfg: OptimConfig, device: torch.device):
    named = [(f"{k}.{n}", p) for k, m in modules.items() for n, p in m.named_parameters()]
    named = [(n, p) for n, p in named if p.requires_grad]
    groups = [
        {"params": [p for n, p in named if decays(n, p)], "decay": True},
        {"params": [p for n, p in named if not decays(n, p)], "decay": False, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(
        groups,
        lr=cfg.start_lr,
        betas=cfg.betas,
        eps=cfg.eps,
        weight_decay=cfg.weight_decay,
        # One kernel for all parameters where the build supports it (CUDA, and CPU in torch>=2.4).
        fused=device.type in ("cuda", "cpu"),
    )


def set_schedule(optimizer: torch.optim.Optimizer, lr: float, weight_decay: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
        if group["decay"]:
            group["weight_decay"] = weight_decay


def clipped_step(
    optimizer: torch.optim.Optimizer,
    clip_grad: float | None,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Clip the gradients of all the optimizer's parameters to norm `clip_grad` (None: no
    clipping), step (through `scaler` under fp16), zero the gradients; returns the norm
    before clipping."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if scaler is not None:
        scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, clip_grad if clip_grad is not None else math.inf
    )
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm.item()
