"""python -m workbench [--host 127.0.0.1] [--port 7860] [--model PATH] [--runs-dir runs]
                     [--data-dir FOLDER ...] [--auth-file FILE] [--threads N]
                     [--weights fp32|bf16] [--frames N] [--img-size S]

--model PATH opens any model first: a run directory (a training, or a released checkpoint
imported with `python -m train.released`), a checkpoint file, or a bundle. A model without a
pixel decoder works in every tab; Predict then shows the predicted latents in PCA colours.

Big models on a CPU (docs/training.md has the measured time and memory of a ViT-L): --weights
bf16 opens the --model model with bf16 weights (half the memory, faster on CPUs with bf16
matrix units, outputs within the stated tolerance of fp32); --frames N and --img-size S give it
a smaller clip (multiples of its tubelet depth and patch size; a model without a decoder).

Serves the workbench on localhost by default: pass --host 0.0.0.0 only to let other machines
reach it (anyone who can reach the port can then use the app and start trainings; add a login
with --auth-file). The Embeddings tab maps videos only from the folders named with --data-dir
(none by default).
"""

from __future__ import annotations

import argparse
import errno
import logging
import socket
import sys
from pathlib import Path

from train.cli import setup_logging
from workbench.paths import use_numba_cache

# The keys of train.pretrained.WEIGHT_DTYPES, named here so that --help does not load torch.
WEIGHTS = ("fp32", "bf16")


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
    first = parser.add_mutually_exclusive_group()
    first.add_argument(
        "--model",
        type=Path,
        default=None,
        metavar="PATH",
        help="a model to use first: a run directory, a checkpoint file or a bundle",
    )
    first.add_argument(
        "--bundle", type=Path, default=None, help="a model bundle to use first (.safetensors)"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for the app's own work (default 1: fastest for small models)",
    )
    parser.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="fp32",
        help="precision of the --model model's weights (default fp32; bf16 halves the memory)",
    )
    parser.add_argument(
        "--frames",
        type=int,
        default=None,
        metavar="N",
        help="clip length for the --model model (default its own; a multiple of its tubelet)",
    )
    parser.add_argument(
        "--img-size",
        type=int,
        default=None,
        metavar="S",
        help="clip size in px for the --model model (default its own; a multiple of its patch)",
    )
    parser.add_argument(
        "--runs-dir",
        type=Path,
        default=Path("runs"),
        help="where trainings go and bundles are found (default runs/)",
    )
    parser.add_argument(
        "--auth-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="ask for a login: FILE holds `user:password` lines (use it with --host 0.0.0.0)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        action="append",
        default=[],
        metavar="FOLDER",
        help="a server folder whose videos the Embeddings tab may map (repeatable; default "
        "none: pages can name no server path)",
    )
    return parser.parse_args(argv)


def read_auth_file(path: Path) -> list[tuple[str, str]]:
    """(user, password) pairs from `user:password` lines; ValueError says which line is bad
    (by number: the file holds passwords)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as err:
        raise ValueError(f"--auth-file {path}: cannot read it ({err.strerror})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--auth-file {path}: not UTF-8 text") from None
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, colon, password = line.strip().partition(":")
        if not (colon and user and password):
            raise ValueError(f"--auth-file {path}: line {number} is not `user:password`")
        pairs.append((user, password))
    if not pairs:
        raise ValueError(f"--auth-file {path} names no `user:password` login")
    return pairs


def port_problem(host: str, port: int) -> str | None:
    """Why `python -m workbench` cannot serve on host:port (one line), or None if it can."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does
            probe.bind(address)
    except OSError as err:
        if err.errno == errno.EADDRINUSE:
            return f"port {port} on {host} is in use (another app?): pass a free one with --port"
        return f"cannot serve on {host}:{port} ({err.strerror or err}): check --host and --port"
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging()
    problem = port_problem(args.host, args.port)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        auth = read_auth_file(args.auth_file) if args.auth_file is not None else None
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    use_numba_cache()  # before anything imports numba

    from train.checkpoint import CheckpointError
    from workbench.app import build_app, configure_torch, launch, start_background_work
    from workbench.bundles import OpenOptions
    from workbench.context import AppContext

    log = logging.getLogger("workbench")
    options = OpenOptions(args.weights, args.frames, args.img_size)
    if options != OpenOptions() and not (args.model or args.bundle):
        print("error: --weights, --frames and --img-size apply to --model PATH", file=sys.stderr)
        return 2
    try:
        ctx = AppContext.create(
            args.runs_dir,
            args.model or args.bundle,
            data_dirs=args.data_dir,
            model_flag="--model" if args.model else "--bundle",
            model_options=options,
        )
    except (CheckpointError, ValueError) as err:
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
            "serving on %s: other machines can reach this app and start trainings%s",
            args.host,
            "" if auth else " (no login: see --auth-file)",
        )
    configure_torch(args.threads)
    demo = build_app(ctx)
    try:
        launch(demo, host=args.host, port=args.port, prevent_thread_lock=True, auth=auth)
    except OSError as err:  # taken since the check above; Gradio's message names its own knobs
        print(f"error: {port_problem(args.host, args.port) or err}", file=sys.stderr)
        return 2
    # The page answers already; now open the model it uses first (a second on a busy laptop),
    # so that a bundle that cannot be opened stops the app with the reason.
    try:
        if default is not None:
            ctx.registry.load(default)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        demo.close()
        return 2
    # Only now, with the start-up imports done: see maps.UmapWarmUp.start.
    start_background_work(ctx)
    demo.block_thread()
    return 0


if __name__ == "__main__":
    sys.exit(main())
