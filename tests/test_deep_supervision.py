"""V-JEPA 2.1's deep self-supervision: a predictor that reads and predicts several encoder levels
trains, its targets are each level layer-normed, and the trained run predicts its features (the
last level) for surprise, the yardstick and the decoder like any other run."""

from __future__ import annotations

import pytest
import torch

from train.config import ConfigError, load_config
from train.loop import train
from train.masks import MaskSet, causal
from train.monitor import read_metrics
from train.objectives import FeatureObjective
from train.pretrained import build_models, load_pretrained

LEVELS = ("model.hierarchical_levels=2", "model.pred_levels=2")


def test_targets_are_every_level_layer_normed_and_the_last_is_the_features(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides(*LEVELS))
    torch.manual_seed(0)
    target_encoder = build_models(cfg).target_encoder.eval()
    clips = torch.randn(2, 3, 4, 32, 32)
    deep = FeatureObjective(levels=2).targets(clips, target_encoder)
    plain = FeatureObjective().targets(clips, target_encoder)
    width = target_encoder.embed_dim
    assert deep.shape == (2, target_encoder.num_tokens, 2 * width)
    for level in deep.split(width, dim=-1):
        assert level.mean(-1).abs().max().item() < 1e-4
        assert (level.std(-1, unbiased=False) - 1).abs().max().item() < 1e-3
    assert torch.allclose(deep[..., width:], plain, atol=1e-5)
    assert not torch.allclose(deep[..., :width], plain, atol=1e-2)  # the first level differs


def test_a_deep_supervised_run_trains_and_predicts_its_features(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides(*LEVELS, "steps=12"))
    result = train(cfg)
    losses = [r["loss"] for r in read_metrics(result.run_dir / "metrics.jsonl")]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])
    pretrained = load_pretrained(result.run_dir)
    width = pretrained.encoder.embed_dim
    assert pretrained.predictor.predictor_proj.out_features == 2 * width
    grid = pretrained.encoder.grid_size
    masks = MaskSet.from_target_masks([causal(grid, 1).flatten()] * 2)
    clips = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        predicted = pretrained.predict(clips, masks.context_idx, masks.target_idx)
        context = pretrained.encoder(clips, keep=masks.context_idx, levels=2)
        both = pretrained.predictor(context, masks.context_idx, masks.target_idx)
    assert predicted.shape == (2, masks.target_idx.shape[1], width)
    assert torch.equal(predicted, both[..., width:])  # the last level: the features


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (("model.pred_levels=2",), "model.hierarchical_levels >= 2"),
        ((*LEVELS, "target=pixels"), "target=features"),
    ],
)
def test_levels_the_encoder_cannot_give_are_refused(micro_overrides, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("tiny_cpu", micro_overrides(*overrides))
