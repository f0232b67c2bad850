"""SIGReg: near zero for an isotropic Gaussian cloud, large for collapsed or stretched ones, and
a training option that logs it."""

from __future__ import annotations

import pytest
import torch

from train.config import load_config
from train.loop import train
from train.monitor import read_metrics
from train.sigreg import sigreg


def test_gaussian_cloud_scores_low_and_collapse_scores_high():
    gen = torch.Generator().manual_seed(0)
    gaussian = torch.randn(2048, 64, generator=gen)
    collapsed = torch.zeros(2048, 64) + torch.randn(1, 64, generator=gen)
    low_rank = torch.randn(2048, 2, generator=gen) @ torch.randn(2, 64, generator=gen)
    scaled = 4.0 * gaussian
    score = lambda x: sigreg(x, num_slices=128, seed=1).item()
    assert score(gaussian) < 1.0
    for bad in (collapsed, low_rank, scaled):
        assert score(bad) > 50 * score(gaussian)


def test_the_same_seed_draws_the_same_directions():
    x = torch.randn(256, 16)
    assert sigreg(x, 32, seed=5) == sigreg(x, 32, seed=5)
    assert sigreg(x, 32, seed=5) != sigreg(x, 32, seed=6)


def test_its_gradient_spreads_a_collapsed_cloud():
    x = (0.01 * torch.randn(512, 8)).requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=0.02)
    before = sigreg(x.detach(), 64, seed=0).item()
    for step in range(200):
        optimizer.zero_grad()
        sigreg(x, 64, seed=step).backward()
        optimizer.step()
    # From a spike (about 200) to what a real Gaussian sample of this size scores (about 1).
    assert sigreg(x.detach(), 64, seed=0).item() < 0.02 * before
    assert 0.8 < x.detach().std(0).mean().item() < 1.2


def test_training_with_sigreg_and_no_teacher_logs_it(micro_overrides):
    cfg = load_config(
        "tiny_cpu", micro_overrides("steps=3", "sigreg.weight=0.05", "optim.ema=[0.0,0.0]")
    )
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert all(r["sigreg"] > 0 for r in records)
    assert all(r["ema"] == 0.0 for r in records)


def test_a_fixed_sample_size_keeps_the_statistic_comparable():
    gen = torch.Generator().manual_seed(3)
    stretched = 3.0 * torch.randn(8192, 32, generator=gen)
    small, large = stretched[:1024], stretched
    assert sigreg(large, 64, seed=0) > 4 * sigreg(small, 64, seed=0)
    capped = sigreg(large, 64, seed=0, max_samples=1024)
    assert capped == pytest.approx(sigreg(small, 64, seed=0).item(), rel=0.3)
