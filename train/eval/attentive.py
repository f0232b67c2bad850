"""The paper's attentive probe: one learned query, a cross-attention block with an MLP, a linear
head (V-JEPA §4), on frozen token features.

With a single query the block needs no per-token key or value projection: for head h,

    score_i = q_h . (W_k,h x_i + b_k,h) = x_i . (W_k,h^T q_h) + const
    value   = sum_i a_i (W_v,h x_i + b_v,h) = W_v,h (sum_i a_i x_i) + b_v,h     (sum_i a_i = 1)

so each head reduces the tokens with one dot product for the scores and one weighted sum for
the value, and projects only the pooled vector. This is the same function as projecting every
token (a test checks it against `scaled_dot_product_attention`), about `dim / num_heads` times
cheaper. `attend` goes one step further for probes of several labels over the same clips: their
score vectors are stacked, so one matmul and one bmm read the tokens for all of them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from train.models.vit import LAYER_NORM_EPS, MLP


class AttentiveProbe(nn.Module):
    """Input: token features normalised by `normalize_tokens` [B, N, D]; output: logits.

    norm1(x) = gamma * x_hat + beta: the affine-free part is applied once to the frozen
    features, the learned scale and shift here.
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

    @property
    def head_dim(self) -> int:
        return self.query.shape[-1] // self.num_heads

    def score_weights(self) -> torch.Tensor:
        """[H, D]: per head, the key weights folded with the query and norm1's scale. The terms
        that are the same for every token (key bias, beta) shift all scores of a head equally
        and drop out of the softmax."""
        dim, heads, head_dim = self.query.shape[-1], self.num_heads, self.head_dim
        query = self.q(self.query).view(heads, head_dim)
        w_key = self.kv.weight[:dim].view(heads, head_dim, dim)
        folded = torch.einsum("hc,hcd->hd", query, w_key) / math.sqrt(head_dim)
        return folded * self.norm1.weight

    def values(self, pooled_hat: torch.Tensor) -> torch.Tensor:
        """Attention output before `proj`, [B, D], from the attention-weighted sums of the
        normalised tokens per head, [B, H, D]."""
        dim, heads, head_dim = self.query.shape[-1], self.num_heads, self.head_dim
        pooled = pooled_hat.float() * self.norm1.weight + self.norm1.bias
        w_value = self.kv.weight[dim:].view(heads, head_dim, dim)
        values = torch.einsum("bhd,hcd->bhc", pooled, w_value)
        return (values + self.kv.bias[dim:].view(heads, head_dim)).reshape(-1, dim)

    def classify(self, pooled_hat: torch.Tensor) -> torch.Tensor:
        x = self.query + self.proj(self.values(pooled_hat))
        x = x + self.mlp(self.norm2(x))
        return self.head(x)

    def pool(self, x_hat: torch.Tensor) -> torch.Tensor:
        """The cross-attention output (before `proj`) over normalised tokens, [B, D]."""
        return self.values(attend([self], x_hat)[0])

    def forward(self, x_hat: torch.Tensor) -> torch.Tensor:
        return self.classify(attend([self], x_hat)[0])


def attend(probes: Sequence[AttentiveProbe], x_hat: torch.Tensor) -> list[torch.Tensor]:
    """Per probe, the attention-weighted sums of the tokens per head, [B, H, D].

    One matmul scores every token for every head of every probe, one softmax over the tokens
    (per column, so heads stay independent) and one bmm pools them: the tokens, by far the
    largest tensor, are read the same number of times however many probes share them. Plain
    2-D matmul and bmm: on CPU several times faster in bfloat16 than the einsum forms.
    """
    batch, tokens, dim = x_hat.shape
    weights = torch.cat([probe.score_weights() for probe in probes]).to(x_hat.dtype)
    scores = (x_hat.reshape(batch * tokens, dim) @ weights.T).view(batch, tokens, -1)
    attention = scores.float().softmax(dim=1).to(x_hat.dtype)
    pooled = torch.bmm(attention.transpose(1, 2), x_hat)
    return list(pooled.split([probe.num_heads for probe in probes], dim=1))


def attentive_logits(probes: Sequence[AttentiveProbe], x_hat: torch.Tensor) -> list[torch.Tensor]:
    """Logits of each probe over the same normalised tokens, reading them once."""
    return [probe.classify(pooled) for probe, pooled in zip(probes, attend(probes, x_hat))]
