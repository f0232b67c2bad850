"""Training runs and checkpoints under faults (issue: hardening): non-finite weights never
saved, bad settings refused up front, moved runs resumed, corrupt checkpoints fallen back from,
a full disk explained, a run folder locked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from train.checkpoint import (
    CheckpointError,
    load_checkpoint,
    non_finite_tensors,
    save_checkpoint,
)
from train.config import ConfigError, load_config
from train.loop import Trainer, train
from train.runtime import NonFiniteLossError

# ---------------------------------------------------------------------------------------------
# 7. Non-finite weights are never saved.


def poison_weights_at(monkeypatch, bad_step: int) -> None:
    """After the optimiser update of step `bad_step` (1-based), one encoder weight is NaN:
    what optim.lr=nan or an exploding update does, after the loss was checked finite."""
    real = Trainer.optimizer_step
    calls = {"n": 0}

    def optimizer_step(self):
        norm = real(self)
        calls["n"] += 1
        if calls["n"] == bad_step:
            with torch.no_grad():
                next(self.encoder.parameters()).view(-1)[0] = float("nan")
        return norm

    monkeypatch.setattr(Trainer, "optimizer_step", optimizer_step)


def test_non_finite_weights_are_not_saved_and_the_last_finite_checkpoint_is_named(
    micro_overrides, monkeypatch
):
    poison_weights_at(monkeypatch, 3)
    cfg = load_config("tiny_cpu", micro_overrides("steps=6", "checkpoint_every=1"))
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    message = str(err.value)
    assert "weights became non-finite at step 3" in message
    assert "(step 2) is intact" in message and "resume=true" in message
    state = load_checkpoint(cfg.out)
    assert state["step"] == 2
    assert non_finite_tensors([state["encoder"], state["target_encoder"], state["opt"]]) == []


def test_with_no_checkpoint_yet_the_message_does_not_say_continue(micro_overrides, monkeypatch):
    poison_weights_at(monkeypatch, 1)
    cfg = load_config("tiny_cpu", micro_overrides("steps=4", "checkpoint_every=1"))
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    message = str(err.value)
    assert "before any checkpoint was written" in message and "nothing to resume" in message
    assert "Continue from it" not in message and "resume=true" not in message
    assert not (Path(cfg.out) / "checkpoints" / "latest.pt").exists()


def test_runaway_weights_are_not_saved_and_a_resume_with_a_lower_lr_recovers(micro_overrides):
    # optim.lr=1e6: step 1 runs at optim.start_lr (warmup), step 2 takes the weights to ~5e5
    # (finite), step 3 would give NaN. Step 2 must not become the checkpoint to resume from.
    overrides = micro_overrides("steps=4", "checkpoint_every=1")
    cfg = load_config("tiny_cpu", [*overrides, "optim.lr=1e6"])
    with pytest.raises(NonFiniteLossError) as err:
        train(cfg)
    message = str(err.value)
    assert re.search(
        r"the weights diverged at step 2 \(max \|w\| \d\.\d+e\+05 in the encoder \(1 at", message
    )
    assert "they were not logged or saved" in message
    assert "the last good checkpoint (step 1) is intact" in message and "resume=true" in message
    state = load_checkpoint(cfg.out)
    assert state["step"] == 1
    assert max(v.abs().max().item() for v in state["encoder"].values()) < 10
    # What the message advises works: the run continues to its end with a sane lr.
    result = train(load_config("tiny_cpu", [*overrides, "optim.lr=1e-4", "resume=true"]))
    assert result.steps_done == 4 and result.final_loss < 10


def diverged_run(micro_overrides, monkeypatch, *extra: str) -> list[str]:
    """A run with optim.lr=1e6 whose latest checkpoint (step 2) holds finite weights of ~5e5,
    as checkpoints were written before saves checked the scale; returns its overrides."""
    from train import loop

    overrides = micro_overrides("steps=4", "checkpoint_every=1", *extra)
    monkeypatch.setattr(loop, "DIVERGED_FACTOR", float("inf"))
    cfg = load_config("tiny_cpu", [*overrides, "optim.lr=1e6"])
    with pytest.raises(NonFiniteLossError, match="non-finite at step 3"):
        train(cfg)
    assert load_checkpoint(cfg.out)["step"] == 2
    return overrides


def test_a_resume_that_fails_at_once_says_the_checkpoint_diverged_and_names_a_kept_copy(
    micro_overrides, monkeypatch
):
    # keep_every=1: step_0000001.pt is a sound copy from before the divergence. The bound stays
    # off for the resume too: a checkpoint that diverged below it must get the same advice.
    overrides = diverged_run(micro_overrides, monkeypatch, "keep_every=1")
    with pytest.raises(NonFiniteLossError) as err:
        train(load_config("tiny_cpu", [*overrides, "optim.lr=1e-4", "resume=true"]))
    message = str(err.value)
    assert "Continue from it" not in message
    assert "the first step after the checkpoint of step 2 this run resumed from" in message
    assert re.search(
        r"its weights have already diverged \(max \|w\| \d\.\d+e\+05 in the encoder \(1 at", message
    )
    assert "Resuming from it cannot help" in message
    assert "Go back to the kept copy step_0000001.pt (step 1)" in message
    assert "copy it over" in message and "start a new run (another out=)" in message
    # What the message advises works.
    folder = Path(load_config("tiny_cpu", overrides).out) / "checkpoints"
    (folder / "latest.pt").write_bytes((folder / "step_0000001.pt").read_bytes())
    result = train(load_config("tiny_cpu", [*overrides, "optim.lr=1e-4", "resume=true"]))
    assert result.steps_done == 4 and result.final_loss < 10


def test_resuming_a_checkpoint_with_runaway_weights_is_refused_up_front(
    micro_overrides, monkeypatch, capsys
):
    from train.__main__ import main

    overrides = diverged_run(micro_overrides, monkeypatch)  # no kept copies
    monkeypatch.undo()  # the bound on: the checkpoint of step 2 is past it
    assert main(["tiny_cpu", *overrides, "optim.lr=1e-4", "resume=true"]) == 1
    err = capsys.readouterr().err
    assert "the checkpoint of step 2" in err and "holds weights that ran away (max |w| " in err
    assert "no earlier kept copy (checkpoints/step_N.pt, see keep_every) is sound" in err
    assert "start a new run (another out=)" in err
    assert "Continue from it" not in err and "Traceback" not in err


def test_non_finite_tensors_names_what_is_bad():
    tree = {"a": torch.ones(2), "b": [torch.tensor([1.0, float("inf")]), torch.arange(3)]}
    assert non_finite_tensors(tree) == ["b.0"]


# ---------------------------------------------------------------------------------------------
# 12. Bad settings: exit 2 and a message, before any step.

BAD_SETTINGS = [
    (["model.patch_size=0"], "model.patch_size=0 must be at least 1"),
    (["model.tubelet_size=0"], "model.tubelet_size=0 must be at least 1"),
    (["model.img_size=0"], "model.img_size=0 must be at least 1"),
    (["model.img_size=-32"], "model.img_size=-32 must be at least 1"),
    (["model.img_size=8"], "draws clips of at least 16 px"),
    (["model.embed_dim=100"], "needs a width divisible by 8, got 100"),
    (["model.embed_dim=34", "model.num_heads=4"], "model.embed_dim=34 must be a multiple of"),
    (["model.num_frames=0"], "model.num_frames=0 must be at least 1"),
    (["optim.betas=[2,3]"], "optim.betas=[2.0, 3.0]: each must lie in [0, 1)"),
    (["data.num_workers=-1"], "data.num_workers=-1 must be at least 0"),
    (["monitor.rankme_clips=0"], "monitor.rankme_clips=0 must be at least 1"),
    (["data.source=videos", "data.path=/nonexistent"], "/nonexistent does not exist"),
    (["optim.lr=nan"], "optim.lr=nan must be a finite number"),
    (["optim.lr=inf"], "optim.lr=inf must be a finite number"),
    (["optim.lr=-1"], "optim.lr=-1.0 must be at least 0"),
    (["data.batch_size=100000000"], "Lower data.batch_size, or set data.micro_batch_size"),
    # A 0 is a value given, not an unset one: named as given, never the size's default.
    (["model.embed_dim=0"], "model.embed_dim=0 must be at least 1"),
    (["model.num_heads=0"], "model.num_heads=0 must be at least 1"),
    (["model.depth=0"], "model.depth=0 must be at least 1"),
    (["model.pred_embed_dim=0"], "model.pred_embed_dim=0 must be at least 1"),
    (["model.pred_depth=0"], "model.pred_depth=0 must be at least 1"),
    (["model.pred_num_heads=0"], "model.pred_num_heads=0 must be at least 1"),
    (["model.pred_num_heads=-2"], "model.pred_num_heads=-2 must be at least 1"),
    (["data.clips_per_video=0"], "data.clips_per_video=0 must be at least 1"),
]


@pytest.mark.parametrize(("settings", "message"), BAD_SETTINGS, ids=lambda v: str(v))
def test_bad_settings_exit_2_with_a_message(micro_overrides, capsys, settings, message):
    from train.__main__ import main

    assert main(["tiny_cpu", *micro_overrides("steps=2", *settings)]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# ---------------------------------------------------------------------------------------------
# 10. A moved run resumes.


def test_a_moved_run_resumes_under_any_spelling_of_its_folder(
    micro_overrides, tmp_path, monkeypatch
):
    train(load_config("tiny_cpu", micro_overrides("steps=2", run="run")))
    (tmp_path / "run").rename(tmp_path / "moved")
    monkeypatch.chdir(tmp_path)
    latest = tmp_path / "moved" / "checkpoints" / "latest.pt"
    saved = latest.stat().st_mtime_ns
    for out in ("moved/", "./moved/../moved", str(tmp_path / "moved")):
        overrides = [*micro_overrides("steps=2"), f"out={out}", "resume=true"]
        result = train(load_config("tiny_cpu", overrides))  # finished: resumed, nothing to do
        assert result.steps_done == 2 and Path(result.run_dir).resolve() == tmp_path / "moved"
    assert latest.stat().st_mtime_ns == saved  # resumed, not started again


# ---------------------------------------------------------------------------------------------
# 9. A corrupt latest.pt: kept copies are real copies, resume falls back to the newest loadable.


def test_kept_copies_are_independent_files(tmp_path):
    save_checkpoint(tmp_path, {"step": 5, "w": torch.ones(2)}, keep_copy=True)
    latest, kept = tmp_path / "latest.pt", tmp_path / "step_0000005.pt"
    assert latest.stat().st_ino != kept.stat().st_ino and kept.stat().st_nlink == 1
    latest.write_bytes(latest.read_bytes()[:100])
    assert load_checkpoint(kept)["w"].tolist() == [1.0, 1.0]


def test_a_corrupt_latest_falls_back_to_the_newest_loadable_copy(micro_overrides, caplog):
    overrides = micro_overrides("steps=4", "checkpoint_every=1", "keep_every=2")
    cfg = load_config("tiny_cpu", overrides)
    train(cfg)
    folder = Path(cfg.out) / "checkpoints"
    for name in ("latest.pt", "step_0000004.pt"):
        (folder / name).write_bytes((folder / name).read_bytes()[:200])
    with caplog.at_level("WARNING", logger="train"):
        result = train(load_config("tiny_cpu", [*overrides, "resume=true"]))
    assert result.steps_done == 4
    assert "resuming from the newest loadable copy, step_0000002.pt (step 2)" in caplog.text
    assert load_checkpoint(folder / "latest.pt")["step"] == 4


def test_no_loadable_checkpoint_is_a_message_without_unsafe_advice(micro_overrides, capsys):
    from train.__main__ import main

    overrides = micro_overrides("steps=2", "checkpoint_every=1")
    assert main(["tiny_cpu", *overrides]) == 0
    latest = Path(load_config("tiny_cpu", overrides).out) / "checkpoints" / "latest.pt"
    latest.write_bytes(latest.read_bytes()[:200])
    assert main(["tiny_cpu", *overrides, "resume=true"]) == 1
    err = capsys.readouterr().err
    assert "truncated or damaged" in err and "no kept copy" in err and "Traceback" not in err
    assert "weights_only" not in err


class Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


def test_pickled_code_is_refused_without_advising_weights_only_false(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"encoder": Payload()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert "pickled code" in str(err.value) and "weights_only" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# 11. A full disk during a save: a message, the previous checkpoint intact.


def test_a_full_disk_is_a_message_and_the_previous_checkpoint_stays(
    micro_overrides, monkeypatch, capsys
):
    import errno

    from train.__main__ import main

    real_save, calls = torch.save, {"n": 0}

    def save_until_the_disk_fills(obj, f):
        calls["n"] += 1
        if calls["n"] == 3:
            f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    overrides = micro_overrides("steps=4", "checkpoint_every=1")
    assert main(["tiny_cpu", *overrides]) == 1
    err = capsys.readouterr().err
    assert "disk full while writing the checkpoint of step 3" in err
    assert "the previous checkpoint (step 2) is intact" in err and "Traceback" not in err
    monkeypatch.undo()
    folder = Path(load_config("tiny_cpu", overrides).out) / "checkpoints"
    assert load_checkpoint(folder / "latest.pt")["step"] == 2
    assert [p.name for p in folder.iterdir()] == ["latest.pt"]


# ---------------------------------------------------------------------------------------------
# 8. One process at a time in a run folder; a killed holder does not block a resume.

HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, str(os.getpid()).encode())
print("locked", flush=True)
time.sleep(120)
"""


def test_a_run_folder_in_use_is_refused_and_a_killed_holders_lock_is_not(micro_overrides):
    import subprocess
    import sys

    from train.config import ConfigError

    cfg = load_config("tiny_cpu", micro_overrides("steps=2"))
    Path(cfg.out).mkdir(parents=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(Path(cfg.out) / ".lock")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ConfigError, match=f"in use by another run \\(process {holder.pid}\\)"):
            train(cfg)
        assert not (Path(cfg.out) / "metrics.jsonl").exists()
    finally:
        holder.kill()  # as kill -9 would: the lock file stays behind
        holder.wait()
    assert (Path(cfg.out) / ".lock").exists()
    assert train(cfg).steps_done == 2


# ---------------------------------------------------------------------------------------------
# 5. High-bit-depth images are scaled, not clipped.


def test_sixteen_bit_pngs_are_scaled_not_clipped(tmp_path):
    import numpy as np
    from PIL import Image

    from train.data.images import load_image

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    half = np.full((32, 32), 32768, np.uint16)
    Image.fromarray(half).save(tmp_path / "half.png")
    ramp_clip = load_image(tmp_path / "deep.png", short_side=64)
    assert ramp_clip.dtype == torch.uint8 and ramp_clip.shape == (3, 1, 64, 64)
    assert ramp_clip.float().mean().item() == pytest.approx(127.5, abs=1.0)  # was 254.5
    assert load_image(tmp_path / "half.png", 32).unique().tolist() == [128]
    Image.fromarray(np.full((8, 8), 200, np.int32)).save(tmp_path / "plain.tif")
    assert load_image(tmp_path / "plain.tif", 8).unique().tolist() == [200]


# ---------------------------------------------------------------------------------------------
# 14. Item counts summed across ranks are rounded, not truncated.


def test_item_counts_across_ranks_are_not_truncated(monkeypatch):
    from types import SimpleNamespace

    from train import distributed

    # Three ranks: the all-reduced mean of 1 skipped item comes back as 1/3, in floating point.
    monkeypatch.setattr(distributed, "mean_across", lambda t, dist: t / 3 * (1 - 1e-15))
    fake = SimpleNamespace(
        dist=SimpleNamespace(world_size=3),
        data_counts={"skipped": 0, "delivered": 0},
        cfg=SimpleNamespace(data=SimpleNamespace(max_bad_fraction=1.0)),
    )
    Trainer.check_bad_data(fake, 1, 8, ["skipped a.mp4: damaged"])
    assert fake.data_counts == {"skipped": 1, "delivered": 7}


def test_a_draw_that_passes_adjacent_bad_files_counts_once(monkeypatch):
    from types import SimpleNamespace

    from train.batches import BatchPlan, StepBatches
    from train.config import MaskConfig
    from train.masks import build_masker

    class Data:
        """Items 2 and 3 are broken: a draw of 2 passes both and delivers 4."""

        def __len__(self):
            return 8

        def __getitem__(self, draw):
            index = draw.index
            clip = torch.zeros(3, 4, 32, 32, dtype=torch.uint8)
            if index == 2:
                return {"clip": clip, "skipped": ["skipped 2: broken", "skipped 3: broken"]}
            if index == 3:
                return {"clip": clip, "skipped": ["skipped 3: broken"]}
            return {"clip": clip}

    plan = BatchPlan.create(8, 8, None, 1, 0, seed=0)
    batch = StepBatches(Data(), plan, build_masker(MaskConfig(), (2, 4, 4), 2), (3, 4, 32, 32))[
        0, 0
    ]
    assert len(batch.skipped) == 3 and batch.bad_draws == 2
    fake = SimpleNamespace(
        dist=SimpleNamespace(world_size=1, enabled=False),
        data_counts={"skipped": 0, "delivered": 0},
        cfg=SimpleNamespace(data=SimpleNamespace(max_bad_fraction=1.0)),
    )
    monkeypatch.setattr("train.distributed.mean_across", lambda t, dist: t)
    Trainer.check_bad_data(fake, batch.bad_draws, 8, batch.skipped)
    # 2 of 8 draws hit a broken item (25%, the share of broken items), not 3 of 9.
    assert fake.data_counts == {"skipped": 2, "delivered": 6}


# ---------------------------------------------------------------------------------------------
# 6. Names with a media suffix that are no files are ignored with one warning.


def test_folders_and_link_loops_named_like_videos_warn_once(tmp_path):
    import warnings

    from train.data.files import SkippedFileWarning, list_media

    (tmp_path / "x.mp4").mkdir()
    (tmp_path / "loop1.mp4").symlink_to(tmp_path / "loop2.mp4")
    (tmp_path / "loop2.mp4").symlink_to(tmp_path / "loop1.mp4")
    (tmp_path / "ok.mp4").write_bytes(b"")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert list_media(tmp_path, (".mp4",)) == [tmp_path / "ok.mp4"]
        assert list_media(tmp_path, (".mp4",)) == [tmp_path / "ok.mp4"]
    messages = [str(w.message) for w in caught if issubclass(w.category, SkippedFileWarning)]
    assert len(messages) == 1
    assert "ignored 3 entries" in messages[0] and "x.mp4 (a folder)" in messages[0]
    assert "loop1.mp4 (a link loop or a broken link)" in messages[0]


def test_a_checkpoint_from_before_new_config_keys_still_resumes(micro_overrides):
    from train.config import to_dict
    from train.runtime import check_resumable

    cfg = load_config("tiny_cpu", micro_overrides())
    saved = to_dict(cfg)
    # Keys added after the checkpoint was written: absent from its config.
    del saved["mask"]["future_sets"], saved["sigreg"], saved["feature_loss"]
    del saved["context_loss"]
    del saved["model"]["positions"]
    assert check_resumable(saved, cfg) == []
    changed = to_dict(cfg)
    changed["mask"]["future_sets"] = 1
    with pytest.raises(ConfigError, match="mask.future_sets"):
        check_resumable(changed, cfg)


FORK_THEN_DIE = """
import os, signal, sys, time
from pathlib import Path
from train.run_dir import RunLock
lock = RunLock(Path(sys.argv[1])).__enter__()
ready_read, ready_write = os.pipe()
if os.fork() == 0:  # a child that outlives its parent, as a DataLoader worker may for a moment
    os.write(ready_write, b"1")  # the fork hooks have run by now: only then is the test fair
    time.sleep(60)
    os._exit(0)
os.read(ready_read, 1)  # a loaded machine may not have scheduled the child yet
print("forked", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_child_that_outlives_its_killed_parent_does_not_hold_the_run(tmp_path):
    import subprocess
    import sys

    from train.run_dir import RunLock

    parent = subprocess.Popen(
        [sys.executable, "-c", FORK_THEN_DIE, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    assert parent.stdout.readline().strip() == "forked"
    parent.wait()
    try:
        with RunLock(tmp_path):  # refused before the fix: the child kept the flock alive
            pass
    finally:
        subprocess.run(["pkill", "-f", "outlives its parent"], check=False)
