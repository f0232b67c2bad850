"""The core (train, decoder) imports without the app's and the notebooks' packages.

`pip install vjepa-workbench` for a training job leaves out the `[app]` and `[notebooks]` extras,
so no module of train/ or decoder/ may import them, not even lazily at import time. Each module is
imported in a fresh interpreter in which those packages raise ImportError.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO

# Top-level names of what the extras install (the [app] and [notebooks] import names), and the
# upper layer: train and decoder never import workbench.
OPTIONAL = (
    "gradio",
    "gradio_client",
    "plotly",
    "umap",
    "matplotlib",
    "ipywidgets",
    "anywidget",
    "jupyterlab",
    "IPython",
    "skvideo",
    "workbench",
)

SCRIPT = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    BLOCKED = set(sys.argv[1].split(","))

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is not part of the core install")
            return None

    sys.meta_path.insert(0, Refuse())
    failures = []
    for package in sys.argv[2].split(","):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, package + "."):
            if info.name.endswith("__main__"):
                continue  # runs a command line; its imports are the package's own
            try:
                importlib.import_module(info.name)
            except ImportError as error:
                failures.append(f"{info.name}: {error}")
    print("\\n".join(failures))
    loaded = sorted({m.split(".")[0] for m in sys.modules} & BLOCKED)
    print("LOADED", ",".join(loaded))
    """
)


def import_all(packages: list[str], blocked: tuple[str, ...]) -> tuple[list[str], str]:
    """(modules that failed to import, with why; the blocked packages that got loaded)."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, ",".join(blocked), ",".join(packages)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    *failures, loaded = result.stdout.strip().splitlines()
    return [f for f in failures if f], loaded.removeprefix("LOADED").strip()


def test_train_and_decoder_import_without_the_app_and_notebook_extras():
    failures, loaded = import_all(["train", "decoder"], OPTIONAL)
    assert failures == [], "\n".join(failures)
    assert loaded == ""


def test_the_blocker_refuses_what_it_blocks():
    """The check above is only as good as its blocker: the app must fail to import under it."""
    failures, _ = import_all(["workbench"], tuple(n for n in OPTIONAL if n != "workbench"))
    assert any(
        f.startswith("workbench.app:") and "gradio is not part of the core install" in f
        for f in failures
    ), failures
