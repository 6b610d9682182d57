"""Checkpoints that never lose work: atomic saves, clear errors, RNG state, and the course's shipped models.

Lesson 08, section 7 teaches it. ``last.pt`` holds everything a run needs to continue bit for bit
on the CPU (model, optimizer, scheduler, scaler, EMA, epoch, RNG states); it is written to a
temporary file and renamed, so a crash mid-save never destroys the previous good one. The course
checkpoints in ``vit_lessons/assets`` are verified against the sha256 recorded beside them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from .. import create_model
from .config import TrainConfig, plain

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "save_checkpoint",
    "load_checkpoint",
    "check_compatible",
    "rng_state",
    "set_rng_state",
    "load_course_checkpoint",
]

CHECKPOINT_FORMAT = "vit_lessons.train/1"
ASSETS = Path(__file__).resolve().parents[1] / "assets"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: truncated, corrupt, or from a different model/dataset."""


def save_checkpoint(state: dict, path: str | Path) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    The rename is atomic, so ``path`` holds either the old checkpoint or the complete new one, never
    a half-written file; if saving fails the temporary file is removed and the error re-raised.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        torch.save(on_cpu(state), temp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def on_cpu(value):
    """``value`` with every tensor in it (in dicts, lists, tuples) copied to the CPU.

    A GPU run's checkpoint then opens anywhere: ``torch.load`` without ``map_location`` on a machine
    without CUDA raises for CUDA tensors.
    """
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {key: on_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(on_cpu(item) for item in value)
    return value


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a training checkpoint with ``weights_only=True``; :class:`CheckpointError` if unusable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # truncated zip, bad pickle, wrong file
        raise CheckpointError(
            f"checkpoint {path} is unreadable (truncated or corrupt: {type(error).__name__}: {error}). "
            "Delete it to start over, or resume from another --out folder"
        ) from error
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a vit_lessons training checkpoint ({CHECKPOINT_FORMAT})")
    return state


def check_compatible(state: dict, config: TrainConfig, path: Path) -> None:
    """Refuse to resume a checkpoint of another model or dataset; warn when the planned epochs differ."""
    saved = state["config"]
    for key in ("dataset", "model", "model_kwargs"):
        if plain(saved.get(key)) != plain(getattr(config, key)):
            raise CheckpointError(
                f"checkpoint {path} was trained with {key}={saved.get(key)!r}, but this run uses "
                f"{key}={getattr(config, key)!r}; use a new --out folder or the matching --config"
            )
    if saved.get("epochs") != config.epochs:
        warnings.warn(
            f"checkpoint {path} was planned for {saved.get('epochs')} epochs, this run for "
            f"{config.epochs}: the learning-rate schedule changes from here on"
        )


# -- random number generators ----------------------------------------------------------------------
def rng_state() -> dict:
    """Every generator a run draws from (torch CPU and CUDA, NumPy, Python), as checkpoint-safe tensors."""
    numpy_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [numpy_state[0], torch.from_numpy(numpy_state[1].astype(np.int64)), *numpy_state[2:]],
        "python": plain(random.getstate()),
    }


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        # One state per GPU visible when saved; fewer may be visible now (saved under torchrun on 4 GPUs,
        # resumed on one): torch.cuda.set_rng_state_all would raise IndexError. Restore those that exist.
        for index, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda_state, index)
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# -- the course's small trained checkpoints -------------------------------------------------------
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_course_checkpoint(name: str = "cifar10_vit", return_info: bool = False, device=None, assets=None):
    """A model trained by this package and shipped in ``vit_lessons/assets`` (sha256-checked), in eval mode.

    ``name`` is the file stem (``assets/<name>.pt`` with its sidecar ``<name>.json`` giving the sha256,
    the command that made it, its accuracy, and the normalisation ``mean``/``std``). Weights stored in
    fp16 are loaded into the fp32 model. With ``return_info`` returns ``(model, info)``; ``device``
    moves the model there; ``assets`` is another folder of such files.
    """
    assets = Path(assets) if assets is not None else ASSETS
    available = sorted(p.stem for p in assets.glob("*.json") if (assets / f"{p.stem}.pt").exists())
    if name not in available:
        raise ValueError(f"no course checkpoint {name!r}; available: {', '.join(available) or 'none'}")
    info = json.loads((assets / f"{name}.json").read_text())
    path = assets / f"{name}.pt"
    actual = _sha256(path)
    if actual != info["sha256"]:
        raise CheckpointError(
            f"checkpoint {path} has sha256 {actual}, expected {info['sha256']}: the file is "
            "damaged or was replaced; reinstall the package or re-run the command in its .json"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    model = create_model(state["model_name"], **state["model_kwargs"])
    model.load_state_dict(state["model"])  # fp16 values are copied into the fp32 parameters
    model.eval()
    if device is not None:
        model = model.to(device)
    return (model, info) if return_info else model
