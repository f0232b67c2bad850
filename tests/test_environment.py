"""environment.yml (conda users) lists exactly what pyproject.toml installs."""

from __future__ import annotations

import re

import tomllib
import yaml

from conftest import REPO


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_name(r) for r in project["dependencies"] + project["optional-dependencies"]["test"]}
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {_name(r) for r in pip_section if not r.startswith("-e")}
    assert listed == wanted, f"only in pyproject: {wanted - listed}; only in yml: {listed - wanted}"


def test_required_packages_are_dependencies():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    names = {_name(r) for r in project["dependencies"]}
    required = {
        "torch",
        "gradio",
        "jupyterlab",
        "matplotlib",
        "plotly",
        "decord",
        "scikit-learn",
        "umap-learn",
        "ipywidgets",
    }
    assert required <= names, f"missing: {required - names}"


def test_makefile_pins_the_same_torch_as_environment_yml():
    pin = re.search(r"TORCH_SPEC \?= (torch==[\d.]+)", (REPO / "Makefile").read_text()).group(1)
    assert pin in (REPO / "environment.yml").read_text()
