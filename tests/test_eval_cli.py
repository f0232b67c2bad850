"""`python -m train.eval` on a micro run: the table, the JSON file, the cache, the errors."""

from __future__ import annotations

import json

import pytest
import torch

from train.config import load_config
from train.eval import probe_report
from train.eval.__main__ import main
from train.eval.config import load_eval_config
from train.eval.evaluation import evaluate
from train.eval.source import first_blocks, initial_encoder
from train.loop import Trainer, train
from train.pretrained import load_pretrained

SMALL_EVAL = [
    "data.train_clips=48",
    "data.val_clips=24",
    "probe.attentive.steps=20",
    "probe.linear.steps=20",
    "seeds=[0,1]",
    "fractions=[0.5,1.0]",
]


@pytest.fixture
def micro_run(micro_overrides):
    return train(load_config("tiny_cpu", micro_overrides("steps=2"))).run_dir


def test_cli_prints_the_table_and_writes_json(micro_run, capsys):
    assert main([str(micro_run), *SMALL_EVAL, "labels=[shape,direction]"]) == 0
    table = capsys.readouterr().out
    assert "step 2" in table and "encoder=target_encoder" in table
    assert "50% labels" in table and "100% labels" in table
    for row in ("shape      attentive", "direction  linear", "direction  grid_linear"):
        assert row in table
    result = json.loads((micro_run / "eval" / "results-target_encoder.json").read_text())
    assert result["step"] == 2 and result["data"]["train_clips"] == 48
    assert len(result["results"]) == 2 * 4 * 2  # labels x probes x fractions
    for entry in result["results"]:
        assert len(entry["accuracies"]) == 2 and 0.0 <= entry["mean"] <= 1.0
        assert entry["train_clips"] == (48 if entry["fraction"] == 1.0 else 24)
    assert result["chance"]["direction"] < 0.5
    assert len(list((micro_run / "eval").glob("features-*.pt"))) == 1


def test_features_are_cached_and_invalidated(micro_run, micro_overrides, monkeypatch):
    cfg = load_eval_config([*SMALL_EVAL, "probe.kinds=[knn]", "labels=[speed]"])
    first = evaluate(micro_run, cfg)
    calls = []
    import train.eval.evaluation as evaluation

    real_extract = evaluation.extract
    monkeypatch.setattr(
        evaluation, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k)
    )
    again = evaluate(micro_run, cfg)
    assert calls == []  # served from the cache
    assert again.to_json()["results"] == first.to_json()["results"]
    evaluate(micro_run, load_eval_config([*SMALL_EVAL, "probe.kinds=[knn]", "data.val_clips=20"]))
    assert calls == [1, 1]  # other data: extracted again (train and val)
    # A new run in the same directory replaces the checkpoint: the old features no longer fit.
    (micro_run / "checkpoints" / "latest.pt").unlink()
    train(load_config("tiny_cpu", micro_overrides("steps=3")))
    calls.clear()
    assert evaluate(micro_run, cfg).step == 3
    assert calls == [1, 1]


def test_a_truncated_feature_cache_is_a_miss_and_is_rebuilt(micro_run, caplog):
    cfg = load_eval_config([*SMALL_EVAL, "probe.kinds=[knn]", "labels=[speed]"])
    first = evaluate(micro_run, cfg)
    (cache,) = (micro_run / "eval").glob("features-*.pt")
    cache.write_bytes(cache.read_bytes()[:100])  # a kill or a full disk mid-write
    again = evaluate(micro_run, cfg)
    assert again.to_json()["results"] == first.to_json()["results"]
    assert f"feature cache {cache.name} cannot be read" in caplog.text
    assert len(cache.read_bytes()) > 100  # rebuilt in place
    assert evaluate(micro_run, cfg).to_json()["results"] == first.to_json()["results"]


def test_random_init_is_the_runs_initial_encoder(micro_overrides):
    cfg = load_config("tiny_cpu", micro_overrides("seed=7"))
    before = torch.get_rng_state()
    rebuilt = initial_encoder(cfg)
    assert torch.equal(torch.get_rng_state(), before)  # the caller's random state is untouched
    trainer = Trainer(cfg)
    for name, value in trainer.encoder.state_dict().items():
        assert torch.equal(rebuilt.state_dict()[name], value), name


def test_encoders_differ_and_are_reported(micro_run):
    cfg = [*SMALL_EVAL, "probe.kinds=[knn]", "labels=[shape]", "cache=false"]
    reports = {
        which: evaluate(micro_run, load_eval_config([*cfg, f"encoder={which}"]), write=False)
        for which in ("target_encoder", "encoder", "random_init")
    }
    assert reports["random_init"].step == 0 and reports["encoder"].step == 2
    assert not (micro_run / "eval").exists()  # cache=false and write=False leave no files
    pretrained = load_pretrained(micro_run)
    assert not torch.equal(
        pretrained.encoder.blocks[0].attn.qkv.weight,
        pretrained.target_encoder.blocks[0].attn.qkv.weight,
    )


def test_errors_name_the_problem(micro_run, tmp_path, capsys):
    assert main([str(tmp_path / "nowhere")]) == 1
    assert "no run directory or checkpoint file" in capsys.readouterr().err
    assert main([str(tmp_path)]) == 1
    assert "holds no checkpoints/latest.pt" in capsys.readouterr().err
    assert main([str(micro_run), "probe.kinds=[svm]"]) == 2
    assert "allowed values" in capsys.readouterr().err
    assert main([str(micro_run), "fractions=[0.0]"]) == 2
    assert "fractions" in capsys.readouterr().err
    assert main([str(micro_run), *SMALL_EVAL, "labels=[colour]", "probe.kinds=[knn]"]) == 1
    assert "labels ['colour'] are not in the data" in capsys.readouterr().err
    unlabelled = tmp_path / "videos.txt"
    unlabelled.write_text("a.mp4\n")
    assert main([str(micro_run), "data.source=videos"]) == 2
    assert "data.train_list" in capsys.readouterr().err


def test_probe_report_for_provenance(micro_run):
    pretrained = load_pretrained(micro_run)
    before = torch.get_rng_state()
    report = probe_report(
        pretrained, labels=("shape", "direction"), num_clips=36, seeds=(0, 1), probe_steps=20
    )
    assert torch.equal(torch.get_rng_state(), before)
    assert report["probe"] == "attentive" and report["encoder"] == "target_encoder"
    assert report["probe_settings"]["attentive"]["steps"] == 20
    assert (report["step"], report["train_clips"], report["val_clips"]) == (2, 24, 12)
    assert set(report["accuracy"]) == {"shape", "direction"}
    for label, entry in report["accuracy"].items():
        assert len(entry["per_seed"]) == 2
        assert entry["mean"] == pytest.approx(sum(entry["per_seed"]) / 2)
        assert 0.0 <= report["chance"][label] <= 1.0
    json.dumps(report)  # plain data, ready for a provenance file
    assert not (micro_run / "eval").exists()  # reads nothing from and writes nothing to the run


def test_probing_after_the_first_blocks(micro_run, capsys):
    encoder = load_pretrained(micro_run).target_encoder
    clip = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        whole, first = encoder(clip), first_blocks(encoder, 1)(clip)
        assert torch.equal(first_blocks(encoder, 2)(clip), whole)  # the micro encoder: 2 blocks
    assert len(encoder.blocks) == 2 and first.shape == whole.shape
    assert not torch.allclose(first, whole, atol=1e-3)
    args = [str(micro_run), *SMALL_EVAL, "probe.kinds=[knn]", "labels=[shape]", "blocks=1"]
    assert main(args) == 0
    assert "encoder=target_encoder  after block 1" in capsys.readouterr().out
    result = json.loads((micro_run / "eval" / "results-target_encoder-blocks1.json").read_text())
    assert result["settings"]["blocks"] == 1
    assert main([*args[:-1], "blocks=3"]) == 2
    assert "this encoder has 2 blocks; choose 1 to 2" in capsys.readouterr().err
    assert main([*args[:-1], "blocks=0"]) == 2
    assert "must be at least 1" in capsys.readouterr().err


def test_blocks_refuses_an_encoder_with_hierarchical_levels(micro_overrides):
    from train.pretrained import build_models

    cfg = load_config("tiny_cpu", micro_overrides("model.hierarchical_levels=2"))
    with pytest.raises(ValueError, match="hierarchical levels at fixed depths"):
        first_blocks(build_models(cfg).target_encoder, 1)
