"""The course as students install it, not as the dev environment has it.

- **Runtime-only install:** a fresh venv with what ``pip install .`` brings (no ``[dev]``) plus ``ipykernel``
  (every Jupyter has a kernel): every lesson notebook runs there in quick mode without a cell error, and no
  lesson says a library is missing. No pytest, nbval, jupyterlab or transformers is importable in it (the
  test checks); the dev environment only drives the kernel, through nbclient.
- **Colab:** lessons 00 and 08 run with ``google.colab`` faked (an IPython start-up file, as Colab's kernel
  imports it before any cell) in a venv that has the dependencies but not the course. The lessons' own first
  cell, unchanged, installs the course with ``%pip install --no-deps "git+https://github.com/...@main"``;
  git's ``url.<local repo>.insteadOf`` sends that URL to a local repository whose ``main`` holds a snapshot
  of this working tree, so the real cell, pip's git support included, is what gets exercised.

The base venv is built once and cached in ``.cache/runtime-venv/<key>`` (the key hashes pyproject.toml);
see ``tests/helpers/install_venv.py``. ``VIT_LESSONS_DATA`` (the CIFAR-10 archive) reaches the kernels when
set. Without a package index the tests skip, except in CI (``CI`` set), where that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "helpers"))

import install_venv  # noqa: E402

pytestmark = pytest.mark.slow

LESSONS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
COLAB_LESSONS = ["00_setup_and_tour", "08_training_cifar10"]
# What a lesson prints when a library it wants is missing (an ImportError caught and reported).
MISSING_LIBRARY = re.compile(r"No module named '?([\w.]+)|(\w+) is not installed")
OPTIONAL_MODULES = {"transformers"}  # the [hf] extra: lesson 12 may say it is missing
FAKE_COLAB = """\
# Made by tests/test_installs.py: what Colab's kernel has imported before the first cell.
import sys
import types

_colab = types.ModuleType("google.colab")
_colab.__doc__ = "a stand-in for Colab's google.colab"
sys.modules["google.colab"] = _colab
"""


def _skip_or_fail(reason: str):
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def base_venv():
    try:
        venv, info = install_venv.base_venv()
    except install_venv.CannotBuild as error:
        _skip_or_fail(f"cannot build a fresh virtual environment here: {error}")
    if info["built_s"] is not None:
        print(f"\nbuilt {venv} in {info['built_s']:.0f} s")
    return venv


@pytest.fixture(scope="session")
def runtime_python(base_venv, tmp_path_factory):
    """The base venv plus ``pip install`` of a copy of this checkout: a runtime-only install of the course."""
    root = tmp_path_factory.mktemp("runtime-install")
    python = install_venv.overlay_venv(base_venv, root / "venv")
    source = install_venv.copy_package_source(root / "source")
    try:
        install_venv.pip_install(python, source, root / "pip.log")
    except install_venv.CannotBuild as error:
        _skip_or_fail(f"cannot pip install the course here: {error}")
    return python


@pytest.fixture(scope="session")
def student_folder(tmp_path_factory):
    """Where the lessons run, in order, as in a student's notebooks/ folder (lesson 08 writes runs/ there)."""
    return tmp_path_factory.mktemp("student")


def _kernel_env(python: Path, ipython_dir: Path, **extra: str) -> dict[str, str]:
    ipython_dir.mkdir(parents=True, exist_ok=True)
    # VIT_LESSONS_DATA, HOME and pip's settings come from os.environ; nothing of the dev venv does.
    return install_venv.clean_env(python, VIT_LESSONS_QUICK="1", IPYTHONDIR=str(ipython_dir), **extra)


def _assert_nothing_missing(notebook, allowed=frozenset()):
    said = {a or b for a, b in MISSING_LIBRARY.findall(install_venv.outputs_text(notebook))}
    said = {name for name in said if name.split(".")[0] not in allowed}
    assert not said, f"the lesson says these are missing in a runtime-only install: {sorted(said)}"


def _pyproject_names(table: str) -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    items = project["dependencies"] if table == "runtime" else project["optional-dependencies"][table]
    return {re.sub(r"[-_.]+", "-", re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0]).lower() for r in items}


def test_runtime_install_has_the_runtime_dependencies_only(runtime_python):
    runtime = _pyproject_names("runtime")
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    # [dev] and the other extras stay out, except the kernel this test adds on purpose.
    not_wanted = set().union(*(_pyproject_names(extra) for extra in extras)) - runtime - {"ipykernel"}
    probe = (
        "import importlib.metadata as m, json, sys, vit_lessons\n"
        "def has(name):\n"
        "    try:\n"
        "        return bool(m.distribution(name))\n"
        "    except m.PackageNotFoundError:\n"
        "        return False\n"
        "print(json.dumps({'executable': sys.executable, 'course': vit_lessons.__file__,\n"
        f"  'present': sorted(n for n in {sorted(not_wanted)!r} if has(n)),\n"
        f"  'absent': sorted(n for n in {sorted(runtime | {'ipykernel'})!r} if not has(n))}}))\n"
    )
    # cwd away from the checkout, whose vit_lessons/ `python -c` would import first
    out = subprocess.run(
        [str(runtime_python), "-c", probe],
        capture_output=True,
        text=True,
        env=install_venv.clean_env(runtime_python),
        cwd=runtime_python.parents[2],
    )
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["present"] == [], f"not runtime dependencies, yet installed: {facts['present']}"
    assert facts["absent"] == [], f"runtime dependencies missing: {facts['absent']}"
    assert Path(facts["course"]).is_relative_to(runtime_python.parents[1]), f"not this venv's course: {facts}"
    check = subprocess.run(
        [str(runtime_python), "-m", "pip", "check"],
        capture_output=True,
        text=True,
        env=install_venv.clean_env(runtime_python),
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_lesson_runs_in_a_runtime_only_install(lesson, runtime_python, student_folder):
    env = _kernel_env(runtime_python, student_folder / ".ipython")
    prelude = f"import sys\nassert sys.executable == {str(runtime_python)!r}, sys.executable"
    start = time.perf_counter()
    notebook = install_venv.run_notebook(lesson, runtime_python, student_folder, env, prelude=[prelude])
    print(f"\n{lesson.stem}: {time.perf_counter() - start:.1f} s")
    _assert_nothing_missing(notebook, allowed=OPTIONAL_MODULES)


# -- Colab -----------------------------------------------------------------------------------------------

FIRST_CELL = re.compile(r'^\s+%pip install (?P<options>[^"]*)"git\+(?P<url>https://[^"@]+)@(?P<ref>[^"]+)"', re.M)


def _git_env() -> dict[str, str]:
    # No GIT_DIR or the like from outside, no user or system config: only the temporary repository is touched.
    env = {k: v for k, v in install_venv.clean_env().items() if not k.startswith("GIT_")}
    return {**env, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}


def _git(repo: Path, *args: str) -> str:
    command = [
        "git",
        "-C",
        str(repo),
        "-c",
        "user.name=vit-lessons tests",
        "-c",
        "user.email=tests@localhost",
        "-c",
        "commit.gpgsign=false",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, check=True, env=_git_env()).stdout.strip()


@pytest.fixture(scope="session")
def course_repository(tmp_path_factory):
    """A git repository whose ``main`` holds this working tree's package (as GitHub's would)."""
    if shutil.which("git") is None:
        _skip_or_fail("git is not installed (Colab has it; pip needs it for git+https URLs)")
    repo = install_venv.copy_package_source(tmp_path_factory.mktemp("github") / "vit-lessons")
    _git(repo, "init", "--quiet")
    _git(repo, "symbolic-ref", "HEAD", "refs/heads/main")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "--message", "snapshot of the working tree under test")
    return repo, _git(repo, "rev-parse", "HEAD")


def _first_code_cell(notebook_path: Path) -> str:
    import nbformat

    notebook = nbformat.read(notebook_path, as_version=4)
    return next(c.source for c in notebook.cells if c.cell_type == "code")


@pytest.mark.parametrize("stem", COLAB_LESSONS)
def test_colab_first_cell_installs_the_course(stem, base_venv, course_repository, tmp_path):
    lesson = ROOT / "notebooks" / f"{stem}.ipynb"
    match = FIRST_CELL.search(_first_code_cell(lesson))
    assert match, "the first code cell must %pip install the course from a git+https URL"
    assert "--no-deps" in match["options"]
    repo, commit = course_repository

    python = install_venv.overlay_venv(base_venv, tmp_path / "colab-venv")
    env = install_venv.clean_env(python)
    before = subprocess.run(
        [str(python), "-c", "import vit_lessons"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert "No module named 'vit_lessons'" in before.stderr, "the course must not be installed before the cell"

    ipython_dir = tmp_path / ".ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "00-fake-colab.py").write_text(FAKE_COLAB)
    gitconfig = tmp_path / "gitconfig"
    subprocess.run(
        ["git", "config", "--file", str(gitconfig), f"url.{repo.as_uri()}.insteadOf", match["url"]],
        check=True,
        env=_git_env(),
    )
    env = _kernel_env(python, ipython_dir, GIT_CONFIG_GLOBAL=str(gitconfig), GIT_CONFIG_NOSYSTEM="1")

    workdir = tmp_path / "content"
    workdir.mkdir()
    start = time.perf_counter()
    notebook = install_venv.run_notebook(lesson, python, workdir, env)
    print(f"\n{stem} on fake Colab: {time.perf_counter() - start:.1f} s")
    _assert_nothing_missing(notebook)

    # The course now in the venv is the one the cell installed: from that URL and ref, at our snapshot.
    records = list(install_venv.site_packages(python).glob("vit_lessons-*.dist-info/direct_url.json"))
    assert len(records) == 1, "the first cell did not install the course into the kernel's environment"
    direct = json.loads(records[0].read_text())
    assert direct["url"] == match["url"]
    assert direct["vcs_info"]["vcs"] == "git" and direct["vcs_info"].get("requested_revision") == match["ref"]
    assert direct["vcs_info"]["commit_id"] == commit
