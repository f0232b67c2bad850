"""benchmarks/replicate_paper.py end to end, run as its users run it, at micro scale.

The section writer it shares with the other benchmarks is tested in tests/test_doc_sections.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import MICRO, REPO


@pytest.mark.slow
def test_micro_replication_writes_every_table(tmp_path):
    train_overrides = [o for o in MICRO if not o.startswith("monitor.")]
    args = ["--out", str(tmp_path / "runs"), "--doc", str(tmp_path / "results.md")]
    args += ["--steps", "2", "--seeds", "0", "--variants", "vjepa", "pixels", "causal"]
    for override in [*train_overrides, "mask.causal_context_frames=2"]:
        args += ["--train-override", override]
    for override in ["data.train_clips=24", "data.val_clips=12", "probe.attentive.steps=5"]:
        args += ["--eval-override", override]
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "replicate_paper.py"), *args],
        cwd=tmp_path,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("# Results\n\n<!-- pretraining-ablations:start -->\n## Pretraining")
    assert text.endswith("<!-- pretraining-ablations:end -->\n")
    assert "features vs pixels vs nothing (Table 1)" in text and "(Table 4)" in text
    for row in ("| V-JEPA: features", "| pixels (VideoMAE", "| no pretraining", "| chance"):
        assert row in text
    assert "|  | linear, time × 2 × 2 grid |" in text
    assert "attentive: V-JEPA minus the untrained encoder on direction = " in text
    summary = json.loads((tmp_path / "runs" / "replication.json").read_text())
    assert set(summary["runs"]) == {"vjepa", "pixels", "causal", "random_init"}
