"""Settings read from the environment, in one place.

Taught in lesson 00 (``notebooks/00_setup_and_tour.ipynb``).

- ``VIT_LESSONS_QUICK=1``: quick mode (CI, smoke runs). Lessons shrink data and epochs but print the
  same shapes.
- ``VIT_LESSONS_DATA``: a data root holding CIFAR-10 (torchvision format, an ImageFolder tree or a
  ``.tar.gz`` of one).
- ``VIT_LESSONS_DEVICE``: force a device (``cpu``, ``cuda``, ``cuda:1``, ``mps``).
- ``VIT_LESSONS_OFFLINE=1``: never download (CIFAR-10, pretrained weights); say where to put the files.
- ``VIT_LESSONS_WEIGHTS``: where downloaded pretrained weights are looked for first.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

__all__ = [
    "cpu_has_native_bf16",
    "is_quick",
    "pick_device",
    "data_root",
    "seed_everything",
    "autocast_dtype",
    "environment_report",
    "cpu_model",
    "hardware_name",
    "run_banner",
    "QUICK_ENV",
    "REPO",
    "BRANCH",
]

QUICK_ENV = "VIT_LESSONS_QUICK"
# Where the course lives on GitHub: Colab badges, Binder links and the Colab install cell use these.
REPO = "vit-lessons/vit-lessons"
BRANCH = "main"


def is_quick() -> bool:
    """True when ``VIT_LESSONS_QUICK`` is set to 1/true/yes (read at call time)."""
    return os.environ.get(QUICK_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def pick_device(prefer: str | None = None) -> torch.device:
    """The device lessons run on: ``prefer``, else ``VIT_LESSONS_DEVICE``, else CUDA, MPS, CPU."""
    name = prefer or os.environ.get("VIT_LESSONS_DEVICE")
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def data_root() -> Path:
    """Where datasets live: ``VIT_LESSONS_DATA`` or ``~/.cache/vit_lessons/data``."""
    root = os.environ.get("VIT_LESSONS_DATA")
    if root:
        return Path(root).expanduser()
    return Path.home() / ".cache" / "vit_lessons" / "data"


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch (all devices) for a reproducible lesson run."""
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast_dtype(device: torch.device | str, capability: tuple[int, int] | None = None) -> torch.dtype | None:
    """The mixed-precision dtype for ``device``: None means full fp32.

    CUDA with compute capability ≥ 8.0 (A100, L4, H100) has native bf16: use it (no loss scaling
    needed). Older GPUs (T4 is 7.5) get fp16, which needs ``torch.amp.GradScaler``. We decide by
    capability, not ``torch.cuda.is_bf16_supported()``, which can say True on a T4 through
    emulation. CPU and MPS train in fp32. ``capability`` overrides the query (for tests).
    """
    device = torch.device(device)
    if device.type != "cuda":
        return None
    if capability is None:
        capability = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if capability[0] >= 8 else torch.float16


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX: recent Xeons, AMD
    Zen 4 and later). There bf16 autocast trains a ViT about twice as fast as fp32; elsewhere it is
    emulated and far slower, so the lessons use it only when this says True. Linux only (reads the
    flags in ``/proc/cpuinfo``, or ``cpuinfo`` for tests); False elsewhere."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_model() -> str:
    """The processor's marketing name ("AMD EPYC 9B45", "Apple M2"), so timings can be compared across machines.

    Linux: ``model name`` in ``/proc/cpuinfo``; macOS: ``sysctl machdep.cpu.brand_string``; else what
    :func:`platform.processor` knows (often only the architecture, e.g. ``x86_64``).
    """
    import platform
    import subprocess

    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        try:
            brand = subprocess.run(
                ["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True, timeout=5
            ).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            brand = ""
        if brand:
            return brand
    return platform.processor() or platform.machine() or "unknown CPU"


def hardware_name(device: torch.device | str | None = None) -> str:
    """The one name for the hardware behind a timing: the GPU's model, or the CPU's model, cores and threads."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = f"{cpu_model()} ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"
    if device.type == "mps":
        return f"Apple GPU (MPS) with {cpu}"
    return cpu


def run_banner(device: torch.device | str | None = None) -> str:
    """The line each lesson prints first: the device and hardware it runs on, and the mode and how to switch."""
    device = torch.device(device or pick_device())
    mode = (
        "quick mode (VIT_LESSONS_QUICK=1: less data and fewer epochs, same code)"
        if is_quick()
        else "full mode (for the quick mode set VIT_LESSONS_QUICK=1 before starting Jupyter)"
    )
    return f"device: {device} ({hardware_name(device)}) | {mode}"


def environment_report() -> dict[str, str]:
    """Versions and hardware a lesson's numbers depend on (printed by the setup lesson)."""
    import platform

    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu threads": str(torch.get_num_threads()),
    }
    for package in ("torchvision", "ipywidgets", "jupyterlab_widgets", "timm"):
        try:
            module = __import__(package)
            report[package] = getattr(module, "__version__", "?")
        except ImportError:
            report[package] = "not installed"
    device = pick_device()
    report["device"] = str(device)
    if device.type == "cuda":
        capability = torch.cuda.get_device_capability(device)
        report["gpu"] = torch.cuda.get_device_name(device)
        report["compute capability"] = f"{capability[0]}.{capability[1]}"
    dtype = autocast_dtype(device)
    report["mixed precision"] = {
        None: "none (fp32)",
        torch.bfloat16: "bf16 autocast",
        torch.float16: "fp16 autocast + GradScaler",
    }[dtype]
    return report
