"""Schedules reach their final values exactly at the last step, never past it."""

from __future__ import annotations

import itertools

import pytest

from train.config import OptimConfig
from train.schedules import Schedules


@pytest.fixture
def paper():
    return Schedules(OptimConfig(), total_steps=90_000)


def test_lr_warmup_then_cosine_to_final(paper):
    assert paper.lr(0) == pytest.approx(2e-4)
    assert paper.lr(6000) == pytest.approx((2e-4 + 6.25e-4) / 2)
    assert paper.lr(12_000) == pytest.approx(6.25e-4)
    assert paper.lr(89_999) == pytest.approx(1e-6)
    midpoint = 12_000 + (89_999 - 12_000) / 2
    assert paper.lr(int(midpoint)) == pytest.approx((6.25e-4 + 1e-6) / 2, rel=1e-3)
    values = [paper.lr(s) for s in range(12_000, 90_000, 500)]
    assert all(a >= b for a, b in itertools.pairwise(values))


def test_weight_decay_and_ema_end_at_last_step(paper):
    assert paper.weight_decay(0) == pytest.approx(0.04)
    assert paper.weight_decay(89_999) == pytest.approx(0.4)
    assert paper.ema(0) == pytest.approx(0.998)
    assert paper.ema(89_999) == pytest.approx(1.0)
    assert paper.ema(45_000) == pytest.approx(0.999, abs=1e-6)


def test_values_do_not_run_past_the_end(paper):
    assert paper.lr(200_000) == pytest.approx(1e-6)
    assert paper.ema(200_000) == pytest.approx(1.0)


def test_single_step_run_is_at_its_end():
    s = Schedules(OptimConfig(warmup_steps=0), total_steps=1)
    assert s.lr(0) == pytest.approx(1e-6)
    assert s.ema(0) == pytest.approx(1.0)


def test_warmup_constant_cooldown_holds_then_falls_linearly_to_the_end():
    optim = OptimConfig(
        lr=5.25e-4,
        start_lr=1e-4,
        final_lr=1e-6,
        warmup_steps=100,
        lr_schedule="warmup_constant_cooldown",
        cooldown_steps=50,
    )
    s = Schedules(optim, total_steps=1000)
    assert s.lr(0) == pytest.approx(1e-4)
    assert s.lr(50) == pytest.approx((1e-4 + 5.25e-4) / 2)
    assert s.lr(100) == pytest.approx(5.25e-4)
    assert s.lr(500) == s.lr(950) == pytest.approx(5.25e-4)  # constant up to the cooldown
    assert s.lr(999) == pytest.approx(1e-6)  # the cooldown ends exactly at the last step
    midway = 950 + 49 / 2
    assert s.lr(int(midway)) == pytest.approx(5.25e-4 + (1e-6 - 5.25e-4) * 24 / 49)
    cooldown = [s.lr(step) for step in range(950, 1000)]
    assert all(a > b for a, b in itertools.pairwise(cooldown))
    assert s.lr(5000) == pytest.approx(1e-6)


def test_cooldown_must_fit_after_the_warmup():
    optim = OptimConfig(
        warmup_steps=900, lr_schedule="warmup_constant_cooldown", cooldown_steps=200
    )
    with pytest.raises(ValueError, match=r"optim.cooldown_steps=200 must lie in \[1, steps"):
        Schedules(optim, total_steps=1000)
