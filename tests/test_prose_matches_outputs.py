"""A saved notebook's prose must not state figures its own outputs contradict (issue 18).

Checked mechanically on every saved notebook:
- the run time in the header ("**Run time:** 17 s in full mode ...") against the time the saved run
  took, from the execution timestamps nbclient stores in each cell's metadata;
- every accuracy-like figure written in markdown with a decimal ("84.6%") must be printed by some
  output of the same notebook, unless its sentence cites where it comes from (a paper, a tutorial, a
  record): measured figures come from the run, quoted ones say whose they are.
"""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("[0-9][0-9]_*.ipynb"))
RUN_TIME = re.compile(r"\*\*Run time:\*\*(.*?)(?:\n#?\s*\n|\n\n|$)", re.S)
PERCENT = re.compile(r"(?<![\d.])(\d{1,3}\.\d)\s?%")
# words that mark a figure as quoted from somewhere else rather than measured by this notebook
CITED = re.compile(
    r"paper|et al\.|tutorial|seed|report|publish|claim|Table|Fig\.|\barXiv|ImageNet|record|README|docs/|"
    r"DeiT|ViT-[BLHS]|Swin-|ResNet-50|airbench|timm's|course checkpoint|checkpoint's|benchmarks",
    re.I,
)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _timestamp(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def _run_seconds(notebook) -> float | None:
    """Seconds from the first code cell's start to the last one's reply, as the saved run recorded them."""
    times = [cell.metadata.get("execution", {}) for cell in notebook.cells if cell.cell_type == "code"]
    times = [t for t in times if "iopub.execute_input" in t and "shell.execute_reply" in t]
    if not times:
        return None
    return (_timestamp(times[-1]["shell.execute_reply"]) - _timestamp(times[0]["iopub.execute_input"])).total_seconds()


def _stated_run_time(notebook) -> tuple[str, float] | None:
    """("s", seconds) or ("under", seconds) from the header's run-time sentence."""
    header = "".join(cell.source for cell in notebook.cells[:3] if cell.cell_type == "markdown")
    match = RUN_TIME.search(header)
    if not match:
        return None
    sentence = " ".join(match.group(1).split())
    found = re.search(r"(under|took|^|\s)\s*([\d,]+(?:\.\d+)?) s\b", sentence)
    if not found:
        return None
    return ("under" if found.group(1) == "under" else "s"), float(found.group(2).replace(",", ""))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_stated_run_time_is_the_saved_runs(path):
    notebook = _read(path)
    stated, measured = _stated_run_time(notebook), _run_seconds(notebook)
    assert stated is not None, f"{path.name}: the header has no '**Run time:** N s ...' sentence"
    assert measured is not None, (
        f"{path.name}: no execution timestamps saved (re-execute with tools/build_notebooks.py)"
    )
    kind, seconds = stated
    if kind == "under":
        assert measured <= seconds, (
            f"{path.name}: header says under {seconds:.0f} s, the saved run took {measured:.0f} s"
        )
    else:
        # the kernel's start-up (a second or two) is not in the cell timestamps
        assert abs(seconds - measured) <= max(4.0, 0.15 * measured), (
            f"{path.name}: header says {seconds:.0f} s, the saved run took {measured:.0f} s"
        )


def _output_text(notebook) -> str:
    texts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts.extend(str(data.get(kind, "")) for kind in ("text/plain", "text/markdown", "text/html"))
    return "\n".join(texts)


def _units(markdown: str) -> list[tuple[str, str]]:
    """(text, context) pairs: each sentence with the sentence before it; each table row with the
    prose before its table (a table's source is named once, above it)."""
    units, prose, previous = [], [], ""
    for line in markdown.splitlines():
        line = line.lstrip("#> ").rstrip()
        if line.startswith("|"):
            units.append((line, " ".join(prose)))
            continue
        prose.append(line.lstrip("-* "))
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z(*])", " ".join(prose))
    for sentence in sentences:
        units.append((sentence, previous))
        previous = sentence
    return units


def unbacked_figures(notebook) -> list[str]:
    """Percentages with a decimal in markdown that no output prints and no citation explains."""
    printed = set(PERCENT.findall(_output_text(notebook)))
    problems = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for text, context in _units(cell.source):
            for figure in PERCENT.findall(text):
                if figure not in printed and not CITED.search(text) and not CITED.search(context):
                    problems.append(f"{figure}% in: {text.strip()[:160]}")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_measured_percentage_in_the_prose_is_printed_by_the_run(path):
    problems = unbacked_figures(_read(path))
    assert not problems, f"{path.name}: figures in the prose that no output shows:\n" + "\n".join(problems)


def test_the_checks_can_fail():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell("**Run time:** 50 s in full mode on a CPU.\n\nIt reached 84.6% here."),
        nbformat.v4.new_code_cell("print('accuracy 80.1%')"),
    ]
    notebook.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="accuracy 80.1%\n")]
    notebook.cells[1].metadata["execution"] = {
        "iopub.execute_input": "2026-12-01T10:00:00.000Z",
        "shell.execute_reply": "2026-12-01T10:00:10.000Z",
    }
    assert _stated_run_time(notebook) == ("s", 50.0) and _run_seconds(notebook) == 10.0
    assert unbacked_figures(notebook) == ["84.6% in: It reached 84.6% here."]
    notebook.cells[0].source = "**Run time:** 10 s.\n\nIt reached 80.1% here; the paper reports 77.9%."
    assert unbacked_figures(notebook) == []
