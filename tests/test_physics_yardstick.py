"""The intuitive-physics yardstick: surprise windows, scoring, a known answer, the CLI, the
training monitor."""

from __future__ import annotations

import json

import pytest
import torch

from train.config import load_config
from train.data.base import normalize_clip
from train.data.synthetic import PhysicsWorld
from train.data.violations import PairWorld
from train.eval import physics
from train.eval.physics import pair_outcomes, score_pairs, surprise_of_pairs, wilson_interval
from train.eval.surprise import (
    CarryLastFrame,
    LatentForecaster,
    measure_surprise,
    window_starts,
)
from train.loop import train
from train.monitor import read_metrics
from train.pretrained import initial_models


@pytest.fixture(scope="module")
def pairs():
    world = PhysicsWorld(num_clips=10**6, num_frames=16, img_size=64, seed=77, max_objects=3)
    return PairWorld(world, context_frames=4).pairs(24)


def test_a_forecaster_that_carries_the_last_frame_gets_the_known_answers(pairs):
    scored = score_pairs(pairs, surprise_of_pairs(CarryLastFrame(8, 2, 8), pairs, 4))["mean"]
    result = scored["laws"]
    # A jump lands far from where the object was: more surprising than moving on.
    assert result["continuity"]["accuracy"] >= 0.75
    # Expecting the object to stay put, it finds a vanished or stopped object *less* surprising
    # than one that moves on: far below chance, the signature of a model without dynamics.
    assert result["permanence"]["accuracy"] <= 0.25
    assert result["inertia"]["variants"]["stop"]["accuracy"] <= 0.2


def test_matched_sets_cancel_what_is_easy_to_predict_and_keep_the_violation(pairs):
    # The same rule on the matched sets: an empty scene no longer counts as "expected", so a
    # rule that expects every object to stay where it was is surprised when one vanishes, or
    # appears from nothing, and when one jumps. A turn keeps the object nearer its last place
    # than going straight on does, so the turn (and its reverse) surprise it less.
    matched = score_pairs(pairs, surprise_of_pairs(CarryLastFrame(8, 2, 8), pairs, 4))["mean"][
        "matched"
    ]["laws"]
    assert matched["permanence"]["accuracy"] >= 0.9
    assert matched["continuity"]["accuracy"] >= 0.9
    assert matched["inertia"]["variants"]["turn"]["accuracy"] <= 0.25


def test_outcomes_count_ties_half_and_the_interval_is_wilsons():
    possible = torch.tensor([1.0, 2.0, 3.0, 4.0])
    impossible = torch.tensor([2.0, 2.0, 1.0, 5.0])
    assert pair_outcomes(possible, impossible).tolist() == [1.0, 0.5, 0.0, 1.0]
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3) and high == pytest.approx(0.7634, abs=1e-3)
    low, high = wilson_interval(20, 20)
    assert high == 1.0 and low == pytest.approx(0.8389, abs=1e-3)


def test_windows_slide_to_the_end_and_frames_before_any_target_have_no_surprise():
    assert window_starts(16, 8, 2) == [0, 2, 4, 6, 8]
    assert window_starts(11, 8, 2) == [0, 2, 3]
    with pytest.raises(ValueError, match="shorter than the model's window"):
        window_starts(6, 8, 2)
    clips = PhysicsWorld(num_clips=4, num_frames=12, img_size=64, seed=0)[0]["clip"][None]
    surprise = measure_surprise(CarryLastFrame(8, 2, 8), clips.expand(3, -1, -1, -1, -1), 4)
    assert surprise.per_window.shape == (3, 3)
    assert surprise.per_token.shape == (3, 3, 2, 8, 8)
    assert torch.isnan(surprise.per_frame[:, :4]).all()
    assert torch.isfinite(surprise.per_frame[:, 4:]).all()
    # Identical clips, identical surprise: nothing random in the measurement.
    assert torch.equal(surprise.per_window[0], surprise.per_window[2])


def test_latent_forecaster_predicts_the_tokens_after_the_context(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("mask.future_sets=1"))
    models = initial_models(cfg)
    forecaster = LatentForecaster(models)
    assert forecaster.mask_index == 2  # the future set's own token, after the two multiblock
    clips = torch.randint(0, 255, (2, 3, 4, 32, 32), dtype=torch.uint8)
    predicted, actual = forecaster(clips, context_steps=1)
    assert predicted.shape == actual.shape == (2, 1, 4, 4, 32)
    # The targets are the target encoder's layer-normed features of the whole window.
    full = torch.nn.functional.layer_norm(models.target_encoder(normalize_clip(clips)), (32,))
    assert torch.allclose(actual.reshape(2, 16, 32), full[:, 16:], atol=1e-5)


def test_cli_reports_trained_and_step0_models_on_a_run(micro_overrides, tmp_path, capsys):
    cfg = load_config("tiny_cpu", micro_overrides("steps=3", "mask.future_sets=1"))
    run = train(cfg).run_dir
    assert physics.main([str(run), "pairs_per_law=2", "device=cpu"]) == 0
    table = capsys.readouterr().out
    assert "| trained |" in table and "| step 0 |" in table
    assert table.count("| trained |") == 2 and "Matched sets" in table
    report = json.loads((run / "eval" / "physics.json").read_text())
    assert report["pairs"]["total"] == 8
    assert report["pairs"]["frames"] == 8 and report["pairs"]["context_frames"] == 2
    for row in ("trained", "step 0"):
        for score in ("mean", "max"):
            laws = report["models"][row][score]["laws"]
            assert set(laws) == {"permanence", "continuity", "constancy", "inertia"}
            assert all(0.0 <= r["accuracy"] <= 1.0 and r["pairs"] == 2 for r in laws.values())
            matched = report["models"][row][score]["matched"]["laws"]
            assert all(r["pairs"] == 2 for r in matched.values())


def test_cli_reads_the_committed_bundle_and_refuses_bad_input(tmp_path, capsys):
    from decoder.bundle import STARTER_PATH

    out = tmp_path / "starter.json"
    code = physics.main([str(STARTER_PATH), "pairs_per_law=1", "step0=false", f"out={out}"])
    assert code == 0
    assert set(json.loads(out.read_text())["models"]) == {"trained", physics.CARRY_ROW}
    assert physics.main([str(STARTER_PATH), "pairs_per_law=0"]) == 2
    assert "pairs_per_law=0 must be at least 1" in capsys.readouterr().err
    assert physics.main([str(tmp_path / "nothing-here")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err
    pickle = tmp_path / "model.safetensors"
    pickle.write_bytes(b"\x80\x04not really")
    assert physics.main([str(pickle)]) == 1
    assert "not a readable safetensors model file" in capsys.readouterr().err


def test_training_logs_the_physics_monitor(micro_overrides):
    cfg = load_config(
        "tiny_cpu",
        micro_overrides(
            "steps=4", "mask.future_sets=1", "monitor.physics_every=2", "monitor.log_every=10"
        ),
    )
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    logged = {r["step"]: r for r in records if "physics" in r}
    assert sorted(logged) == [1, 2, 4]
    for record in logged.values():
        assert 0.0 <= record["physics"] <= 1.0
        assert {"physics_permanence", "physics_inertia", "physics_matched"} <= record.keys()
        assert 0.0 <= record["physics_matched_permanence"] <= 1.0


def test_feature_loss_l2_weighs_large_errors_more_and_is_refused_for_pixels(micro_overrides):
    from train.config import ConfigError
    from train.objectives import FeatureObjective

    pred = torch.zeros(1, 4, 2)
    target = torch.tensor([[[0.1, 0.1], [0.1, 0.1], [0.1, 0.1], [2.0, 2.0]]])
    valid = torch.ones(1, 4, dtype=torch.bool)
    assert FeatureObjective("l1").loss(pred, target, valid).item() == pytest.approx(0.575)
    assert FeatureObjective("l2").loss(pred, target, valid).item() == pytest.approx(1.0075)
    cfg = load_config("tiny_cpu", micro_overrides("feature_loss=l2", "steps=2"))
    assert train(cfg).final_loss > 0
    with pytest.raises(ConfigError, match="feature_loss=l2 applies to feature targets"):
        load_config("tiny_cpu", micro_overrides("feature_loss=l2", "target=pixels"))


def test_runs_with_different_seeds_are_scored_on_the_same_pairs():
    """The yardstick is one benchmark: a second training seed must not change the test."""
    first = load_config("tiny_cpu", ["seed=0"])
    second = load_config("tiny_cpu", ["seed=1"])
    (world_a, context_a), (world_b, context_b) = (
        physics.pair_world(run, physics.PhysicsConfig()) for run in (first, second)
    )
    assert context_a == context_b
    a, b = world_a.pairs(2), world_b.pairs(2)
    assert all(torch.equal(x.possible, y.possible) for x, y in zip(a, b))
    assert all(torch.equal(x.impossible, y.impossible) for x, y in zip(a, b))
