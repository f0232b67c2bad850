"""The online probe: what a short run with the probe on writes, and what it does without labels."""

from __future__ import annotations

import logging

import pytest
import torch

from train.checkpoint import load_checkpoint
from train.config import ConfigError, load_config
from train.eval.online import OnlineProbe
from train.loop import train
from train.models import build_encoder
from train.monitor import read_metrics


def test_a_short_run_with_the_probe_on_writes_probe_keys(micro_overrides):
    overrides = micro_overrides(
        "steps=4", "monitor.online_probe_every=2", "monitor.online_probe_clips=32"
    )
    result = train(load_config("tiny_cpu", overrides))
    records = {r["step"]: r for r in read_metrics(result.run_dir / "metrics.jsonl")}
    # Step 1 too: one optimiser step in, the untrained reference the Train tab draws.
    for step in (1, 2, 4):
        probed = {k: v for k, v in records[step].items() if k.startswith("probe_")}
        assert sorted(probed) == ["probe_direction", "probe_shape", "probe_speed"]
        assert all(0.0 <= v <= 1.0 for v in probed.values())
    assert not any(k.startswith("probe_") for k in records[3])


def test_the_probe_leaves_training_unchanged(micro_overrides):
    """Probing reads the target encoder and no random state: the weights come out the same."""
    plain = train(load_config("tiny_cpu", micro_overrides("steps=4", run="plain")))
    probed = train(
        load_config(
            "tiny_cpu",
            micro_overrides(
                "steps=4",
                "monitor.online_probe_every=1",
                "monitor.online_probe_clips=16",
                run="probed",
            ),
        )
    )
    a, b = load_checkpoint(plain.run_dir), load_checkpoint(probed.run_dir)
    for name, value in a["target_encoder"].items():
        assert torch.equal(value, b["target_encoder"][name]), name


def test_measure_encodes_only_its_fixed_clips_once():
    """The cost of a call is one forward pass over the held-out clips plus a small ridge solve
    (about half a second at the teaching size, 256 clips, on an idle 2-core laptop)."""
    cfg = load_config("tiny_cpu", ["monitor.online_probe_clips=100", "model.num_frames=4"])
    probe = OnlineProbe(cfg, torch.device("cpu"))
    encoder = build_encoder(cfg.model).eval()
    seen = []
    encoder.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[0]))
    first = probe.measure(encoder)
    assert sum(seen) == 100 and max(seen) <= 64
    assert sorted(first) == ["probe_direction", "probe_shape", "probe_speed"]
    assert probe.measure(encoder) == first  # fixed clips, deterministic fit


def test_unlabelled_sources_return_nothing_and_say_why_once(micro_overrides, tmp_path, caplog):
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (40, 40), (10 * i, 80, 160)).save(folder / f"{i}.png")
    cfg = load_config(
        "tiny_cpu",
        micro_overrides(
            "data.source=images", f"data.path={folder}", "monitor.online_probe_every=1"
        ),
    )
    with caplog.at_level(logging.WARNING, logger="train.eval"):
        probe = OnlineProbe(cfg, torch.device("cpu"))
        encoder = build_encoder(cfg.model).eval()
        assert probe.measure(encoder) == {}
        assert probe.measure(encoder) == {}
    messages = [r.getMessage() for r in caplog.records if "online probe off" in r.getMessage()]
    assert messages == ["online probe off: data.source=images carries no labels"]


def test_too_few_clips_turn_the_probe_off_and_none_is_refused(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("monitor.online_probe_clips=1"))
    assert OnlineProbe(cfg, torch.device("cpu")).measure(build_encoder(cfg.model)) == {}
    with pytest.raises(ConfigError, match="online_probe_clips=0 must be at least 1"):
        load_config("tiny_cpu", micro_overrides("monitor.online_probe_clips=0"))
