"""`compile: true` falls back to eager, with one warning, when compiling fails."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from train.compiled import CompiledOrEager
from train.config import load_config
from train.loop import train
from train.monitor import read_metrics


def failing_backend(graph_module, example_inputs):
    raise RuntimeError("no C++ compiler here (test backend)")


def test_a_failing_backend_falls_back_to_eager_with_one_warning(monkeypatch, caplog):
    real_compile = torch.compile
    monkeypatch.setattr(
        torch, "compile", lambda module: real_compile(module, backend=failing_backend)
    )
    torch._dynamo.reset()
    layer = nn.Linear(4, 3)
    guarded = CompiledOrEager(layer, "layer")
    x = torch.randn(2, 4)
    with caplog.at_level(logging.WARNING, logger="train"):
        out = guarded(x)
        again = guarded(torch.randn(5, 4))  # a new shape would recompile: eager now
    assert torch.equal(out, layer(x)) and again.shape == (5, 3)
    assert not guarded.is_compiled
    warnings = [r for r in caplog.records if "compiling the layer failed" in r.getMessage()]
    assert len(warnings) == 1 and "no C++ compiler here" in warnings[0].getMessage()
    torch._dynamo.reset()


def test_errors_of_the_model_itself_still_raise(monkeypatch):
    monkeypatch.setattr(torch, "compile", lambda module: module)  # "compiled" = eager
    guarded = CompiledOrEager(nn.Linear(4, 3), "layer")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        guarded(torch.randn(2, 5))


def test_attributes_are_the_eager_modules():
    layer = nn.Linear(4, 3)
    guarded = CompiledOrEager(layer, "layer")
    guarded.eval()
    assert not layer.training
    assert not hasattr(guarded, "no_sync")  # step.py asks: only DDP has it


def test_training_continues_eagerly_when_compile_refuses(micro_overrides, monkeypatch, caplog):
    def refuse(module):
        raise RuntimeError("torch.compile is not supported here (test)")

    monkeypatch.setattr(torch, "compile", refuse)
    cfg = load_config("tiny_cpu", micro_overrides("steps=2", "compile=true"))
    with caplog.at_level(logging.WARNING, logger="train"):
        records = read_metrics(train(cfg).run_dir / "metrics.jsonl")
    assert records and all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
    reasons = [r.getMessage() for r in caplog.records if "compile=true" in r.getMessage()]
    assert len(reasons) == 2  # the model and the target encoder, once each
