"""The course's trained checkpoints: which exist, how accurate they are, and how a run becomes one.

Lessons 03, 05, 09, 10, 12 and 13 use models trained by this package (``load_course_checkpoint``
in :mod:`.checkpoint` loads one by name, sha256-checked). Each ``assets/<name>.pt`` stores its
weights in fp16 (half the size; the model computes in fp32) beside a ``<name>.json`` record: the
sha256, the exact command, the hardware, the wall time, and the test accuracy of the stored weights
(:func:`evaluate_course_checkpoint`, which a test repeats wherever CIFAR-10 is available).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import torch

from .. import count_parameters, create_model
from ..data import DeviceLoader, load_cifar10, load_digits
from . import checkpoint as checkpoint_module
from .checkpoint import load_checkpoint, load_course_checkpoint, save_checkpoint
from .config import plain
from .trainer import evaluate

__all__ = ["course_checkpoints", "evaluate_course_checkpoint", "export_course_checkpoint"]


def course_checkpoints() -> list[str]:
    """Names of the shipped checkpoints (``assets/<name>.pt`` with its ``.json`` record), sorted."""
    assets = checkpoint_module.ASSETS
    return sorted(p.stem for p in assets.glob("*.json") if (assets / f"{p.stem}.pt").exists())


def _test_split(info: dict, data_dir=None):
    """The test split a checkpoint was measured on: digits, or CIFAR-10 (its classes only)."""
    if not info.get("dataset", "").startswith("CIFAR-10"):  # the offline 8×8 digits
        return load_digits()[1]
    test_set = load_cifar10(data_dir)[1]
    return test_set.select_classes(info["classes"]) if info["classes"] != list(test_set.classes) else test_set


CURVE_KEYS = ("epoch", "wall_seconds", "lr", "train_loss", "train_accuracy", "test_accuracy", "test_images")


def learning_curve(history: list[dict]) -> list[dict]:
    """The per-epoch rows a record keeps (lesson 08 draws them): time, learning rate, train and test
    accuracy (the test figure is on ``test_images`` images: the monitor set, then the whole split)."""
    return [{key: row[key] for key in CURVE_KEYS} for row in history]


def evaluate_course_checkpoint(name: str, data_dir=None, device="cpu", assets=None) -> dict:
    """Test accuracy of a shipped checkpoint on its whole test split, as its record measured it
    (fp32, flip TTA when ``tta_flip`` is recorded): ``{"accuracy", "loss", "images", "recorded"}``."""
    model, info = load_course_checkpoint(name, return_info=True, device=device, assets=assets)
    test_set = _test_split(info, data_dir)
    loader = DeviceLoader(test_set, 500, train=False, device=device)
    loss, accuracy = evaluate(model, loader, tta_flip=info.get("tta_flip", False))
    return {"accuracy": accuracy, "loss": loss, "images": len(test_set), "recorded": info["test_accuracy"]}


def _half(state_dict: dict) -> dict:
    """Floating tensors to fp16 (integer buffers such as BatchNorm's counter stay as they are)."""
    return {k: v.half() if v.is_floating_point() else v for k, v in state_dict.items()}


def export_course_checkpoint(run_dir, name: str, command: str, data_dir=None, assets=None, extra=None) -> dict:
    """Turn a finished run (``run_dir`` with ``best.pt``, ``last.pt`` and ``summary.json``) into
    ``assets/<name>.pt`` (fp16 weights) and its ``<name>.json`` record; returns the record.

    The recorded ``test_accuracy`` is measured again on the stored fp16 weights; the run's own figure
    is kept as ``run_test_accuracy``. ``extra`` adds fields (the clock scaling, notes).
    """
    run_dir, assets = Path(run_dir), Path(assets or checkpoint_module.ASSETS)
    best = torch.load(run_dir / "best.pt", map_location="cpu", weights_only=True)  # the evaluated weights only
    last = load_checkpoint(run_dir / "last.pt")
    summary = json.loads((run_dir / "summary.json").read_text())
    config = last["config"]
    state = {key: best[key] for key in ("model_name", "model_kwargs", "mean", "std", "classes")}
    save_checkpoint({**state, "model": _half(best["model"])}, assets / f"{name}.pt")
    record = {
        "sha256": checkpoint_module._sha256(assets / f"{name}.pt"),
        "command": command,
        "config": config["name"],
        "dataset": "CIFAR-10 (vit_lessons.data.load_cifar10)" if config["dataset"] == "cifar10" else config["dataset"],
        **{key: plain(value) for key, value in state.items()},
        "params": count_parameters(create_model(best["model_name"], device="meta", **best["model_kwargs"])),
        "tta_flip": bool(config.get("tta_flip", False)),
        "epochs": summary.get("epochs"),
        "precision": last.get("precision"),
        "wall_seconds": round(summary["wall_seconds"], 1),
        "train_images_per_second": round(summary["images_per_second"]),
        "run_test_accuracy": summary["test_accuracy"],
        "hardware": summary["device_name"],
        "curve": learning_curve(summary["history"]),
        "torch": torch.__version__,
        "date": datetime.date.today().isoformat(),
        **(extra or {}),
    }
    (assets / f"{name}.json").write_text(json.dumps({**record, "test_accuracy": None}, indent=1))
    record["test_accuracy"] = evaluate_course_checkpoint(name, data_dir, assets=assets)["accuracy"]
    (assets / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
