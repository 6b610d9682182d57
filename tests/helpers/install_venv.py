"""Virtual environments as students get them, and lessons run in their kernels (for ``tests/test_installs.py``).

- :func:`base_venv`: a fresh ``python -m venv`` holding what ``pip install .`` brings (the runtime
  dependencies of ``pyproject.toml``, no ``[dev]``) plus ``ipykernel``, and then *not* the course package
  itself: what a student's machine has after ``pip install vit-lessons`` minus the course, and what Colab
  has preinstalled. Built once and cached under ``.cache/runtime-venv/<key>`` (the key hashes
  ``pyproject.toml`` and the Python version), guarded by a file lock so two sessions never build it at once.
- :func:`overlay_venv`: a throw-away venv that sees the base venv's packages through a ``.pth`` file (as
  ``--system-site-packages`` sees the system's) and installs into its own site-packages. The runtime test
  ``pip install``\\ s a copy of the checkout into one; the Colab test leaves that to the lesson's first cell.
- :func:`run_notebook`: execute a notebook with ``nbclient`` in a kernel of a given interpreter (a kernel
  spec in a temporary directory), in a clean environment: no ``PYTHONPATH``, ``VIRTUAL_ENV`` or dev venv on
  ``PATH`` leaks into it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "runtime-venv"
KERNEL_NAME = "vit-lessons-under-test"

# What pip prints when it cannot reach an index; anything else failing is a real failure.
NETWORK_ERRORS = (
    "NewConnectionError",
    "Failed to establish a new connection",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ProxyError",
)

# Environment variables that would let the dev environment (or the user's set-up) leak into a kernel.
LEAKY = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "VIRTUAL_ENV",
    "CONDA_PREFIX",
    "JUPYTER_PATH",
    "JUPYTER_CONFIG_DIR",
    "JUPYTER_DATA_DIR",
    "IPYTHONDIR",
    "MPLBACKEND",
    "PYTHONNOUSERSITE",
)


_HELD_LOCKS: list = []  # open lock files of the venvs this process uses


class CannotBuild(RuntimeError):
    """pip could not reach a package index: the install tests cannot run on this machine."""


def cache_key() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(f"{sys.version}|{sys.platform}|{os.uname().machine}".encode())
    return digest.hexdigest()[:16]


def copy_package_source(dest: Path) -> Path:
    """What ``pip install .`` reads: the top-level files (pyproject.toml, README.md, ...) and ``vit_lessons/``.

    Building from a copy keeps setuptools' ``build/`` and ``*.egg-info`` out of the shared checkout."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in ROOT.iterdir():
        if path.is_file() and not path.name.startswith("."):
            shutil.copy2(path, dest / path.name)
    shutil.copytree(
        ROOT / "vit_lessons", dest / "vit_lessons", ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    )
    return dest


def clean_env(python: Path | None = None, **extra: str) -> dict[str, str]:
    """os.environ without what would leak the dev environment, with ``python``'s bin first on PATH."""
    env = {k: v for k, v in os.environ.items() if k not in LEAKY and not k.startswith("JPY_")}
    dev_bins = {str(Path(sys.prefix) / "bin"), str(Path(sys.executable).parent)}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and p not in dev_bins]
    if python is not None:
        path.insert(0, str(Path(python).parent))
    env["PATH"] = os.pathsep.join(path)
    env["PYTHONNOUSERSITE"] = "1"  # ~/.local is not part of the install under test
    env.update(extra)
    return env


def _run(command: list, log: Path, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None):
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(map(str, command))}\n")
        out.flush()
        start = time.perf_counter()
        result = subprocess.run(
            [str(c) for c in command],
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
            env=env or clean_env(),
            cwd=cwd,
        )
        out.write(f"[exit {result.returncode} after {time.perf_counter() - start:.1f} s]\n")
    if result.returncode:
        text = log.read_text(errors="replace")
        tail = text[-4000:]
        if any(marker in text for marker in NETWORK_ERRORS):
            raise CannotBuild(f"pip could not reach a package index ({log}):\n{tail}")
        raise RuntimeError(f"{command[:4]} failed with exit {result.returncode} (log: {log}):\n{tail}")
    return result


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
        env=clean_env(python),
    )
    return Path(out.stdout.strip())


def base_venv(timeout: float = 1500) -> tuple[Path, dict]:
    """The cached base venv (see the module docstring) and facts about its build: {"built_s": seconds or None}."""
    CACHE.mkdir(parents=True, exist_ok=True)
    key = cache_key()
    venv = CACHE / key
    marker = venv / "complete.json"
    lock = open(CACHE / f"{key}.lock", "w")  # noqa: SIM115 (held, shared, until this process ends)
    _HELD_LOCKS.append(lock)
    fcntl.flock(lock, fcntl.LOCK_SH)  # sessions that find it built share it
    if marker.is_file():
        _prune_other_keys(key)
        return venv, {**json.loads(marker.read_text()), "built_s": None}
    fcntl.flock(lock, fcntl.LOCK_EX)  # one session builds (flock drops the shared lock first: no deadlock)
    try:
        if marker.is_file():  # another session built it meanwhile
            return venv, {**json.loads(marker.read_text()), "built_s": None}
        shutil.rmtree(venv, ignore_errors=True)
        log = CACHE / f"{key}.log"
        log.write_text(f"building {venv} for {ROOT / 'pyproject.toml'}\n")
        start = time.perf_counter()
        source = copy_package_source(CACHE / f"{key}.src")
        try:
            _run([sys.executable, "-m", "venv", venv], log, 300)
            py = python_of(venv)
            env = clean_env(py)
            # What a student types, plus the kernel every Jupyter has; nothing from [dev].
            _run([py, "-m", "pip", "install", "--quiet", source, "ipykernel>=6.0"], log, timeout, env=env)
            # The course itself goes into each overlay instead (the runtime test) or comes from the
            # lesson's first cell (the Colab test).
            _run([py, "-m", "pip", "uninstall", "--yes", "--quiet", "vit-lessons"], log, 300, env=env)
            _run([py, "-m", "pip", "check"], log, 300, env=env)
            freeze = subprocess.run(
                [str(py), "-m", "pip", "freeze", "--all"], capture_output=True, text=True, check=True, env=env
            ).stdout.split()
        except BaseException:
            shutil.rmtree(venv, ignore_errors=True)
            raise
        finally:
            shutil.rmtree(source, ignore_errors=True)
        built_s = time.perf_counter() - start
        marker.write_text(json.dumps({"build_seconds": round(built_s, 1), "freeze": freeze}, indent=1))
    finally:
        # Built or found: keep a shared lock while this process may use the venv, so that no other session
        # prunes it (see _prune_other_keys); others may read it at the same time.
        fcntl.flock(lock, fcntl.LOCK_SH)
    _prune_other_keys(key)
    return venv, {"build_seconds": round(built_s, 1), "freeze": freeze, "built_s": built_s}


def _prune_other_keys(keep: str) -> None:
    """Remove venvs built for an older pyproject.toml (several GB each) unless a session still holds them
    (building one holds its lock exclusively, using one holds it shared)."""
    for lock_path in CACHE.glob("*.lock"):
        key = lock_path.stem
        if key == keep:
            continue
        with open(lock_path, "w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            shutil.rmtree(CACHE / key, ignore_errors=True)
            for leftover in (CACHE / f"{key}.log", CACHE / f"{key}.src"):
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)
        lock_path.unlink(missing_ok=True)


def overlay_venv(base: Path, dest: Path) -> Path:
    """A venv in ``dest`` that sees ``base``'s packages (read-only, after its own) and installs into itself.

    ``base`` must have been made by the same interpreter. Returns the overlay's python."""
    base_py = python_of(base)
    subprocess.run([str(base_py), "-m", "venv", "--without-pip", str(dest)], check=True, env=clean_env(base_py))
    py = python_of(dest)
    own = site_packages(py)
    # site.addsitedir also runs the base's own .pth files, as --system-site-packages would.
    (own / "_vit_lessons_tests_base.pth").write_text(f"import site; site.addsitedir({str(site_packages(base_py))!r})\n")
    return py


def pip_install(python: Path, requirement: str | Path, log: Path, timeout: float = 600) -> None:
    _run([python, "-m", "pip", "install", "--quiet", requirement], log, timeout, env=clean_env(python))


@contextlib.contextmanager
def kernel_spec_dir(python: Path, root: Path):
    """A kernels/ folder holding one spec that launches ``python``'s ipykernel."""
    spec = root / "kernels" / KERNEL_NAME
    spec.mkdir(parents=True, exist_ok=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "vit-lessons under test",
                "language": "python",
            }
        )
    )
    yield root / "kernels"


def run_notebook(
    path: Path, python: Path, workdir: Path, env: dict[str, str], timeout: int = 300, prelude: list[str] = ()
):
    """Execute the notebook at ``path`` in a kernel of ``python``, with cwd ``workdir``; raise on a cell error.

    ``prelude`` cells run first (in the same kernel). Returns the executed notebook."""
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    for index, source in enumerate(prelude):
        notebook.cells.insert(index, nbformat.v4.new_code_cell(source))
    with kernel_spec_dir(python, workdir / ".kernel-spec") as kernels:
        specs = KernelSpecManager(kernel_dirs=[str(kernels)], ensure_native_kernel=False)
        km = KernelManager(kernel_name=KERNEL_NAME, kernel_spec_manager=specs)
        client = NotebookClient(
            notebook,
            km=km,
            timeout=timeout,
            startup_timeout=180,
            kernel_name=KERNEL_NAME,
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute(env=env, cwd=str(workdir))
    return notebook


def outputs_text(notebook) -> str:
    """Everything the cells printed (streams and plain-text results)."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            if output.output_type == "stream":
                parts.append(output.text)
            elif "data" in output:
                parts.append(output.data.get("text/plain", ""))
    return "\n".join(parts)
