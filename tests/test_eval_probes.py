"""Probes on tiny synthetic features: they read what is there, and nothing that is not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from train.eval.attentive import AttentiveProbe, attentive_logits
from train.eval.knn import knn_predict
from train.eval.online import ridge_loo_accuracy
from train.eval.probes import (
    LinearProbe,
    ProbeTraining,
    accuracy,
    grid_pool,
    mean_pool,
    normalize_tokens,
    predict,
    train_probes,
)
from train.eval.protocol import labelled_subset

CLASSES = 4
DIM = 16
TOKENS = 12


def separable_tokens(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noise tokens; one token per clip, at a random position, carries its class's pattern.

    Mean-pooling keeps the pattern (diluted by the number of tokens), so both probes can read
    it; the attentive probe has to find the token.
    """
    gen = torch.Generator().manual_seed(seed)
    patterns = torch.eye(DIM)[:CLASSES] * 8.0
    labels = torch.randint(0, CLASSES, (count,), generator=gen)
    tokens = 0.5 * torch.randn(count, TOKENS, DIM, generator=gen)
    where = torch.randint(0, TOKENS, (count,), generator=gen)
    tokens[torch.arange(count), where] += patterns[labels]
    return tokens, labels


def fit_attentive(tokens, labels, seed=0) -> AttentiveProbe:
    """The default optimisation settings, the ones `python -m train.eval` uses."""
    torch.manual_seed(seed)
    probe = AttentiveProbe(DIM, num_heads=2, num_classes=CLASSES)
    gen = torch.Generator().manual_seed(seed)
    train_probes(
        [probe], lambda x: [probe(x)], normalize_tokens(tokens), [labels], ProbeTraining(), gen
    )
    return probe


def predicted(probe, inputs) -> torch.Tensor:
    return predict(lambda x: [probe(x)], inputs)[0]


def test_attentive_pooling_equals_cross_attention_over_projected_tokens():
    torch.manual_seed(0)
    probe = AttentiveProbe(DIM, num_heads=4, num_classes=3)
    with torch.no_grad():  # move norm1 and the biases away from their trivial initial values
        probe.norm1.weight.normal_(1.0, 0.3)
        probe.norm1.bias.normal_(0.0, 0.3)
        probe.kv.bias.normal_(0.0, 0.3)
        probe.q.weight.normal_(0.0, 0.5)
    tokens = torch.randn(5, 7, DIM) * 3 + 1
    x_hat = normalize_tokens(tokens, torch.float32)
    keys, values = probe.kv(probe.norm1(tokens)).chunk(2, dim=-1)
    query = probe.q(probe.query).expand(5, 1, DIM)
    heads = lambda t: t.reshape(5, -1, 4, DIM // 4).transpose(1, 2)
    reference = F.scaled_dot_product_attention(heads(query), heads(keys), heads(values))
    reference = reference.transpose(1, 2).reshape(5, DIM)
    assert torch.allclose(probe.pool(x_hat), reference, atol=1e-5)


def test_attentive_probe_reads_separable_features():
    tokens, labels = separable_tokens(2048, seed=0)
    val_tokens, val_labels = separable_tokens(256, seed=1)
    probe = fit_attentive(tokens, labels)
    assert accuracy(predicted(probe, normalize_tokens(val_tokens)), val_labels) > 0.98


def shuffled(labels: torch.Tensor, seed: int) -> torch.Tensor:
    """The same labels in a random order: they no longer say anything about the features.

    Both splits are shuffled: on clustered features, a probe fitted to shuffled labels maps
    each cluster to some label, and scoring it against the true labels would swing between
    zero and one by luck; against shuffled labels it must sit at chance.
    """
    return labels[torch.randperm(labels.numel(), generator=torch.Generator().manual_seed(seed))]


def test_attentive_probe_on_shuffled_labels_stays_near_chance():
    tokens, labels = separable_tokens(512, seed=0)
    val_tokens, val_labels = separable_tokens(512, seed=1)
    probe = fit_attentive(tokens, shuffled(labels, 3))
    held_out = accuracy(predicted(probe, normalize_tokens(val_tokens)), shuffled(val_labels, 4))
    assert abs(held_out - 1 / CLASSES) < 0.08, held_out


def test_linear_probe_reads_separable_features_and_not_shuffled_ones():
    tokens, labels = separable_tokens(512, seed=0)
    val_tokens, val_labels = separable_tokens(512, seed=1)
    settings = ProbeTraining(steps=200, batch_size=128, lr=1e-2, warmup_steps=5)
    scores = []
    for train_labels, true_labels in (
        (labels, val_labels),
        (shuffled(labels, 3), shuffled(val_labels, 4)),
    ):
        torch.manual_seed(0)
        pooled = mean_pool(tokens)
        probe = LinearProbe.for_features(pooled, CLASSES)
        gen = torch.Generator().manual_seed(0)
        train_probes([probe], lambda x, p=probe: [p(x)], pooled, [train_labels], settings, gen)
        scores.append(accuracy(predicted(probe, mean_pool(val_tokens)), true_labels))
    assert scores[0] > 0.97
    assert abs(scores[1] - 1 / CLASSES) < 0.08, scores


def test_knn_reads_clusters_and_not_shuffled_labels():
    tokens, labels = separable_tokens(512, seed=0)
    val_tokens, val_labels = separable_tokens(512, seed=1)
    pooled, val_pooled = mean_pool(tokens), mean_pool(val_tokens)
    right = knn_predict(pooled, labels, val_pooled, CLASSES, k=10)
    wrong = knn_predict(pooled, shuffled(labels, 3), val_pooled, CLASSES, k=10)
    assert accuracy(right, val_labels) > 0.95
    assert abs(accuracy(wrong, shuffled(val_labels, 4)) - 1 / CLASSES) < 0.08


def test_knn_weighs_votes_by_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    labels = torch.tensor([0, 1, 1])
    # Two far neighbours of class 1 lose to one very close neighbour of class 0.
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(bank, labels, query, 2, k=3, temperature=0.07).item() == 0


def test_ridge_leave_one_out_reads_separable_features_and_not_noise():
    tokens, labels = separable_tokens(256, seed=0)
    pooled = mean_pool(tokens)
    assert ridge_loo_accuracy(pooled, labels, CLASSES) > 0.95
    assert abs(ridge_loo_accuracy(pooled, shuffled(labels, 3), CLASSES) - 1 / CLASSES) < 0.1


@pytest.mark.parametrize("num_features", [6, 300])
def test_ridge_leave_one_out_matches_refitting_without_each_clip(num_features, monkeypatch):
    """The closed form equals refitting without each clip, also with more features than clips
    (where statistics shared across clips would leak the held-out label back)."""
    import train.eval.online as online

    scale = 1e-3
    monkeypatch.setattr(online, "RIDGE_SCALES", (scale,))
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(20, num_features, generator=gen)
    labels = torch.randint(0, 3, (20,), generator=gen)
    kernel = (features @ features.T).double() / num_features
    kernel = kernel + kernel.diagonal().mean()
    lam = scale * torch.linalg.eigvalsh(kernel).clamp_min(0).mean()
    targets = F.one_hot(labels, 3).double()
    brute = []
    for i in range(20):
        keep = torch.arange(20) != i
        system = kernel[keep][:, keep] + lam * torch.eye(19, dtype=kernel.dtype)
        brute.append((kernel[i, keep] @ torch.linalg.solve(system, targets[keep])).argmax().item())
    expected = (torch.tensor(brute) == labels).double().mean().item()
    assert expected < 0.6  # random labels: refits without the clip cannot read them
    assert ridge_loo_accuracy(features, labels, 3) == pytest.approx(expected)


def test_grid_pool_keeps_time_and_a_coarse_layout():
    # Token i holds (i, -i): layer-normed to (1, -1) for i > 0 and (0, 0) for token 0.
    index = torch.arange(2 * 4 * 4, dtype=torch.float32)
    tokens = torch.stack([index, -index], dim=-1).unsqueeze(0)
    pooled = grid_pool(tokens, (2, 4, 4)).view(2, 2, 2, 2)  # D, T', cells
    # First time step, top-left 2x2 cell: tokens 0, 1, 4, 5, of which 0 is all zeros.
    assert pooled[0, 0, 0, 0].item() == pytest.approx(3 / 4, abs=1e-4)
    assert pooled[0, 1, 1, 1].item() == pytest.approx(1.0, abs=1e-4)
    assert pooled[1, 1, 1, 1].item() == pytest.approx(-1.0, abs=1e-4)
    assert grid_pool(tokens, (2, 4, 4), cells=(4, 4)).shape == (1, 2 * 2 * 16)


def test_labelled_subsets_keep_the_fraction_and_differ_by_seed():
    subset = labelled_subset(64, 0.25, seed=0)
    assert subset.numel() == 16 and subset.unique().numel() == 16
    assert torch.equal(subset, subset.sort().values) and int(subset.max()) < 64
    assert not torch.equal(subset, labelled_subset(64, 0.25, seed=1))
    assert torch.equal(labelled_subset(64, 0.25, seed=0), subset)
    assert torch.equal(labelled_subset(64, 1.0, seed=3), torch.arange(64))
    assert labelled_subset(64, 0.001, seed=0).numel() == 1


def test_probes_trained_together_equal_probes_trained_alone():
    """Lockstep training of one probe per label (one pass over the tokens for all of them)
    gives each probe exactly the weights it gets when trained alone on the same batches."""
    tokens, labels = separable_tokens(64, seed=0)
    other = shuffled(labels, 1)
    x_hat = normalize_tokens(tokens, torch.float32)
    settings = ProbeTraining(steps=5, batch_size=16, warmup_steps=1)

    def fresh(seed: int) -> AttentiveProbe:
        torch.manual_seed(seed)
        return AttentiveProbe(DIM, num_heads=2, num_classes=CLASSES)

    together = [fresh(0), fresh(1)]
    logits_of = lambda x: attentive_logits(together, x)
    train_probes(
        together, logits_of, x_hat, [labels, other], settings, torch.Generator().manual_seed(4)
    )
    for probe, seed, y in zip(together, (0, 1), (labels, other)):
        alone = fresh(seed)
        gen = torch.Generator().manual_seed(4)
        train_probes([alone], lambda x, a=alone: [a(x)], x_hat, [y], settings, gen)
        for (name, a), b in zip(alone.named_parameters(), probe.parameters()):
            assert torch.allclose(a, b, atol=1e-6), name
