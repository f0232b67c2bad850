"""benchmarks/replicate_paper.py: its section of docs/results.md, and a micro end-to-end run."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from conftest import MICRO, REPO

spec = importlib.util.spec_from_file_location(
    "replicate_paper", REPO / "benchmarks" / "replicate_paper.py"
)
replicate = importlib.util.module_from_spec(spec)
sys.modules["replicate_paper"] = replicate  # dataclasses look their module up there
spec.loader.exec_module(replicate)

SECTION = f"{replicate.START}\nnew numbers\n{replicate.END}"


def test_section_is_created_with_the_file(tmp_path):
    doc = tmp_path / "docs" / "results.md"
    replicate.replace_section(doc, SECTION)
    assert doc.read_text() == f"# Results\n\n{SECTION}\n"


def test_only_the_section_between_the_markers_is_replaced(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text(
        f"# Results\n\n## Throughput\nkeep me\n\n{replicate.START}\nold numbers\n"
        f"{replicate.END}\n\n## Decoder\nkeep me too\n"
    )
    replicate.replace_section(doc, SECTION)
    text = doc.read_text()
    assert "old numbers" not in text and text.count("new numbers") == 1
    assert text.startswith("# Results\n\n## Throughput\nkeep me\n\n")
    assert text.endswith(f"{replicate.END}\n\n## Decoder\nkeep me too\n")


def test_a_file_without_markers_gets_the_section_appended(tmp_path):
    doc = tmp_path / "results.md"
    doc.write_text("# Results\n\n## Decoder\nkeep me\n")
    replicate.replace_section(doc, SECTION)
    assert doc.read_text() == f"# Results\n\n## Decoder\nkeep me\n\n{SECTION}\n"


@pytest.mark.slow
def test_micro_replication_writes_every_table(tmp_path):
    train_overrides = [o for o in MICRO if not o.startswith("monitor.")]
    args = ["--out", str(tmp_path / "runs"), "--doc", str(tmp_path / "results.md")]
    args += ["--steps", "2", "--seeds", "0", "--variants", "vjepa", "pixels", "causal"]
    for override in [*train_overrides, "mask.causal_context_frames=2"]:
        args += ["--train-override", override]
    for override in ["data.train_clips=24", "data.val_clips=12", "probe.attentive.steps=5"]:
        args += ["--eval-override", override]
    assert replicate.main(args) == 0
    text = (tmp_path / "results.md").read_text()
    assert "features vs pixels vs nothing (Table 1)" in text and "(Table 4)" in text
    for row in ("| V-JEPA: features", "| pixels (VideoMAE", "| no pretraining", "| chance"):
        assert row in text
    assert "|  | linear, time × 2 × 2 grid |" in text
    assert "attentive: V-JEPA minus the untrained encoder on direction = " in text
    summary = json.loads((tmp_path / "runs" / "replication.json").read_text())
    assert set(summary["runs"]) == {"vjepa", "pixels", "causal", "random_init"}
