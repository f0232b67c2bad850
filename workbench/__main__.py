"""python -m workbench [--host 127.0.0.1] [--port 7860] [--bundle FILE] [--runs-dir runs]

Serves the workbench on localhost by default: pass --host 0.0.0.0 only to let other machines
reach it (anyone who can reach the port can then use the app and start trainings).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from train.cli import setup_logging
from workbench.paths import use_numba_cache


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workbench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to serve on (default: localhost only)"
    )
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    parser.add_argument(
        "--bundle", type=Path, default=None, help="a model bundle to use first (.safetensors)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the app's own work (default 1: fastest for small models)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="where trainings go and bundles are found (default runs/)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    use_numba_cache()  # before anything imports numba

    from train.checkpoint import CheckpointError
    from workbench.app import build_app, configure_torch, launch, start_background_work
    from workbench.context import AppContext

    log = logging.getLogger("workbench")
    try:
        ctx = AppContext.create(args.runs_dir, args.bundle)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    default = ctx.registry.default_key()
    if default is None:
        log.warning(
            "no model bundle found: build the starter with `make starter`, or train one in "
            "the Train tab (the other tabs need a model)"
        )
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "serving on %s: other machines can reach this app and start trainings", args.host
        )
    configure_torch(args.threads)
    demo = build_app(ctx)
    launch(demo, host=args.host, port=args.port, prevent_thread_lock=True)
    # The page answers already; now open the model it uses first (a second on a busy laptop),
    # so that a bundle that cannot be opened stops the app with the reason.
    try:
        if default is not None:
            ctx.registry.load(default)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        demo.close()
        return 2
    # Only now, with the start-up imports done: see embed.UmapWarmUp.start.
    start_background_work(ctx)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
