"""python -m train.eval RUN_DIR [key=value ...]

Frozen evaluation of a run's checkpoint (RUN_DIR, or a checkpoint file): token features of
labelled clips from the target encoder (encoder=encoder or encoder=random_init to compare),
cached in RUN_DIR/eval/; attentive, linear and k-NN probes per label, label fraction and seed;
a table on stdout and a JSON file (RUN_DIR/eval/results-<encoder>.json, or out=PATH).
blocks=K probes the features after the encoder's first K blocks instead (where in depth a label
becomes readable; results-<encoder>-blocksK.json).

Keys (see train/eval/config.py): encoder, blocks, labels=[shape,direction,speed], seeds=[0,1,2],
fractions=[0.05,0.1,0.5,1.0], probe.kinds=[attentive,linear,knn], probe.attentive.steps,
probe.attentive_heads, data.train_clips, data.val_clips, data.max_objects (1 by default: the
labels describe one object), data.source=videos with data.train_list=LIST
[data.val_list=LIST], device, precision, cache, out.

Cost: one attentive fit (all labels together) per fraction and seed, 1000 steps each: about
12 fits for the defaults, a few minutes for the tiny preset on a 2-core CPU. For a quick look:
fractions=[1.0] seeds=[0].
"""

from __future__ import annotations

import sys

from train.checkpoint import CheckpointError
from train.cli import error_exit_code, setup_logging, usage_exit_code
from train.config import ConfigError
from train.eval.config import load_eval_config
from train.eval.evaluation import evaluate
from train.eval.labelled import EvalDataError
from train.eval.source import RunNotFoundError

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := usage_exit_code(argv, USAGE)) is not None:
        return code
    setup_logging()
    try:
        cfg = load_eval_config(argv[1:])
        report = evaluate(argv[0], cfg)
    except (
        ConfigError,
        RunNotFoundError,
        CheckpointError,
        EvalDataError,
        FileNotFoundError,
    ) as err:
        return error_exit_code(err, (ConfigError,))
    print(report.table())
    return 0


if __name__ == "__main__":
    sys.exit(main())
