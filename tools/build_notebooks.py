"""Build the lesson notebooks from their reviewable sources.

Each lesson is written as a jupytext "percent" script, ``notebooks/src/NN_topic.py``; the file
students open is ``notebooks/NN_topic.ipynb``, executed and saved with its outputs.

    python tools/build_notebooks.py notebooks/src/01_images_as_patches.py            # convert only
    python tools/build_notebooks.py --execute notebooks/src/01_images_as_patches.py  # and run it (full mode)
    python tools/build_notebooks.py --execute --quick ...                             # quick mode
    python tools/build_notebooks.py --sync notebooks/src/13_efficient_vit.py          # sources only

``--sync`` copies the script's cell sources into the saved notebook and keeps its outputs; use it only
for edits that cannot change an output (prose, a renamed keyword with the same effect). It refuses
when cells were added, removed or retyped: those need ``--execute``.

Execution runs in ``notebooks/`` with the current Python's kernel; widget state is not saved (it can
stop GitHub from rendering a notebook).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat

from vit_lessons.settings import hardware_name, pick_device

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"

__all__ = ["source_to_notebook", "ipynb_for", "execute_notebook", "solve_notebook", "EXERCISE_PREFIX"]

EXERCISE_PREFIX = "# EXERCISE "


def ipynb_for(source: Path) -> Path:
    return NOTEBOOKS / (Path(source).stem + ".ipynb")


def source_to_notebook(source: Path) -> nbformat.NotebookNode:
    """Read a percent script into a notebook with the course's metadata."""
    notebook = jupytext.read(source)
    notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    notebook.metadata["language_info"] = {"name": "python"}
    for cell in notebook.cells:
        cell.metadata.pop("lines_to_next_cell", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return notebook


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def strip_widget_state(notebook: nbformat.NotebookNode) -> None:
    """Drop widget outputs (tqdm bars, the explorer): without their state a reader on GitHub would see
    only their text fallback, a bar frozen at 0% or ``VBox(children=...``."""
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = [output for output in cell.get("outputs", []) if WIDGET_VIEW not in output.get("data", {})]


def execute_notebook(notebook: nbformat.NotebookNode, quick: bool, timeout: int = 1800) -> nbformat.NotebookNode:
    from nbclient import NotebookClient

    env_quick = os.environ.get("VIT_LESSONS_QUICK")
    os.environ["VIT_LESSONS_QUICK"] = "1" if quick else "0"
    try:
        client = NotebookClient(
            notebook,
            timeout=timeout,
            kernel_name="python3",
            resources={"metadata": {"path": str(NOTEBOOKS)}},
            startup_timeout=120,
        )
        client.execute()
    finally:
        if env_quick is None:
            os.environ.pop("VIT_LESSONS_QUICK", None)
        else:
            os.environ["VIT_LESSONS_QUICK"] = env_quick
    strip_widget_state(notebook)
    return notebook


def solve_notebook(notebook: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, list[str]]:
    """A copy with every exercise stub (first line ``# EXERCISE <id>: <name>``) replaced by the
    reference solution defining ``<name>``. Returns the copy and the exercise ids solved."""
    from vit_lessons.exercises import get_exercise

    solved = copy.deepcopy(notebook)
    ids = []
    for cell in solved.cells:
        if cell.cell_type != "code" or not cell.source.startswith(EXERCISE_PREFIX):
            continue
        header = cell.source.splitlines()[0][len(EXERCISE_PREFIX) :]
        exercise_id, _, name = header.partition(":")
        exercise = get_exercise(exercise_id.strip())
        cell.source = f"{EXERCISE_PREFIX}{header}\n" + exercise.solution_source(name.strip())
        ids.append(exercise.id)
    return solved, ids


def sync_sources(source: Path) -> nbformat.NotebookNode:
    """The saved notebook with the script's cell sources and tags, outputs kept (same cell layout only)."""
    expected = source_to_notebook(source)
    saved = nbformat.read(ipynb_for(source), as_version=4)
    if [c.cell_type for c in saved.cells] != [c.cell_type for c in expected.cells]:
        raise SystemExit(f"{source.name}: cells were added, removed or retyped; rebuild it with --execute")
    for cell, new in zip(saved.cells, expected.cells):
        cell.source = new.source
        cell.metadata["tags"] = new.metadata.get("tags", [])
        if not cell.metadata["tags"]:
            cell.metadata.pop("tags")
    return saved


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sources", nargs="+", type=Path)
    parser.add_argument("--execute", action="store_true", help="run the notebook and save its outputs")
    parser.add_argument("--quick", action="store_true", help="execute in quick mode (VIT_LESSONS_QUICK=1)")
    parser.add_argument("--sync", action="store_true", help="update the saved notebook's sources, keep its outputs")
    args = parser.parse_args(argv)
    for source in args.sources:
        notebook = sync_sources(source) if args.sync else source_to_notebook(source)
        if args.execute:
            start = time.perf_counter()
            execute_notebook(notebook, quick=args.quick)
            seconds = time.perf_counter() - start
            print(f"{source.name}: executed in {seconds:.0f} s on {hardware_name(pick_device())}", file=sys.stderr)
        target = ipynb_for(source)
        nbformat.write(notebook, target)
        print(f"wrote {target.relative_to(ROOT)} ({target.stat().st_size / 1e6:.2f} MB)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
