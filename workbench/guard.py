"""Turning errors a user can act on into messages in the page, instead of tracebacks.

Handlers are wrapped with `user_errors`: the project's input errors (ValueError and its kin:
DataError, ConfigError, mask checks; BundleError and CheckpointError; unreadable files) become
`gr.Error` with the same message, shown in the page while the app keeps serving. Anything else
is a bug: it is logged with its traceback and Gradio reports it as an error.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import gradio as gr

from train.checkpoint import CheckpointError
from train.data.files import UnreadableError

log = logging.getLogger("workbench")

USER_ERRORS = (ValueError, CheckpointError, UnreadableError, FileNotFoundError)
F = TypeVar("F", bound=Callable[..., Any])


def _as_gradio_error(err: Exception) -> gr.Error:
    log.info("user error: %s", err, exc_info=log.isEnabledFor(logging.DEBUG))
    return gr.Error(str(err), print_exception=False)


def user_errors(handler: F) -> F:
    """Wrap a handler (function or generator) so that USER_ERRORS reach the page as gr.Error."""
    if inspect.isgeneratorfunction(handler):

        @functools.wraps(handler)
        def generator(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from handler(*args, **kwargs)
            except gr.Error:
                raise
            except USER_ERRORS as err:
                raise _as_gradio_error(err) from err

        return generator  # type: ignore[return-value]

    @functools.wraps(handler)
    def function(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except USER_ERRORS as err:
            raise _as_gradio_error(err) from err

    return function  # type: ignore[return-value]
