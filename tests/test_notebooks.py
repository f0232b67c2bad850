"""The notebooks as committed: all seven present, outputs stripped, sizes in a parameters cell that
nbmake can shrink. Running them is nbmake's job (`pytest --nbmake notebooks`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = [
    "01_quickstart.ipynb",
    "02_masks.ipynb",
    "03_teaching_training.ipynb",
    "04_embeddings.ipynb",
    "05_decoder.ipynb",
    "06_paper_ablations.ipynb",
    "07_intuitive_physics.ipynb",
]
# The parameters cell comes before any real work: within the first few cells.
PARAMETERS_WITHIN = 3


def notebook_paths() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def code_cells(notebook: dict) -> list[dict]:
    return [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]


def test_all_seven_notebooks_exist():
    assert [p.name for p in notebook_paths()] == EXPECTED


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_outputs_are_stripped(path):
    cells = code_cells(load(path))
    assert cells, f"{path.name} has no code"
    with_outputs = [i for i, cell in enumerate(cells) if cell.get("outputs")]
    counted = [i for i, cell in enumerate(cells) if cell.get("execution_count") is not None]
    assert with_outputs == [], f"{path.name}: code cells {with_outputs} keep outputs"
    assert counted == [], f"{path.name}: code cells {counted} keep an execution count"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_parameters_cell_with_nbmake_mock(path):
    notebook = load(path)
    marked = [
        (i, cell)
        for i, cell in enumerate(notebook["cells"])
        if "parameters" in cell.get("metadata", {}).get("tags", [])
    ]
    assert len(marked) == 1, f"{path.name}: expected one cell tagged 'parameters'"
    index, cell = marked[0]
    assert cell["cell_type"] == "code"
    assert index < PARAMETERS_WITHIN, f"{path.name}: the parameters cell is cell {index}"
    mock = cell["metadata"].get("nbmake", {}).get("mock")
    assert isinstance(mock, dict) and mock, f"{path.name}: parameters cell has no nbmake mock"
    source = "".join(cell["source"])
    for name in mock:
        # Every mocked name is a teaching-size default set in this very cell.
        assert f"\n{name} = " in f"\n{source}", f"{path.name}: mock sets {name}, cell does not"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: p.name)
def test_notebooks_load_the_starter_bundle_not_a_machine_path(path):
    sources = "\n".join("".join(cell["source"]) for cell in code_cells(load(path)))
    assert "load_bundle(" not in sources or "load_bundle()" in sources
    # This checkout's own location, a home folder, a temp folder: none may be written in.
    for marker in (str(Path(__file__).resolve().parents[1]), "/home/", "/tmp/", "C:\\"):
        assert marker not in sources, f"{path.name} mentions {marker}"
