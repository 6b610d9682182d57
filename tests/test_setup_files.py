"""The set-up files describe the same dependencies, those cover every import of the lessons and the package,
and the Makefile/CI use the README's commands.

Which imports need which dependency is read off the code (``ast`` over every lesson's code cells, in the
saved notebooks and their sources, and over ``vit_lessons/``), so adding an import to a lesson without adding
its distribution to ``pyproject.toml``, ``binder/requirements.txt`` and ``environment.yml`` fails here.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import json
import re
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LESSON_SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
LESSON_NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
PACKAGE_FILES = sorted((ROOT / "vit_lessons").rglob("*.py"))

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

# Import names whose distribution on PyPI is named otherwise (the rest: the import name itself).
DISTRIBUTION_OF = {
    "sklearn": "scikit-learn",
    "skimage": "scikit-image",
    "PIL": "pillow",
    "yaml": "pyyaml",
    "cv2": "opencv-python",
    "huggingface_hub": "huggingface-hub",
    "jupyterlab_widgets": "jupyterlab-widgets",
    "google": "google-colab",
    "bs4": "beautifulsoup4",
    "attr": "attrs",
}
# Every Jupyter kernel has these: they are what runs a notebook.
PROVIDED_BY_JUPYTER = {"IPython", "ipykernel"}
# Distributions another listed one installs (checked against that one's metadata below).
PROVIDED_BY = {"jupyterlab-widgets": "ipywidgets"}
# Distributions a lesson (or a benchmark tool) may use without being a runtime dependency, and the extra
# that holds each. The code must import them inside ``try: ... except ImportError`` and go on without them.
OPTIONAL = {"transformers": "hf", "vit-pytorch": "race"}

# Colab's preinstalled versions (googlecolab/backend-info, pip-freeze.gpu.txt of 2026-08-19, Python 3.13,
# git 2.34): the lessons' first cell installs the course with --no-deps, so each of these must be there
# and satisfy our requirement.
COLAB = {
    "torch": "2.11.0",
    "torchvision": "0.26.0",
    "numpy": "2.1.3",
    "matplotlib": "3.10.0",
    "ipywidgets": "7.7.1",
    "tqdm": "4.67.3",
    "scikit-learn": "1.6.1",
    "scikit-image": "0.25.2",
    "pillow": "11.3.0",
    "timm": "1.0.28",
    "huggingface-hub": "1.27.0",
    "safetensors": "0.8.0",
    "transformers": "5.15.0",
}


def _name(requirement: str) -> str:
    """PEP 503's normalised project name of a requirement ("Foo_Bar>=1" -> "foo-bar")."""
    return re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]).lower()


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirements(items) -> dict[str, str]:
    return {_name(r): r.replace(" ", "") for r in items}


def _runtime() -> dict[str, str]:
    return _requirements(_pyproject()["project"]["dependencies"])


def _extras() -> dict[str, dict[str, str]]:
    return {extra: _requirements(items) for extra, items in _pyproject()["project"]["optional-dependencies"].items()}


def _requirement_lines(text: str) -> dict[str, str]:
    lines = [line.strip() for line in text.splitlines()]
    return {_name(line): line.replace(" ", "") for line in lines if line and not line.startswith(("#", "-"))}


def _binder() -> dict[str, str]:
    return _requirement_lines((ROOT / "binder" / "requirements.txt").read_text())


def _environment_yml() -> dict[str, str]:
    pip_section = (ROOT / "environment.yml").read_text().split("- pip:", 1)[1]
    return _requirements(re.findall(r"^\s+- (\S+)\s*$", pip_section, flags=re.M))


# -- what the code imports -----------------------------------------------------------------------------


def _python_of_cell(source: str) -> str:
    """A code cell as plain Python: IPython turns ``%pip ...`` and ``!cmd`` into calls."""
    from IPython.core.inputtransformer2 import TransformerManager

    return TransformerManager().transform_cell(source)


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    if handler.type is None:
        return True
    names = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
    return any(
        isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}
        for n in names
    )


def imports_of(code: str) -> list[tuple[str, bool]]:
    """(top-level module, guarded) for each absolute import in ``code``; guarded: inside the body of a
    ``try`` that catches ImportError."""
    found = []

    def visit(node: ast.AST, guarded: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend((alias.name.split(".")[0], guarded) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], guarded))
        if isinstance(node, ast.Try) or type(node).__name__ == "TryStar":
            protects = any(_catches_import_error(h) for h in node.handlers)
            for child in node.body:
                visit(child, guarded or protects)
            for child in node.handlers + node.orelse + node.finalbody:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(ast.parse(code), False)
    return found


@functools.cache
def _packages_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution_of(module: str) -> str | None:
    """The distribution providing top-level ``module``; None for the stdlib, the course and Jupyter's own."""
    if module in sys.stdlib_module_names or module == "vit_lessons" or module in PROVIDED_BY_JUPYTER:
        return None
    if module in DISTRIBUTION_OF:
        return DISTRIBUTION_OF[module]
    installed = _packages_distributions().get(module, [])
    return _name(installed[0]) if len(set(installed)) == 1 else _name(module)


def _code_of(path: Path) -> list[str]:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return [_python_of_cell("".join(c["source"])) for c in cells if c["cell_type"] == "code"]
    if path.parent.name == "src":  # a jupytext percent script: markdown cells are comments
        return [_python_of_cell(path.read_text())]
    return [path.read_text()]


def imported_distributions(paths) -> dict[str, list[tuple[str, bool]]]:
    """{distribution: [(where, guarded), ...]} over the code of ``paths``."""
    found: dict[str, list[tuple[str, bool]]] = {}
    for path in paths:
        for code in _code_of(path):
            for module, guarded in imports_of(code):
                distribution = distribution_of(module)
                if distribution:
                    found.setdefault(distribution, []).append((f"{path.relative_to(ROOT)}: {module}", guarded))
    return found


def missing_dependencies(found, runtime: dict, extras: dict) -> list[str]:
    """What ``pyproject.toml`` lacks for the imports in ``found``: each distribution must be a runtime
    dependency, a provided one, or an OPTIONAL one held by its extra and imported only under a guard."""
    problems = []
    for distribution, places in sorted(found.items()):
        if distribution in runtime:
            continue
        if distribution in PROVIDED_BY and PROVIDED_BY[distribution] in runtime:
            continue
        if distribution in OPTIONAL:
            extra = OPTIONAL[distribution]
            if distribution not in extras.get(extra, {}):
                problems.append(f"{distribution}: add it to the [{extra}] extra of pyproject.toml")
            unguarded = [where for where, guarded in places if not guarded]
            if unguarded:
                problems.append(
                    f"{distribution} is optional ([{extra}]) but imported without try/except ImportError at {unguarded}"
                )
            continue
        problems.append(
            f"{distribution} (imported at {[where for where, _ in places]}) is not in [project] "
            "dependencies of pyproject.toml"
        )
    return problems


@pytest.fixture(scope="module")
def lesson_and_package_imports():
    return imported_distributions(LESSON_NOTEBOOKS + LESSON_SOURCES + PACKAGE_FILES)


def test_the_import_scan_finds_the_lessons_libraries(lesson_and_package_imports):
    assert LESSON_NOTEBOOKS and LESSON_SOURCES and PACKAGE_FILES
    for expected in (
        "torch",
        "scikit-learn",
        "scikit-image",
        "pillow",
        "timm",
        "transformers",
        "safetensors",
        "huggingface-hub",
        "ipywidgets",
    ):
        assert expected in lesson_and_package_imports, expected


def test_pyproject_has_every_imported_distribution(lesson_and_package_imports):
    problems = missing_dependencies(lesson_and_package_imports, _runtime(), _extras())
    assert not problems, "\n".join(problems)


def test_a_new_import_in_a_lesson_fails_the_check():
    # What the check says when someone adds imports to a lesson and not to pyproject.toml.
    code = _python_of_cell(
        "%pip install einops\nimport einops\nfrom yaml import safe_load\nimport os\n"
        "try:\n    import transformers\nexcept ImportError:\n    pass\nimport transformers\n"
    )
    found: dict = {}
    for module, guarded in imports_of(code):
        if distribution_of(module):
            found.setdefault(distribution_of(module), []).append((module, guarded))
    assert set(found) == {"einops", "pyyaml", "transformers"}
    problems = missing_dependencies(found, _runtime(), _extras())
    assert any(p.startswith("einops ") for p in problems) and any(p.startswith("pyyaml ") for p in problems)
    assert any("transformers is optional" in p for p in problems), "an unguarded optional import must fail"
    assert not missing_dependencies(
        {"transformers": [("x", True)], "jupyterlab-widgets": [("y", True)]}, _runtime(), _extras()
    )


def test_provided_distributions_come_with_their_provider():
    for distribution, provider in PROVIDED_BY.items():
        requires = importlib.metadata.requires(provider) or []
        assert distribution in {_name(r) for r in requires if "extra ==" not in r}, (provider, distribution)


def test_every_extra_is_part_of_dev():
    extras = _extras()
    for extra, requirements in extras.items():
        for name, requirement in requirements.items():
            assert extras["dev"].get(name) == requirement, f"[dev] must include [{extra}]'s {requirement}"


def test_binder_requirements_hold_every_import(lesson_and_package_imports):
    listed = _binder()
    wanted = {**_runtime(), **{k: v for e, reqs in _extras().items() if e != "dev" for k, v in reqs.items()}}
    assert {k: v for k, v in listed.items() if k in wanted} == wanted
    assert set(listed) - set(wanted) == {"jupyterlab"}
    for distribution in lesson_and_package_imports:
        assert distribution in listed or PROVIDED_BY.get(distribution) in listed, distribution
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_environment_yml_matches_pyproject(lesson_and_package_imports):
    wanted = dict(_runtime())
    for requirements in _extras().values():
        wanted.update(requirements)
    listed = _environment_yml()
    assert listed == wanted
    for distribution in lesson_and_package_imports:
        assert distribution in listed or PROVIDED_BY.get(distribution) in listed, distribution


def test_colab_has_what_the_first_cell_leaves_out():
    # The first cell installs with --no-deps: every runtime dependency (and [hf]) must be preinstalled on Colab.
    wanted = {**_runtime(), **_extras()["hf"]}
    for name, requirement in wanted.items():
        assert name in COLAB, f"Colab lacks {name}: add it to the %pip line of every lesson's first cell"
        assert Requirement(requirement).specifier.contains(COLAB[name], prereleases=True), (requirement, COLAB[name])


def test_torch_is_a_range_not_a_pin():
    for requirement in _pyproject()["project"]["dependencies"]:
        assert "==" not in requirement, requirement


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.M)
