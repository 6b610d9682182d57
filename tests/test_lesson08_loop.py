"""Lesson 08 writes the training step out by hand and says it equals ``Trainer.step``: checked here on
both data paths the lesson can take (CIFAR-10 with the CPU recipe, the digits fallback), with the
lesson's own code read from its source."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.lessons import lesson_functions

from vit_lessons.data import ArrayDataset, DeviceLoader, load_digits
from vit_lessons.settings import seed_everything
from vit_lessons.train import Trainer, build_model, get_config, resolve_precision
from vit_lessons.train.trainer import warmup_cosine

LESSON = Path(__file__).resolve().parents[1] / "notebooks" / "src" / "08_training_cifar10.py"


def _lesson_functions() -> dict:
    """``train_steps`` exactly as lesson 08 defines it (its schedule is the package's ``warmup_cosine``)."""
    return lesson_functions(
        "08_training_cifar10", {"train_steps"}, {"torch": torch, "F": F, "warmup_cosine": warmup_cosine}
    )


def _fake_cifar(count: int = 96) -> ArrayDataset:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    return ArrayDataset(images, np.arange(count) % 10, tuple(str(i) for i in range(10)), (0.5,) * 3, (0.25,) * 3)


PATHS = {
    # the lesson's CPU recipe (hybrid ViT, explicit attention, channels-last in the Trainer)
    "cifar10-cpu": lambda: (get_config("cifar10-cpu", time_budget=8.0), _fake_cifar()),
    # the fallback the lesson takes when CIFAR-10 is missing
    "digits": lambda: (get_config("digits", epochs=3), load_digits()[0]),
}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_the_written_out_loop_equals_trainer_step(path):
    lesson = _lesson_functions()
    config, train_set = PATHS[path]()
    small = dataclasses.replace(config, model_kwargs={**config.model_kwargs, "depth": 1}, ema_decay=None)
    seed_everything(0)
    mine = lesson["train_steps"](build_model(small), DeviceLoader(train_set, 32, train=True), small, steps=3)
    seed_everything(0)
    steps_per_epoch = len(DeviceLoader(train_set, 32, train=True))
    reference = Trainer(build_model(small), small, resolve_precision("fp32", "cpu"), "cpu", steps_per_epoch)
    for _, (images, labels) in zip(range(3), DeviceLoader(train_set, 32, train=True)):
        reference.step(images, labels)
    ours, theirs = mine.state_dict(), reference.model.state_dict()
    moved = max((ours[k].float() - theirs[k].float()).abs().max().item() for k in ours)
    assert all(torch.allclose(ours[k], theirs[k], atol=1e-6) for k in ours), f"largest difference {moved:.2e}"
    # and the step did something: three steps move the weights far more than the tolerance
    seed_everything(0)
    start = build_model(small).state_dict()
    assert max((start[k].float() - theirs[k].float()).abs().max().item() for k in start) > 1e-3
