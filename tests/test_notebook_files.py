"""Each lesson notebook is in sync with its source script, starts with the Colab cell, carries its
badge, has shape printouts for nbval to compare, and stays small."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from build_notebooks import source_to_notebook  # noqa: E402

from vit_lessons.settings import BRANCH, REPO  # noqa: E402

SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_source_has_a_notebook_and_back():
    assert [s.stem for s in SOURCES] == [n.stem for n in NOTEBOOKS]
    assert NOTEBOOKS and NOTEBOOKS[0].stem == "00_setup_and_tour"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_matches_its_source(source):
    expected = source_to_notebook(source)
    actual = nbformat.read(ROOT / "notebooks" / f"{source.stem}.ipynb", as_version=4)
    assert [c.cell_type for c in actual.cells] == [c.cell_type for c in expected.cells]
    for index, (a, e) in enumerate(zip(actual.cells, expected.cells)):
        assert a.source == e.source, f"cell {index} differs: rebuild with tools/build_notebooks.py"
        assert a.metadata.get("tags", []) == e.metadata.get("tags", []), f"cell {index} tags differ"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_conventions(path):
    notebook = nbformat.read(path, as_version=4)
    assert path.stat().st_size < 3_000_000, "keep notebooks under 3 MB"
    badge = f"https://colab.research.google.com/github/{REPO}/blob/{BRANCH}/notebooks/{path.name}"
    assert badge in notebook.cells[0].source, "first cell needs the Open-in-Colab badge for this file"
    first_code = next(c for c in notebook.cells if c.cell_type == "code")
    assert '"google.colab" in sys.modules' in first_code.source
    assert f"git+https://github.com/{REPO}@{BRANCH}" in first_code.source and "--no-deps" in first_code.source
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "save the notebook executed, with outputs"
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in code)
    assert "widgets" not in notebook.metadata, "save without widget state"
    errors = [o for c in code for o in c.outputs if o.output_type == "error"]
    assert not errors, "a saved notebook has an error output"
