"""python -m train CONFIG [key=value ...]

CONFIG is a YAML file or a preset name from train/configs (tiny_cpu, vits16, vitl16,
ijepa_vits16). Overrides use dotted keys: optim.lr=1e-3 data.batch_size=16 steps=200 out=runs/x.
Under torchrun, every process runs this same command.
"""

from __future__ import annotations

import os
import sys

from train.cli import error_exit_code, setup_logging, usage_exit_code
from train.config import ConfigError, load_config
from train.data import DataError
from train.loop import run_summary, train
from train.runtime import TrainingError

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := usage_exit_code(argv, USAGE)) is not None:
        return code
    setup_logging()
    try:
        cfg = load_config(argv[0], argv[1:])
        result = train(cfg)
    except (ConfigError, DataError, TrainingError) as err:
        return error_exit_code(err, (ConfigError, DataError))
    if os.environ.get("RANK", "0") == "0":
        print(run_summary(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
