"""python -m decoder RUN_OR_CHECKPOINT [DECODER_CONFIG.yaml] [key=value ...]

Fits the pixel decoder on a frozen V-JEPA run (a run directory or a checkpoint file of
`python -m train`). Keys are those of decoder/config.py, e.g.
    python -m decoder runs/tiny_cpu steps=600 out=runs/tiny_cpu_decoder
    python -m decoder runs/tiny_cpu latents=target out=runs/tiny_cpu_decoder_upper_bound
The fit directory gets config.yaml, metrics.jsonl, checkpoints/ and bundle.safetensors.
"""

from __future__ import annotations

import json
import sys

from decoder.config import load_decoder_config
from decoder.fit import fit_decoder, load_source
from train.checkpoint import CheckpointError
from train.cli import setup_logging, usage_exit_code
from train.config import ConfigError
from train.runtime import TrainingError

USAGE = __doc__


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if (code := usage_exit_code(argv, USAGE)) is not None:
        return code
    setup_logging()
    source, rest = argv[0], argv[1:]
    preset = rest.pop(0) if rest and "=" not in rest[0] else None
    try:
        cfg = load_decoder_config(preset, rest)
        pretrained, provenance = load_source(source)
        result = fit_decoder(pretrained, cfg, provenance)
    except (ConfigError, CheckpointError, TrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    summary = {
        "run_dir": str(result.run_dir),
        "steps_done": result.steps_done,
        "final_loss": result.final_loss,
        "held_out_psnr": {k: round(v["psnr"], 2) for k, v in result.held_out.items()},
        "stopped_early": result.stopped_early,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
