"""Fitting the decoder: it learns, writes a run like the core's, resumes exactly, and the CLI
reports errors a user can act on."""

from __future__ import annotations

import json

import pytest
import torch

from decoder.__main__ import main
from decoder.batches import fit_dataset, held_out_dataset
from decoder.bundle import load_bundle
from decoder.config import load_decoder_config
from decoder.fit import EVAL_FAMILIES, DecoderTrainer, fit_decoder
from decoder.render import render_prediction
from decoder.starter import build_starter, load_starter_config
from decoder_fixtures import micro_decoder_config, micro_pretrained, random_clip
from train.checkpoint import load_checkpoint
from train.config import ConfigError, load_config
from train.loop import train
from train.monitor import read_metrics, training_seconds
from video_fixtures import write_video

pytestmark = pytest.mark.slow

FAST = (
    "batch_size=8",
    "num_workers=0",
    "precision=fp32",
    "optim.lr=3e-3",
    "optim.warmup_steps=3",
    "eval_clips=4",
    "log_every=1",
)


def test_fit_learns_and_writes_a_run_the_workbench_can_open(tmp_path):
    # An untrained encoder's latents of a token still carry its pixels (the residual stream
    # starts near the identity), so the target mode has something to learn within 24 steps;
    # the predictions of an untrained predictor carry next to nothing.
    overrides = ("steps=24", "eval_every=12", "latents=target", f"out={tmp_path / 'fit'}")
    cfg = micro_decoder_config(*FAST, *overrides)
    result = fit_decoder(micro_pretrained(), cfg, {"checkpoint": "micro", "steps": 0})
    records = read_metrics(result.run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, 25))
    losses = [r["loss"] for r in records]
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:3]) / 3, losses
    assert set(records[11]["held_out"]) == set(EVAL_FAMILIES) == set(result.held_out)
    assert all(0 < v["psnr"] < 60 and -1 <= v["ssim"] <= 1 for v in result.held_out.values())
    assert (result.run_dir / "config.yaml").read_text().startswith("model:")
    assert load_checkpoint(result.run_dir)["step"] == 24
    bundle = load_bundle(result.run_dir / "bundle.safetensors")
    assert bundle.provenance["decoder"]["steps"] == 24
    mask, index = bundle.preset_mask("multiblock-short")
    assert render_prediction(bundle, random_clip(), mask, index).decoded.shape == (4, 32, 32, 3)


class Interrupted(Exception):
    pass


def test_resume_after_a_crash_ends_where_an_uninterrupted_fit_ends(tmp_path, monkeypatch):
    common = (*FAST, "steps=10", "checkpoint_every=4", "eval_every=0", "log_every=5")
    whole = fit_decoder(micro_pretrained(), micro_decoder_config(*common, f"out={tmp_path / 'a'}"))

    original_step = DecoderTrainer.optimizer_step
    calls = {"n": 0}

    def crash_at_step_7(self):
        calls["n"] += 1
        if calls["n"] == 7:
            raise Interrupted
        return original_step(self)

    monkeypatch.setattr(DecoderTrainer, "optimizer_step", crash_at_step_7)
    out = f"out={tmp_path / 'b'}"
    with pytest.raises(Interrupted):
        fit_decoder(micro_pretrained(), micro_decoder_config(*common, out))
    monkeypatch.setattr(DecoderTrainer, "optimizer_step", original_step)
    assert load_checkpoint(tmp_path / "b")["step"] == 4
    with pytest.raises(ConfigError, match="resume=true"):
        fit_decoder(micro_pretrained(), micro_decoder_config(*common, out))
    resumed = fit_decoder(micro_pretrained(), micro_decoder_config(*common, out, "resume=true"))
    for name, value in whole.decoder.state_dict().items():
        assert torch.equal(resumed.decoder.state_dict()[name], value), name
    steps = [r["step"] for r in read_metrics(tmp_path / "b" / "metrics.jsonl")]
    assert steps == [1, 5, 10]


def test_resume_accepts_changes_that_do_not_change_the_fit(tmp_path):
    common = (*FAST, "steps=3", "checkpoint_every=3", f"out={tmp_path / 'fit'}")
    fit_decoder(micro_pretrained(), micro_decoder_config(*common, "eval_every=0"))
    harmless = ("resume=true", "eval_every=1", "log_every=1", "num_workers=0", "eval_clips=2")
    assert fit_decoder(micro_pretrained(), micro_decoder_config(*common, *harmless)).decoder
    with pytest.raises(ConfigError, match="batch_size"):
        fit_decoder(
            micro_pretrained(), micro_decoder_config(*common, "resume=true", "batch_size=3")
        )


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="unknown config key model.widht"):
        load_decoder_config(None, ["model.widht=3"])
    with pytest.raises(ConfigError, match="latents='pixels' is not allowed"):
        load_decoder_config(None, ["latents=pixels"])
    with pytest.raises(ConfigError, match="masks weights"):
        load_decoder_config(
            None, ["masks.pretraining=0", "masks.blob=0", "masks.tube=0", "masks.future=0"]
        )


def test_cli_fits_on_a_core_run_and_reports_errors(tmp_path, micro_overrides, capsys):
    run = train(load_config("tiny_cpu", micro_overrides("steps=2"))).run_dir
    model = [f"model.{k}={v}" for k, v in {"embed_dim": 32, "depth": 1, "num_heads": 2}.items()]
    out = tmp_path / "fit"
    fast = [*FAST, "optim.warmup_steps=0", "steps=2", "eval_clips=2", f"out={out}"]
    assert main([str(run), *model, *fast]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps_done"] == 2 and set(summary["held_out_psnr"]) == set(EVAL_FAMILIES)
    assert load_bundle(out / "bundle.safetensors").provenance["pretrain"]["steps"] == 2

    assert main([str(run), "steps=0"]) == 2
    assert "steps=0 must be at least 1" in capsys.readouterr().err
    assert main([str(tmp_path / "nothing-here")]) == 1
    assert "no checkpoint at" in capsys.readouterr().err


def test_starter_builds_a_bundle_that_opens(tmp_path):
    pretrain = [
        "steps=3",
        "model.num_frames=4",
        "model.img_size=32",
        "data.batch_size=4",
        "data.num_workers=0",
        "optim.warmup_steps=1",
        "data.synthetic.num_clips=64",
    ]
    overrides = [
        f"work={tmp_path / 'work'}",
        f"out={tmp_path / 'starter.safetensors'}",
        f"pretrain_overrides=[{','.join(pretrain)}]",
        "decoder.steps=2",
        "decoder.optim.warmup_steps=0",
        "decoder.eval_clips=2",
        "decoder.batch_size=4",
        "decoder.num_workers=0",
        "probe_clips=0",
        "quality_clips=2",
        "physics_pairs_per_law=1",
    ]
    path = build_starter(load_starter_config(overrides))
    bundle = load_bundle(path)
    assert bundle.provenance["pretrain"]["steps"] == 3 and bundle.provenance["probe"] is None
    # The yardstick is recorded beside step 0 and the no-learning rule, for the Model tab.
    physics = bundle.provenance["physics"]
    assert physics["step"] == 3 and physics["pairs"]["total"] == 4
    assert {"trained", "step 0"} <= set(physics["models"])
    assert bundle.provenance["seconds"]["physics"] == physics["seconds"] > 0
    assert set(bundle.provenance["quality"]["scores"]) == set(EVAL_FAMILIES)
    assert bundle.encoder.blocks[0].attn.qkv.weight.dtype == torch.float32  # stored as fp16
    with pytest.raises(ConfigError, match="delete it to rebuild from scratch"):
        build_starter(load_starter_config(overrides))
    with pytest.raises(ConfigError, match="unknown config key"):
        load_starter_config(["steps=3"])


def test_training_seconds_add_up_the_processes_of_a_resumed_run():
    # elapsed_s restarts at each resume: 30 s, then 20 s more, then 5 s more.
    records = [{"elapsed_s": e} for e in (10.0, 30.0, 4.0, 20.0, 5.0)]
    assert training_seconds([*records, {"step": 9}]) == 55.0
    assert training_seconds([]) == 0.0


def test_video_runs_hold_out_real_files_from_the_decoder(tmp_path, micro_overrides):

    folder = tmp_path / "videos"
    for i in range(10):
        write_video(folder / f"clip{i}.mp4", num_frames=12, size=(40, 32))
    run = load_config(
        "tiny_cpu",
        micro_overrides(
            "data.source=videos",
            f"data.path={folder}",
            "data.frame_step=1",
            "data.eval_clips_per_video=2",
        ),
    )
    fit, held = fit_dataset(run), held_out_dataset(run)
    fit_files = {i // 2 for i in fit.indices}
    held_files = {i // 2 for i in held.indices}
    assert len(held_files) == 1 and len(fit_files) == 9
    assert fit_files.isdisjoint(held_files) and fit_files | held_files == set(range(10))
    assert len(held) == 2  # both clips of the held-out file
    assert held[0]["clip"].shape == fit[0]["clip"].shape
    # The same split every time: it depends on the number of files only.
    assert held_out_dataset(run).indices == held.indices


def test_a_single_file_run_says_its_held_out_clips_are_not_unseen(tmp_path, micro_overrides):

    folder = tmp_path / "one"
    write_video(folder / "only.mp4", num_frames=12, size=(40, 32))
    run = load_config(
        "tiny_cpu",
        micro_overrides("data.source=videos", f"data.path={folder}", "data.frame_step=1"),
    )
    with pytest.warns(UserWarning, match="one file"):
        assert len(held_out_dataset(run)) == 1


def test_a_fit_folder_in_use_is_refused_and_a_killed_holders_lock_is_not(tmp_path, monkeypatch):
    import os
    import subprocess
    import sys

    from test_hardening_runs import HOLD_LOCK  # holds RUN/.lock as the training's test does

    common = (*FAST, "steps=3", "checkpoint_every=1", "eval_every=0", f"out={tmp_path / 'fit'}")
    original_step = DecoderTrainer.optimizer_step
    calls, second = {"n": 0}, {}

    def second_fit_into_the_folder_at_step_2(self):
        calls["n"] += 1
        if calls["n"] == 2:  # the first fit has written step 1 and holds the folder
            with pytest.raises(ConfigError) as err:
                fit_decoder(micro_pretrained(), micro_decoder_config(*common))
            second["error"] = str(err.value)
            raise Interrupted
        return original_step(self)

    monkeypatch.setattr(DecoderTrainer, "optimizer_step", second_fit_into_the_folder_at_step_2)
    with pytest.raises(Interrupted):
        fit_decoder(micro_pretrained(), micro_decoder_config(*common))
    monkeypatch.setattr(DecoderTrainer, "optimizer_step", original_step)
    assert f"in use by another decoder fit (process {os.getpid()})" in second["error"]
    assert "choose another out=" in second["error"]
    steps = [r["step"] for r in read_metrics(tmp_path / "fit" / "metrics.jsonl")]
    assert steps == [1]  # the second fit wrote nothing into the first one's folder

    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path / "fit" / ".lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"decoder fit \\(process {holder.pid}\\)"):
            fit_decoder(micro_pretrained(), micro_decoder_config(*common, "resume=true"))
    finally:
        holder.kill()  # as kill -9 would: the lock file stays behind
        holder.wait()
    assert (tmp_path / "fit" / ".lock").exists()
    resumed = fit_decoder(micro_pretrained(), micro_decoder_config(*common, "resume=true"))
    assert resumed.steps_done == 3
