"""Run every lesson with its exercise stubs replaced by the reference solutions (quick mode):
each check must then say "correct", and nothing may break."""

import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from build_notebooks import EXERCISE_PREFIX, execute_notebook, solve_notebook  # noqa: E402

WITH_EXERCISES = [
    path
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if any(c.cell_type == "code" and c.source.startswith(EXERCISE_PREFIX) for c in nbformat.read(path, 4).cells)
]


def _text(notebook) -> str:
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", "") or output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.parametrize("path", WITH_EXERCISES, ids=lambda p: p.stem)
def test_notebook_with_solutions_filled_in(path):
    notebook = nbformat.read(path, as_version=4)
    solved, ids = solve_notebook(notebook)
    assert ids
    execute_notebook(solved, quick=True, timeout=300)
    text = _text(solved)
    for exercise_id in set(ids):
        assert f"✅ {exercise_id}: correct" in text, f"{exercise_id} not graded correct with its solution"
    assert "⏳" not in text, "a check still says 'not attempted' with the solutions filled in"
