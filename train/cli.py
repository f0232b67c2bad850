"""What every `python -m ...` entry point of the project does before its own work."""

from __future__ import annotations

import logging
import sys


def usage_exit_code(argv: list[str], usage: str) -> int | None:
    """Prints `usage` and returns the exit code when the command line asks for help (0) or
    lacks its first argument (2); None when the command should run."""
    if argv and argv[0] not in ("-h", "--help"):
        return None
    print(usage)
    return 0 if argv else 2


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def error_exit_code(err: Exception, usage_errors: tuple[type[Exception], ...]) -> int:
    """Prints `err` as one `error:` line; 2 for errors in what the user asked (usage_errors),
    1 for the rest (files that cannot be read, runs that stopped)."""
    print(f"error: {err}", file=sys.stderr)
    return 2 if isinstance(err, usage_errors) else 1
