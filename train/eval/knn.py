"""k-nearest-neighbour classification of clip features (cosine similarity, weighted votes).

Each held-out clip takes the `k` most similar training clips; each votes for its label with
weight exp(similarity / temperature), as in DINO's k-NN evaluation. No training, no seed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


@torch.no_grad()
def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> torch.Tensor:
    """Predicted class of each query row; features [N, D] in any float dtype."""
    bank = F.normalize(train_features.float(), dim=-1)
    k = min(k, bank.shape[0])
    predictions = []
    for start in range(0, query_features.shape[0], chunk):
        queries = F.normalize(query_features[start : start + chunk].float(), dim=-1)
        similarity, nearest = (queries @ bank.T).topk(k, dim=-1)
        votes = torch.zeros(queries.shape[0], num_classes)
        votes.scatter_add_(1, train_labels[nearest], (similarity / temperature).exp())
        predictions.append(votes.argmax(-1))
    return torch.cat(predictions)
