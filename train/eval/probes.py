"""Probes that read labels from frozen features: the paper's attentive probe and a linear probe.

The attentive probe (V-JEPA §4) pools a clip's tokens with one learned query through a
cross-attention block with an MLP, then classifies the pooled vector with a linear head. With a
single query the block needs no per-token key or value projection: for head h,

    score_i = q_h . (W_k,h x_i + b_k,h) = x_i . (W_k,h^T q_h) + const
    value   = sum_i a_i (W_v,h x_i + b_v,h) = W_v,h (sum_i a_i x_i) + b_v,h     (sum_i a_i = 1)

so each head reduces the tokens with one dot product for the scores and one weighted sum for
the value, and projects only the pooled vector. This is the same function as projecting every
token (a test checks it against `scaled_dot_product_attention`), about `dim / num_heads` times
cheaper, which is what lets a laptop fit dozens of probes in a couple of minutes. For the same
reason the affine-free part of the block's LayerNorm is applied once to the frozen features
(`normalize_tokens`, stored in bfloat16) rather than at every step; the probe keeps the learned
scale and shift.

The linear probe is a linear layer on mean-pooled tokens, standardised with the training set's
statistics. Both are trained with AdamW and a cosine learning rate on fixed features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from train.models.vit import LAYER_NORM_EPS, MLP


@dataclass
class ProbeTraining:
    """How a probe is optimised (the paper's attentive probe: AdamW, lr 1e-3 cosine, wd 0.01)."""

    steps: int = 300
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 15


class AttentiveProbe(nn.Module):
    """One learned query, a cross-attention block (norm, attention, MLP), a linear head.

    Input: token features normalised by `normalize_tokens` [B, N, D]; output: logits.
    """

    def __init__(self, dim: int, num_heads: int, num_classes: int, mlp_ratio: float = 4.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"probe width {dim} is not divisible by {num_heads} heads")
        self.num_heads = num_heads
        self.query = nn.Parameter(torch.zeros(1, dim))
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = MLP(dim, int(dim * mlp_ratio))
        self.head = nn.Linear(dim, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.query, std=0.02)

    def pool(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Cross-attention of the query over normalised tokens [B, N, D] -> [B, D] (before
        `proj`). norm1(x) = gamma * x_hat + beta; the matmuls over tokens run in x_hat's dtype."""
        dim, heads = x_hat.shape[-1], self.num_heads
        head_dim = dim // heads
        gamma, beta = self.norm1.weight, self.norm1.bias
        query = self.q(self.query).view(heads, head_dim)  # [H, dh]
        w_key, w_value = self.kv.weight.view(2, heads, head_dim, dim).unbind(0)
        # Per head, the key weights folded with the query: [H, D]. The terms that are the same
        # for every token (key bias, beta) shift all scores equally and drop out of the softmax.
        folded = torch.einsum("hc,hcd->hd", query, w_key) / math.sqrt(head_dim)
        scores = (x_hat @ (folded * gamma).T.to(x_hat.dtype)).float()  # [B, N, H]
        attention = scores.softmax(dim=1).to(x_hat.dtype)
        pooled = torch.einsum("bnh,bnd->bhd", attention, x_hat).float() * gamma + beta
        values = torch.einsum("bhd,hcd->bhc", pooled, w_value)  # [B, H, dh]
        value_bias = self.kv.bias.view(2, heads, head_dim)[1]
        return (values + value_bias).reshape(x_hat.shape[0], dim)

    def forward(self, x_hat: torch.Tensor) -> torch.Tensor:
        """Logits [B, classes] from tokens normalised by `normalize_tokens`, [B, N, D]."""
        x = self.query + self.proj(self.pool(x_hat))
        x = x + self.mlp(self.norm2(x))
        return self.head(x)


class LinearProbe(nn.Module):
    """Mean-pooled tokens, standardised with fixed training statistics, then one linear layer."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, num_classes: int):
        super().__init__()
        self.register_buffer("mean", mean.float())
        self.register_buffer("std", std.float().clamp_min(1e-6))
        self.head = nn.Linear(mean.shape[-1], num_classes)

    @classmethod
    def for_features(cls, pooled: torch.Tensor, num_classes: int) -> LinearProbe:
        return cls(pooled.float().mean(0), pooled.float().std(0), num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.head((pooled.float() - self.mean) / self.std)


def normalize_tokens(tokens: torch.Tensor, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    """The affine-free LayerNorm of each token [..., D], what `AttentiveProbe` takes as input."""
    return F.layer_norm(tokens.float(), (tokens.shape[-1],), eps=LAYER_NORM_EPS).to(dtype)


def mean_pool(tokens: torch.Tensor) -> torch.Tensor:
    """[N, T, D] token features -> [N, D] clip features, in float32."""
    return tokens.float().mean(1)


def cosine_lr(step: int, settings: ProbeTraining) -> float:
    if step < settings.warmup_steps:
        return settings.lr * (step + 1) / settings.warmup_steps
    span = max(1, settings.steps - settings.warmup_steps)
    progress = (step - settings.warmup_steps) / span
    return 0.5 * settings.lr * (1.0 + math.cos(math.pi * progress))


def train_probe(
    probe: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    settings: ProbeTraining,
    generator: torch.Generator,
) -> nn.Module:
    """Cross-entropy on mini-batches drawn epoch by epoch from `generator`; returns `probe`."""
    if inputs.shape[0] != labels.shape[0] or inputs.shape[0] == 0:
        raise ValueError(
            f"need as many labels as inputs (> 0), got {inputs.shape[0]} inputs and "
            f"{labels.shape[0]} labels"
        )
    optimizer = torch.optim.AdamW(
        probe.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    batch = min(settings.batch_size, inputs.shape[0])
    order = torch.randperm(inputs.shape[0], generator=generator)
    cursor = 0
    probe.train()
    for step in range(settings.steps):
        if cursor + batch > order.numel():
            order, cursor = torch.randperm(inputs.shape[0], generator=generator), 0
        index = order[cursor : cursor + batch]
        cursor += batch
        for group in optimizer.param_groups:
            group["lr"] = cosine_lr(step, settings)
        loss = F.cross_entropy(probe(inputs[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return probe.eval()


@torch.no_grad()
def predict(probe: nn.Module, inputs: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class per input, in batches to bound memory."""
    probe.eval()
    return torch.cat(
        [
            probe(inputs[i : i + batch_size]).argmax(-1)
            for i in range(0, inputs.shape[0], batch_size)
        ]
    )


def accuracy(predicted: torch.Tensor, labels: torch.Tensor) -> float:
    return (predicted == labels).float().mean().item()
