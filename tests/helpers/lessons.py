"""Read a lesson's own functions from its source, so a test checks the code the student reads."""

import ast
from pathlib import Path

SOURCES = Path(__file__).resolve().parents[2] / "notebooks" / "src"


def lesson_functions(lesson: str, names: set[str], namespace: dict) -> dict:
    """The functions ``names`` defined at the top level of ``notebooks/src/<lesson>.py``, compiled into
    ``namespace`` (which supplies the globals they use)."""
    path = SOURCES / f"{lesson}.py"
    # IPython magics (%pip) are not Python: make them `pass`, keeping their indentation
    lines = [
        line[: len(line) - len(line.lstrip())] + "pass" if line.lstrip().startswith(("%", "!")) else line
        for line in path.read_text().splitlines()
    ]
    tree = ast.parse("\n".join(lines))
    wanted = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name in names]
    assert {node.name for node in wanted} == names, f"{lesson} no longer defines {sorted(names)}"
    exec(compile(ast.Module(body=wanted, type_ignores=[]), str(path), "exec"), namespace)
    return namespace
