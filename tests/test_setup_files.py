"""The set-up files describe the same dependencies, and the Makefile/CI use the README's commands."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _requirement_lines(text: str) -> dict[str, str]:
    lines = [line.strip() for line in text.splitlines()]
    return {_name(line): line.replace(" ", "") for line in lines if line and not line.startswith(("#", "-"))}


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    wanted = {_name(r): r.replace(" ", "") for r in project["dependencies"] + project["optional-dependencies"]["dev"]}
    text = (ROOT / "environment.yml").read_text()
    pip_section = text.split("- pip:", 1)[1]
    listed = {_name(m): m.replace(" ", "") for m in re.findall(r"^\s+- (\S+)\s*$", pip_section, flags=re.M)}
    assert listed == wanted


def test_binder_requirements_match_runtime_dependencies():
    runtime = {_name(r): r.replace(" ", "") for r in _pyproject()["project"]["dependencies"]}
    listed = _requirement_lines((ROOT / "binder" / "requirements.txt").read_text())
    assert {k: v for k, v in listed.items() if k in runtime} == runtime
    assert set(listed) - set(runtime) == {"jupyterlab"}
    assert "download.pytorch.org/whl/cpu" in (ROOT / "binder" / "requirements.txt").read_text()
    assert "pip install --no-deps -e ." in (ROOT / "binder" / "postBuild").read_text()


def test_torch_is_a_range_not_a_pin():
    for requirement in _pyproject()["project"]["dependencies"]:
        assert "==" not in requirement, requirement


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    assert re.search(r"^make test$", (ROOT / ".ci" / "run").read_text(), flags=re.M)
