"""Frozen evaluation: features of labelled clips from a checkpoint, read by probes.

    python -m train.eval RUN_DIR [key=value ...]     # table on stdout, JSON in RUN_DIR/eval/

Programmatic use: `evaluate(path, load_eval_config([...]))` returns an `EvalReport`;
`probe_report(pretrained)` gives attentive-probe accuracy per label for provenance records;
`OnlineProbe` (train/eval/online.py) is the live monitor the trainer calls.
"""

from train.eval.config import EvalConfig, load_eval_config
from train.eval.evaluation import EvalReport, evaluate
from train.eval.provenance_probe import probe_report

__all__ = ["EvalConfig", "EvalReport", "evaluate", "load_eval_config", "probe_report"]
