"""`compile: true`: torch.compile, with a clean way back to eager when compiling fails.

torch.compile works lazily: it captures and compiles a graph on the first call, and again when
the inputs change shape. That can fail for reasons that have nothing to do with the run (no
working C++ compiler for inductor's CPU kernels, an operator a backend does not support, a
Python version torch.compile refuses). A run should not die for an optimisation, nor silently
lose it: the first failure logs one warning with its reason and the module runs eagerly from
then on. An error the eager module raises too is a real error and propagates as usual.

The backward graph is normally compiled at the first backward, where this wrapper cannot see
it; here it is compiled together with the forward, so its failures fall back as well.
"""

from __future__ import annotations

import contextlib
import logging

import torch
from torch import nn

log = logging.getLogger("train")
REASON_CHARS = 300  # dynamo's messages run to pages; the warning keeps the gist


def _backward_compiled_with_forward():
    """Make AOTAutograd build the backward during the forward call (a private setting; without
    it, backward failures raise in `.backward()` instead of falling back)."""
    config = torch._functorch.config
    if hasattr(config, "force_non_lazy_backward_lowering"):
        return config.patch(force_non_lazy_backward_lowering=True)
    return contextlib.nullcontext()


class CompiledOrEager:
    """Calls `torch.compile(module)`; after the first failure, `module` itself.

    Everything but the call (train(), no_sync(), parameters(), ...) is the eager module's: the
    compiled one shares its parameters.
    """

    def __init__(self, module: nn.Module, name: str):
        self.module = module
        self.name = name
        self.compiled = None
        try:
            self.compiled = torch.compile(module)
        except Exception as err:  # torch.compile refuses this platform or Python
            self._fall_back(err)

    @property
    def is_compiled(self) -> bool:
        return self.compiled is not None

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
            return self.module(*args, **kwargs)
        try:
            with _backward_compiled_with_forward():
                return self.compiled(*args, **kwargs)
        except Exception as err:  # the eager call below re-raises any error that is not compiling's
            self._fall_back(err)
        return self.module(*args, **kwargs)

    def __getattr__(self, attribute: str):
        return getattr(self.module, attribute)

    def _fall_back(self, err: Exception) -> None:
        self.compiled = None
        # A backend's own error is wrapped (BackendCompilerFailed): name the one inside.
        cause = getattr(err, "inner_exception", None) or err
        reason = " ".join(f"{type(cause).__name__}: {cause}".split())[:REASON_CHARS]
        log.warning(
            "compile=true: compiling the %s failed (%s); running it eagerly for the rest of the "
            "run. Set compile=false to skip the attempt.",
            self.name,
            reason,
        )
