"""The training loop in-process: learning, metrics, checkpoints, accumulation, faults."""

from __future__ import annotations

import pytest
import torch

from train.checkpoint import LATEST, load_checkpoint, save_checkpoint
from train.config import ConfigError, load_config
from train.loop import Trainer, train
from train.monitor import read_metrics
from train.objectives import FeatureObjective
from train.runtime import NonFiniteLossError

REQUIRED_KEYS = {
    "step",
    "loss",
    "lr",
    "wd",
    "ema",
    "grad_norm",
    "data_s",
    "step_s",
    "clips_per_s",
    "pred_std",
    "target_std",
    "mask_ratio",
    "padding",
    "skipped",
}


def test_loss_falls_and_metrics_are_complete(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("steps=25", "checkpoint_every=10"))
    result = train(cfg)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 26))
    assert all(r.keys() >= REQUIRED_KEYS for r in records)
    losses = [r["loss"] for r in records]
    assert sum(losses[-5:]) / 5 < 0.92 * losses[0], losses
    assert "rankme" in records[0] and "rankme" in records[2] and "rankme" not in records[1]
    assert 1.0 <= records[0]["rankme"] <= 32
    # Schedules as configured: warmup to the peak, then down to the final value at the end.
    assert records[2]["lr"] == pytest.approx(1e-3)  # step index 2 ends the warmup
    assert records[-1]["lr"] == pytest.approx(1e-6)
    assert records[-1]["ema"] == pytest.approx(1.0)
    assert all(0.0 < r["mask_ratio"][0] < 1.0 for r in records)
    assert all(r["target_std"] > 0.05 for r in records)  # targets did not collapse to a point


def test_rankme_steps_are_logged_even_between_log_steps(micro_overrides):
    cfg = load_config(
        "tiny_cpu",
        micro_overrides("steps=12", "monitor.log_every=5", "monitor.rankme_every=4"),
    )
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert [r["step"] for r in records if "rankme" in r] == [1, 4, 8, 12]
    assert [r["step"] for r in records] == [1, 4, 5, 8, 10, 12]


def test_run_directory_layout(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("steps=6", "checkpoint_every=3", "keep_every=3"))
    run_dir = train(cfg).run_dir
    assert (run_dir / "config.yaml").read_text().startswith("model:")
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == ["latest.pt", "step_0000003.pt", "step_0000006.pt"]
    state = load_checkpoint(run_dir)
    assert state["step"] == 6
    for key in ["encoder", "predictor", "target_encoder", "opt", "rng", "config"]:
        assert key in state
    assert state["config"]["steps"] == 6
    # The target encoder is an EMA of the encoder: close to it, but not equal.
    enc, tgt = (
        state["encoder"]["blocks.0.attn.qkv.weight"],
        state["target_encoder"]["blocks.0.attn.qkv.weight"],
    )
    assert not torch.equal(enc, tgt)


def test_gradient_accumulation_matches_the_full_batch(micro_overrides):
    full = train(load_config("tiny_cpu", micro_overrides("steps=3", run="full")))
    accum = train(
        load_config("tiny_cpu", micro_overrides("steps=3", "data.micro_batch_size=2", run="accum"))
    )
    a = read_metrics(full.run_dir / "metrics.jsonl")
    b = read_metrics(accum.run_dir / "metrics.jsonl")
    for x, y in zip(a, b):
        assert x["loss"] == pytest.approx(y["loss"], rel=1e-4)
        assert x["grad_norm"] == pytest.approx(y["grad_norm"], rel=1e-3)
    wa = load_checkpoint(full.run_dir)["encoder"]["blocks.1.mlp.fc2.weight"]
    wb = load_checkpoint(accum.run_dir)["encoder"]["blocks.1.mlp.fc2.weight"]
    assert torch.allclose(wa, wb, atol=1e-5)


def test_bad_micro_batch_is_refused(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("data.micro_batch_size=3"))
    with pytest.raises(ConfigError, match="e.g. data.micro_batch_size=2"):
        Trainer(cfg)


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(micro_overrides, monkeypatch):
    calls = {"n": 0}
    real_loss = FeatureObjective.loss

    def loss_that_breaks_at_step_5(self, pred, target, valid):
        calls["n"] += 1  # two mask sets: two calls per step
        value = real_loss(self, pred, target, valid)
        return value * float("nan") if calls["n"] > 8 else value

    monkeypatch.setattr(FeatureObjective, "loss", loss_that_breaks_at_step_5)
    cfg = load_config("tiny_cpu", micro_overrides("steps=10", "checkpoint_every=2"))
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    message = str(err.value)
    assert "at step 5" in message and "(step 4) is intact" in message and "resume=true" in message
    state = load_checkpoint(cfg.out)
    assert state["step"] == 4
    assert all(torch.isfinite(v).all() for v in state["encoder"].values())
    assert max(r["step"] for r in read_metrics(f"{cfg.out}/metrics.jsonl")) == 4


def test_existing_run_is_not_overwritten(micro_overrides):
    train(load_config("tiny_cpu", micro_overrides("steps=2")))
    with pytest.raises(ConfigError, match="resume=true"):
        train(load_config("tiny_cpu", micro_overrides("steps=2")))


def test_resume_refuses_a_different_run(micro_overrides):
    train(load_config("tiny_cpu", micro_overrides("steps=2")))
    with pytest.raises(ConfigError, match="model.depth: 2 -> 3"):
        train(load_config("tiny_cpu", micro_overrides("steps=2", "resume=true", "model.depth=3")))


def test_resume_of_a_finished_run_does_nothing(micro_overrides):
    first = train(load_config("tiny_cpu", micro_overrides("steps=2")))
    again = train(load_config("tiny_cpu", micro_overrides("steps=2", "resume=true")))
    assert again.steps_done == 2
    assert len(read_metrics(first.run_dir / "metrics.jsonl")) == 2


def test_resume_reads_checkpoints_that_still_hold_the_schedule_block(micro_overrides):
    """Checkpoints written before the schedule values were dropped (they follow from config and
    step) carry a "schedule" block: loading ignores it."""
    first = train(load_config("tiny_cpu", micro_overrides("steps=2")))
    folder = first.run_dir / "checkpoints"
    state = load_checkpoint(folder / LATEST)
    state["schedule"] = {"total_steps": 2, "lr": 1e-6, "weight_decay": 0.4, "ema": 1.0}
    save_checkpoint(folder, state, keep_copy=False)
    again = train(load_config("tiny_cpu", micro_overrides("steps=2", "resume=true")))
    assert again.steps_done == 2


@pytest.mark.parametrize("strategy", ["random_tube", "causal"])
def test_other_mask_strategies_train(micro_overrides, strategy):
    extra = ["mask.causal_context_frames=2"] if strategy == "causal" else []
    cfg = load_config("tiny_cpu", micro_overrides("steps=3", f"mask.strategy={strategy}", *extra))
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    expected_sets = 2 if strategy == "random_tube" else 1
    assert len(records[0]["loss_sets"]) == expected_sets
    if strategy == "causal":
        assert records[0]["mask_ratio"] == [pytest.approx(0.5)]
        assert records[0]["padding"] == 0.0


def test_pixel_target_trains(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("steps=8", "target=pixels"))
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert records[-1]["loss"] < records[0]["loss"]
    state = load_checkpoint(cfg.out)
    assert state["predictor"]["predictor_proj.weight"].shape == (2 * 8 * 8 * 3, 16)


def test_bf16_autocast_trains(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("steps=4", "precision=bf16"))
    records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    assert load_checkpoint(cfg.out)["encoder"]["norm.weight"].dtype == torch.float32


def test_a_frozen_patch_embedding_stays_at_step_0_and_the_rest_trains(micro_overrides):
    from train.pretrained import initial_models

    cfg = load_config("tiny_cpu", micro_overrides("steps=3", "optim.freeze_patch_embed=true"))
    state = load_checkpoint(train(cfg).run_dir / "checkpoints" / LATEST)
    start = initial_models(cfg).encoder.state_dict()
    for part in ("encoder", "target_encoder"):
        for name in ("patch_embed.proj.weight", "patch_embed.proj.bias"):
            assert torch.equal(state[part][name], start[name]), (part, name)
    assert not torch.equal(
        state["encoder"]["blocks.0.attn.qkv.weight"], start["blocks.0.attn.qkv.weight"]
    )
