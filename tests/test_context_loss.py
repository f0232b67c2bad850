"""V-JEPA 2.1's context loss: distance weights with known answers, the ramp, the weighted loss,
the config's refusals, and a training step that reaches the context head only when it should."""

from __future__ import annotations

import math

import pytest
import torch

from train.batches import Batch
from train.config import ConfigError, ContextLossConfig, load_config
from train.context_loss import context_loss_weight, distance_weights
from train.loop import train
from train.masks import MaskSet, causal
from train.models.jepa import JEPA
from train.monitor import read_metrics
from train.objectives import FeatureObjective
from train.pretrained import build_models
from train.step import StepSetup, forward_backward

CONTEXT = ("model.pred_context_head=true", "context_loss.weight=0.5")


def test_distance_weights_are_one_over_the_root_of_the_nearest_hidden_token():
    grid = (2, 3, 3)  # t, h, w; token index = t * 9 + h * 3 + w
    # Context: (0, 0, 0), (0, 2, 2), (1, 1, 1). Targets: (0, 0, 1), (1, 2, 2), and a padded slot
    # at (1, 1, 2), next to the third context token, that must not count.
    context_idx = torch.tensor([[0, 8, 13]])
    target_idx = torch.tensor([[1, 17, 14]])
    target_valid = torch.tensor([[True, True, False]])
    weights = distance_weights(context_idx, target_idx, target_valid, grid)
    # Nearest valid targets: 1 away, 1 away, sqrt(2) away (the padded slot would be 1).
    assert weights.tolist()[0] == pytest.approx([1.0, 1.0, 2**-0.25])
    only_first = torch.tensor([[True, False, False]])
    far = distance_weights(context_idx, target_idx, only_first, grid)
    # (0,2,2) -> (0,0,1): sqrt(4 + 1) = sqrt(5); (1,1,1) -> (0,0,1): sqrt(1 + 1 + 0) = sqrt(2).
    assert far.tolist()[0] == pytest.approx([1.0, 5**-0.25, 2**-0.25])


def test_causal_masks_weigh_the_last_visible_time_step_most():
    grid = (4, 2, 2)
    masked = causal(grid, 2).flatten()
    m = MaskSet.from_target_masks([masked])
    weights = distance_weights(m.context_idx, m.target_idx, m.target_valid, grid)
    steps = m.context_idx // 4
    assert weights[steps == 1].tolist() == pytest.approx([1.0] * 4)  # next to the future
    assert weights[steps == 0].tolist() == pytest.approx([2**-0.5] * 4)  # two steps away


def test_the_weight_ramps_linearly_between_its_two_steps():
    cfg = ContextLossConfig(weight=0.5, ramp=(100, 300))
    values = [context_loss_weight(cfg, s) for s in (0, 99, 100, 200, 250, 300, 5000)]
    assert values == pytest.approx([0.0, 0.0, 0.0, 0.25, 0.375, 0.5, 0.5])
    assert context_loss_weight(ContextLossConfig(weight=0.5), 0) == 0.5  # no ramp: from step 0


def test_token_weights_scale_each_error_and_the_mean_stays_over_valid_tokens():
    objective = FeatureObjective("l1")
    target = torch.zeros(1, 3, 2)
    pred = torch.tensor([[[1.0, 1.0], [2.0, 2.0], [9.0, 9.0]]])  # errors 1, 2, 9 (padding)
    valid = torch.tensor([[True, True, False]])
    weights = torch.tensor([[1.0, 0.5, 1.0]])
    assert objective.loss(pred, target, valid).item() == pytest.approx(1.5)
    assert objective.loss(pred, target, valid, weights).item() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("context_loss.weight=0.5",), "model.pred_context_head=true"),
        ((*CONTEXT, "target=pixels"), "target=pixels has none"),
        ((*CONTEXT, "context_loss.ramp=[300,100]"), "0 <= start <= end"),
        (("context_loss.weight=-1",), "must be >= 0"),
    ],
)
def test_settings_that_cannot_work_are_refused_with_the_fix(micro_overrides, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny_cpu", micro_overrides(*overrides))


def _context_head_gradient(micro_overrides, ramp: str) -> float:
    cfg = load_config(
        "tiny_cpu",
        micro_overrides(*CONTEXT, ramp, "mask.strategy=causal", "mask.causal_context_frames=2"),
    )
    torch.manual_seed(0)
    models = build_models(cfg)
    grid = models.encoder.grid_size
    masks = [MaskSet.from_target_masks([causal(grid, 1).flatten()] * 2)]
    clips = torch.randint(0, 256, (2, 3, 4, 32, 32), dtype=torch.uint8)
    setup = StepSetup(
        JEPA(models.encoder, models.predictor),
        models.target_encoder,
        FeatureObjective("l1"),
        torch.device("cpu"),
        "fp32",
        None,
        models.encoder.num_tokens,
        grid,
        context_loss=cfg.context_loss,
    )
    stats = forward_backward(setup, [Batch(1, clips, {}, masks)], with_monitors=False)
    assert stats.context_loss > 0  # measured whatever its weight
    return models.predictor.predictor_proj_context.weight.grad.abs().sum().item()


def test_the_context_head_learns_only_once_its_weight_has_ramped_in(micro_overrides):
    assert _context_head_gradient(micro_overrides, "context_loss.ramp=[0,0]") > 0
    assert _context_head_gradient(micro_overrides, "context_loss.ramp=[5,10]") == 0


def test_training_logs_the_context_loss_and_it_falls(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides(*CONTEXT, "steps=12"))
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    values = [r["context_loss"] for r in records]
    assert len(values) == 12 and all(math.isfinite(v) and v > 0 for v in values)
    assert sum(values[-3:]) < sum(values[:3])


def test_a_padded_context_slot_on_a_target_index_stays_finite():
    # The second sample's context is padded with index 1, one of its own targets.
    context_idx = torch.tensor([[0, 2], [0, 1]])
    target_idx = torch.tensor([[1, 3], [1, 3]])
    weights = distance_weights(
        context_idx, target_idx, torch.ones(2, 2, dtype=torch.bool), (1, 1, 4)
    )
    assert torch.isfinite(weights).all() and weights.max().item() == 1.0
