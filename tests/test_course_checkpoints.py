"""The course's shipped checkpoints: records complete, files small and verified, accuracies reproduced.

Every checkpoint is evaluated on its whole test split and must reproduce its recorded accuracy to
±0.2 points. The CIFAR-10 ones need the data: `make test` passes the course archive through
VIT_LESSONS_DATA; without it those cases are skipped (the digits one always runs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from vit_lessons import count_parameters, create_model
from vit_lessons.cnn import ResNet9
from vit_lessons.data import ArrayDataset
from vit_lessons.train import (
    CheckpointError,
    course_checkpoints,
    evaluate_course_checkpoint,
    export_course_checkpoint,
    get_config,
    load_course_checkpoint,
    train,
)
from vit_lessons.train import checkpoint as checkpoint_module
from vit_lessons.train.precision import resolve_precision
from vit_lessons.train.trainer import Trainer, make_optimizer

MB = 1_000_000
RECORD_KEYS = {"sha256", "command", "hardware", "wall_seconds", "test_accuracy", "date", "model_name", "classes"}
CIFAR = os.environ.get("VIT_LESSONS_DATA", "")
HAVE_CIFAR = bool(CIFAR) and Path(CIFAR).exists() and "cifar" in Path(CIFAR).name.lower()


def _record(name: str) -> dict:
    return json.loads((checkpoint_module.ASSETS / f"{name}.json").read_text())


@pytest.mark.parametrize("name", course_checkpoints())
def test_every_record_is_complete_and_every_file_small(name):
    record = _record(name)
    assert RECORD_KEYS <= set(record), f"{name}.json lacks {sorted(RECORD_KEYS - set(record))}"
    assert (checkpoint_module.ASSETS / f"{name}.pt").stat().st_size <= 5 * MB
    assert 0 < record["test_accuracy"] <= 1 and record["wall_seconds"] > 0
    if record["dataset"].startswith("CIFAR"):  # lesson 08 draws the learning curves of these runs
        curve = record["curve"]
        assert [row["epoch"] for row in curve] == list(range(1, record["epochs"] + 1))
        assert curve[-1]["test_accuracy"] == record["run_test_accuracy"]


def test_all_checkpoints_together_stay_under_15_mb():
    total = sum((checkpoint_module.ASSETS / f"{name}.pt").stat().st_size for name in course_checkpoints())
    assert total <= 15 * MB, f"{total / MB:.1f} MB of course checkpoints"


@pytest.mark.parametrize("name", course_checkpoints())
def test_every_checkpoint_reproduces_its_recorded_accuracy(name):
    if _record(name)["dataset"].startswith("CIFAR") and not HAVE_CIFAR:
        pytest.skip("CIFAR-10 not available: set VIT_LESSONS_DATA to the course archive (make test does)")
    result = evaluate_course_checkpoint(name, CIFAR or None)
    assert result["accuracy"] == pytest.approx(result["recorded"], abs=0.002), result


def test_loading_moves_to_a_device_and_fp16_storage_becomes_fp32(tmp_path):
    model = load_course_checkpoint("digits_vit", device="meta")
    assert next(model.parameters()).device.type == "meta"
    assert not model.training


# -- a run becomes a checkpoint ---------------------------------------------------------------------
@pytest.mark.usefixtures("one_thread")
def test_export_stores_fp16_records_everything_and_measures_the_stored_weights(tmp_path):
    config = get_config("digits", epochs=2, per_class_train=20)
    summary = train(config, out=tmp_path / "run", progress=False, log=None)
    record = export_course_checkpoint(
        tmp_path / "run", "tiny", "python -m vit_lessons.train --config digits", assets=tmp_path
    )
    stored = torch.load(tmp_path / "tiny.pt", weights_only=True)
    assert all(v.dtype == torch.float16 for v in stored["model"].values() if v.is_floating_point())
    assert RECORD_KEYS <= set(record) and record["run_test_accuracy"] == summary["test_accuracy"]
    assert [row["epoch"] for row in record["curve"]] == [1, 2]
    assert record["curve"][-1]["test_accuracy"] == summary["test_accuracy"]
    assert json.loads((tmp_path / "tiny.json").read_text()) == record
    # the recorded accuracy is that of the fp16 weights, loaded into an fp32 model
    model = load_course_checkpoint("tiny", assets=tmp_path)
    assert next(model.parameters()).dtype == torch.float32
    assert evaluate_course_checkpoint("tiny", assets=tmp_path)["accuracy"] == record["test_accuracy"]
    assert abs(record["test_accuracy"] - summary["test_accuracy"]) <= 0.01  # fp16 rounding moves little
    data = bytearray((tmp_path / "tiny.pt").read_bytes())
    data[-64] ^= 0xFF
    (tmp_path / "tiny.pt").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="tiny.pt has sha256"):
        load_course_checkpoint("tiny", assets=tmp_path)


# -- what the recipes behind the checkpoints need ---------------------------------------------------
def _ten_classes(count: int = 40) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    classes = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
    return ArrayDataset(images, np.arange(count) % 10, classes, (0.5,) * 3, (0.25,) * 3)


def test_select_classes_keeps_only_those_images_and_relabels_in_the_order_given():
    data = _ten_classes()
    animals = data.select_classes(["dog", "cat"])
    assert animals.classes == ("dog", "cat") and len(animals) == 8
    assert set(animals.labels.tolist()) == {0, 1}
    dogs = data.images[data.labels == 5]
    assert np.array_equal(animals.images[animals.labels == 0], dogs)
    assert data.select_classes(None) is data
    with pytest.raises(ValueError, match="unknown: \\['lion'\\]"):
        data.select_classes(["cat", "lion"])
    with pytest.raises(ValueError, match="distinct"):
        data.select_classes(["cat", "cat"])


@pytest.mark.usefixtures("one_thread")
def test_a_model_with_the_wrong_number_of_outputs_is_refused(fake_cifar):
    config = get_config(
        "cifar10-quick", classes=["cat", "dog"], per_class_train=2, per_class_test=2, epochs=1, batch_size=2
    )
    with pytest.raises(ValueError, match="predicts 10 classes but the data has 2 .*model_kwargs.num_classes=2"):
        train(config, data_dir=fake_cifar, progress=False, log=None)
    with pytest.raises(ValueError, match="classes selects CIFAR-10 classes"):
        get_config("digits", classes=["0", "1"])


@pytest.mark.usefixtures("one_thread")
def test_the_animals_recipe_trains_a_six_class_model(fake_cifar, tmp_path):
    config = get_config(
        "cifar10-animals-vit", time_budget=None, epochs=1, per_class_train=2, per_class_test=2, batch_size=4
    )
    config.model_kwargs = dict(config.model_kwargs, depth=1)
    summary = train(config, data_dir=fake_cifar, out=tmp_path, progress=False, log=None)
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    assert state["classes"] == ["bird", "cat", "deer", "dog", "frog", "horse"]
    assert state["model"]["head.weight"].shape[0] == 6 and summary["epochs"] == 1


def test_resnet9_shapes_parameters_and_bad_input():
    model = create_model("resnet9_cifar")
    assert isinstance(model, ResNet9) and count_parameters(model) == 2_001_722
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="widths must be 4 positive ints"):
        ResNet9(widths=(32, 64))
    with pytest.raises(ValueError, match="expected images of shape"):
        model(torch.randn(3, 32, 32))


def test_the_sgd_recipe_builds_nesterov_sgd_without_decay_on_norms():
    config = get_config("cifar10-cnn")
    model = create_model(config.model)
    optimizer = make_optimizer(model, config)
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["nesterov"]
    decayed, undecayed = optimizer.param_groups
    assert decayed["weight_decay"] == config.weight_decay and undecayed["weight_decay"] == 0.0
    assert all(p.ndim == 4 or p.ndim == 2 for p in decayed["params"])  # conv and linear weights only
    trainer = Trainer(model, config, resolve_precision("fp32", "cpu"), "cpu", steps_per_epoch=10)
    assert trainer.optimizer.__class__ is torch.optim.SGD
    with pytest.raises(ValueError, match="optimizer must be 'adamw' or 'sgd'"):
        get_config("cifar10-cnn", optimizer="adam")
