"""What a student sees on GitHub: the saved notebooks carry no noise from the machine that ran them.

No stderr streams or tracebacks, no host paths (temporary, home or data folders, site-packages), no
progress bars frozen where they stopped and no raw widget reprs (the build drops widget outputs), and
no remarks about the build machine's load in the lessons' text or outputs."""

import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

HOST_PATH = re.compile(r"/tmp/|/var/folders/|/root/|/home/\w|site-packages|/work/|shared/data|[A-Z]:\\\\Users")
FROZEN_BAR = re.compile(r"\d+%\|[^\n]*\|")  # tqdm's text form: "  0%|          | 0/600"
WIDGET_REPR = re.compile(r"\b(VBox|HBox|Tab|Accordion|IntSlider|Dropdown|Output)\(children=|\bVBox\(|\bHBox\(")
CHATTER = re.compile(
    r"other\s+(busy\s+)?(#\s*)?jobs|load\s+average|busy\s+machine|machine\s+was\s+(busy|shared|loaded)|heavily\s+loaded",
    re.IGNORECASE,
)


def _outputs(notebook):
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            yield index, output


def _text(output) -> str:
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    return "".join(str(data.get(kind, "")) for kind in ("text/plain", "text/markdown", "text/html"))


@pytest.fixture(params=NOTEBOOKS, ids=lambda path: path.stem)
def notebook(request):
    return nbformat.read(request.param, as_version=4)


def test_no_stderr_and_no_tracebacks(notebook):
    noisy = [i for i, o in _outputs(notebook) if o.output_type == "error" or getattr(o, "name", "") == "stderr"]
    assert not noisy, f"cells {noisy} print to stderr or raised"


def test_no_host_paths(notebook):
    found = [(i, HOST_PATH.search(_text(o)).group()) for i, o in _outputs(notebook) if HOST_PATH.search(_text(o))]
    assert not found, f"host paths in outputs (cell, match): {found}"


def test_no_frozen_progress_bars_or_widget_reprs(notebook):
    bars = [i for i, o in _outputs(notebook) if o.output_type != "stream" and FROZEN_BAR.search(_text(o))]
    widgets = [i for i, o in _outputs(notebook) if WIDGET_REPR.search(_text(o))]
    assert not bars and not widgets, f"frozen progress bars in cells {bars}, widget reprs in cells {widgets}"


def test_no_remarks_about_the_build_machine(notebook):
    texts = [(i, c.source) for i, c in enumerate(notebook.cells) if c.cell_type == "markdown"]
    texts += [(i, _text(o)) for i, o in _outputs(notebook)]
    found = [(i, CHATTER.search(t).group()) for i, t in texts if CHATTER.search(t)]
    assert not found, f"remarks about the build machine (cell, match): {found}"


def test_the_checks_catch_what_they_should():
    # each pattern matches the noise it is for, and not ordinary lesson text
    assert HOST_PATH.search("data: /tmp/vit_lessons_12_zpe7wa8u/tiny_folder")
    assert HOST_PATH.search("put it at /root/.cache/vit_lessons/weights/x.safetensors")
    assert not HOST_PATH.search("put it at ~/.cache/vit_lessons/weights/x.safetensors")
    assert FROZEN_BAR.search("cifar10-cpu, 600 s budget:   0%|          | 0/600 s")
    assert WIDGET_REPR.search("VBox(children=(HBox(children=(VBox(children=(Dropdown(")
    assert CHATTER.search("on a 2-core x86_64 CPU shared with other busy jobs")
    assert CHATTER.search("on a 2-core CPU shared with other busy\n# jobs")
    assert not CHATTER.search("the head attends to other tokens")
