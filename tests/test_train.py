"""Training: AMP policy, digits accuracy in time, bit-exact resume, checkpoint errors, atomic saves,
non-finite steps, the GPU recipe on a CPU, and torchrun with two processes."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from vit_lessons.train import (
    CheckpointError,
    Trainer,
    get_config,
    load_checkpoint,
    main,
    resolve_precision,
    save_checkpoint,
    train,
)
from vit_lessons.train import checkpoint as checkpoint_module

ROOT = Path(__file__).resolve().parents[1]


pytestmark = pytest.mark.usefixtures("one_thread")


# -- AMP policy ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "capability,name,dtype,scaler",
    [
        ((7, 5), "fp16", torch.float16, True),
        ((8, 0), "bf16", torch.bfloat16, False),
        ((9, 0), "bf16", torch.bfloat16, False),
        ((6, 1), "fp16", torch.float16, True),
    ],
)
def test_auto_precision_follows_compute_capability(capability, name, dtype, scaler):
    policy = resolve_precision("auto", "cuda", capability=capability)
    assert (policy.name, policy.dtype, policy.use_scaler) == (name, dtype, scaler)


def test_precision_on_cpu_and_bad_requests():
    assert resolve_precision("auto", "cpu").dtype is None
    assert resolve_precision("bf16", "cpu").dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 training needs a CUDA GPU"):
        resolve_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="precision must be auto, fp32, bf16 or fp16"):
        resolve_precision("half", "cpu")
    with pytest.warns(UserWarning, match="compute capability 7.5 is emulated"):
        resolve_precision("bf16", "cuda", capability=(7, 5))


def test_config_errors():
    with pytest.raises(ValueError, match="unknown config 'cifar100'"):
        get_config("cifar100")
    with pytest.raises(ValueError, match="TrainConfig has no field 'epoch'"):
        get_config("digits", epoch=3)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        get_config("digits", epochs=0)
    with pytest.raises(SystemExit):
        main(["--config", "nope"])


# -- digits: the CPU target ----------------------------------------------------------------------
def test_digits_reaches_97_percent_within_two_minutes(tmp_path):
    summary = train("digits", out=tmp_path, progress=False, log=None)
    assert summary["test_accuracy"] >= 0.97, summary["history"][-1]
    # The target is 2 minutes on 2 cores. Other jobs share this machine, so wall time measures them as
    # much as us: require the process's CPU time (all threads) to fit in 2 minutes of ONE core.
    assert summary["cpu_seconds"] <= 120, summary["cpu_seconds"]
    saved = json.loads((tmp_path / "summary.json").read_text())
    for key in ("test_accuracy", "wall_seconds", "images_per_second", "device", "precision", "epochs", "params"):
        assert key in saved
    assert saved["test_accuracy"] == summary["test_accuracy"] and saved["precision"] == "fp32"
    assert len(json.loads((tmp_path / "metrics.json").read_text())) == summary["epochs"]
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,lr,train_loss")
    last = torch.load(tmp_path / "last.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "rng"} <= set(last) and last["epoch"] == summary["epochs"]


# -- resume ----------------------------------------------------------------------------------------
def _tiny(**overrides):
    # 200 digits, batch 32, dropout paths and EMA on: everything that consumes RNG or carries state.
    settings = dict(
        epochs=2,
        batch_size=32,
        per_class_train=20,
        per_class_test=10,
        model_kwargs=dict(drop_path_rate=0.1, drop_rate=0.1),
        ema_decay=0.9,
    )
    settings.update(overrides)
    return get_config("digits", **settings)


def test_resume_is_bit_exact(tmp_path):
    straight, a = train(_tiny(), out=tmp_path / "a", progress=False, log=None, return_trainer=True)
    first = train(_tiny(), out=tmp_path / "b", progress=False, log=None, stop_after=1)
    assert first["epochs"] == 1
    resumed, b = train(_tiny(), out=tmp_path / "b", resume=True, progress=False, log=None, return_trainer=True)
    assert resumed["epochs"] == 2
    json.dumps(straight)  # the summary is plain JSON: the trainer comes separately
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    for key, value in a.ema.state_dict().items():
        assert torch.equal(value, b.ema.state_dict()[key]), f"ema {key}"
    state_a, state_b = a.optimizer.state_dict()["state"], b.optimizer.state_dict()["state"]
    assert all(torch.equal(state_a[i]["exp_avg_sq"], state_b[i]["exp_avg_sq"]) for i in state_a)
    assert straight["history"][1]["test_loss"] == resumed["history"][1]["test_loss"]


def test_truncated_checkpoint_is_named(tmp_path):
    train(_tiny(epochs=1), out=tmp_path, progress=False, log=None)
    path = tmp_path / "last.pt"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=rf"checkpoint {path} is unreadable \(truncated or corrupt"):
        train(_tiny(), out=tmp_path, resume=True, progress=False, log=None)


def test_mismatched_checkpoint_is_named(tmp_path):
    train(_tiny(epochs=1), out=tmp_path, progress=False, log=None)
    other = _tiny(model_kwargs=dict(embed_dim=32))
    with pytest.raises(CheckpointError, match=rf"checkpoint {tmp_path / 'last.pt'} was trained with model_kwargs="):
        train(other, out=tmp_path, resume=True, progress=False, log=None)
    not_ours = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(2)}, not_ours)
    with pytest.raises(CheckpointError, match="not a vit_lessons training checkpoint"):
        load_checkpoint(not_ours)


def test_failed_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": "x", "value": torch.arange(5)}, path)
    good = path.read_bytes()
    real_save = torch.save

    def crash_midway(obj, target, *args, **kwargs):
        real_save({"partial": torch.zeros(1000)}, target)  # bytes reach the temp file ...
        raise OSError("disk full")  # ... then the save dies

    monkeypatch.setattr(torch, "save", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"format": "x", "value": torch.arange(7)}, path)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"], "the temporary file must be removed"


# -- non-finite steps ----------------------------------------------------------------------------
class _Poisoned(nn.Module):
    """A linear classifier whose output turns NaN while ``poisoned`` is set."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 10)
        self.poisoned = False

    def forward(self, images):
        logits = self.linear(images)
        return logits * float("nan") if self.poisoned else logits


def test_non_finite_loss_skips_then_stops():
    config = get_config("digits", max_bad_steps=3)
    model = _Poisoned()
    trainer = Trainer(model, config, resolve_precision("fp32", "cpu"), "cpu", steps_per_epoch=10)
    images, labels = torch.randn(8, 4), torch.arange(8)
    loss, _ = trainer.step(images, labels)
    assert loss is not None and torch.isfinite(loss)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.poisoned = True
    for _ in range(2):
        with pytest.warns(UserWarning, match="non-finite loss .* step skipped"):
            assert trainer.step(images, labels)[0] is None
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "a skipped step changed weights"
    assert all(torch.isfinite(p).all() for p in model.parameters())
    model.poisoned = False
    assert trainer.step(images, labels)[0] is not None and trainer.bad_steps == 0  # the count resets
    model.poisoned = True
    with pytest.warns(UserWarning), pytest.raises(FloatingPointError, match="3 consecutive non-finite"):
        for _ in range(3):
            trainer.step(images, labels)


# -- CIFAR-10 configs on a fake dataset ----------------------------------------------------------
@pytest.mark.parametrize("name", ["cifar10", "cifar10-cpu", "cifar10-quick"])
def test_cifar_recipes_run_a_few_steps_on_cpu(name, fake_cifar, tmp_path):
    config = get_config(name, epochs=1, batch_size=16, per_class_train=4, per_class_test=2)
    summary = train(config, data_dir=fake_cifar, out=tmp_path, progress=False, log=None)
    row = summary["history"][0]
    assert np.isfinite(row["train_loss"]) and summary["skipped_steps"] == 0
    assert summary["epochs"] == 1 and (tmp_path / "best.pt").exists()


# -- torchrun --------------------------------------------------------------------------------------
def _torchrun_digits(tmp_path, *arguments):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "vit_lessons.train", "--config", "digits", "--device", "cpu", "--out", str(tmp_path)]
    command += ["--no-progress", *arguments]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    return result, json.loads((tmp_path / "summary.json").read_text())


def test_torchrun_with_a_time_budget_stops_every_rank_at_the_same_step(tmp_path):
    # Each rank reads its own clock; they share the largest progress, so both stop together (a rank
    # left waiting in an all-reduce would hang until the timeout).
    result, summary = _torchrun_digits(tmp_path, "--time-budget", "8", "--epochs", "1000")
    assert summary["world_size"] == 2 and summary["history"][-1]["final"] and summary["epochs"] < 1000
    assert result.stdout.count("done: test accuracy") == 1, result.stdout


def test_torchrun_two_cpu_processes(tmp_path):
    start = time.perf_counter()
    result, summary = _torchrun_digits(tmp_path, "--epochs", "1")
    assert summary["world_size"] == 2 and summary["epochs"] == 1
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    # rank 0 alone prints: one "done" line, not two
    assert result.stdout.count("done: test accuracy") == 1, result.stdout
    # 450 test images split over two ranks and summed: the accuracy is a multiple of 1/450
    assert abs(summary["test_accuracy"] * 450 - round(summary["test_accuracy"] * 450)) < 1e-6
    assert time.perf_counter() - start < 180
    load_checkpoint(tmp_path / "last.pt")


# -- the committed course checkpoint -------------------------------------------------------------
def test_course_checkpoint_loads_verified_and_reproduces_its_accuracy():
    from vit_lessons.data import DeviceLoader, load_digits
    from vit_lessons.train import evaluate, load_course_checkpoint

    model, info = load_course_checkpoint("digits_vit", return_info=True)
    _, test_set = load_digits()
    assert tuple(test_set.mean) == pytest.approx(tuple(info["mean"]))
    _, accuracy = evaluate(model, DeviceLoader(test_set, 256, train=False))
    assert accuracy == pytest.approx(info["test_accuracy"], abs=1e-9) and accuracy >= 0.97
    with pytest.raises(ValueError, match="no course checkpoint 'cifar100_vit'; available: .*digits_vit"):
        load_course_checkpoint("cifar100_vit")


def test_course_checkpoint_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    import shutil

    for suffix in (".pt", ".json"):
        shutil.copy(checkpoint_module.ASSETS / f"digits_vit{suffix}", tmp_path / f"digits_vit{suffix}")
    data = bytearray((tmp_path / "digits_vit.pt").read_bytes())
    data[-100] ^= 0xFF
    (tmp_path / "digits_vit.pt").write_bytes(bytes(data))
    monkeypatch.setattr(checkpoint_module, "ASSETS", tmp_path)
    with pytest.raises(CheckpointError, match=r"digits_vit.pt has sha256 .* expected 31f24df9"):
        checkpoint_module.load_course_checkpoint("digits_vit")


def test_distillation_from_a_teacher_checkpoint(tmp_path):
    train(_tiny(epochs=1), out=tmp_path / "teacher", progress=False, log=None)
    teacher_path = tmp_path / "teacher" / "best.pt"
    train(_tiny(epochs=1), out=tmp_path / "plain", progress=False, log=None)
    soft = train(
        _tiny(epochs=1), out=tmp_path / "soft", progress=False, log=None, teacher=str(teacher_path), distill="soft"
    )
    assert 0.0 <= soft["test_accuracy"] <= 1.0
    # The teacher term changes the loss, so the same seed and data give different weights.
    plain_state = torch.load(tmp_path / "plain" / "last.pt", weights_only=True)["model"]
    soft_state = torch.load(tmp_path / "soft" / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(plain_state[k], soft_state[k]) for k in plain_state)


def test_distill_flag_needs_a_teacher_and_matching_classes(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["--config", "digits", "--distill", "soft", "--out", str(tmp_path)])
    assert "--distill needs --teacher" in capsys.readouterr().err
    import vit_lessons.deit as deit

    wrong = deit.resnet18_cifar(num_classes=5)
    with pytest.raises(ValueError, match="teacher predicts 5 classes but the student 10"):
        train(_tiny(epochs=1), out=tmp_path / "x", progress=False, log=None, teacher=wrong, distill="hard")


def test_rng_state_from_more_gpus_than_visible_restores_those_that_exist(monkeypatch):
    # Saved under torchrun on 4 GPUs, resumed on a machine with one: torch.cuda.set_rng_state_all
    # raises IndexError there (it indexes a device per saved state). Faked here: no GPU is needed.
    from vit_lessons.train.checkpoint import rng_state, set_rng_state

    restored = {}

    def set_all(states):
        for device, state in enumerate(states):
            if device >= torch.cuda.device_count():
                raise IndexError("list index out of range")
            restored[device] = state

    saved = [torch.full((8,), device, dtype=torch.uint8) for device in range(4)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", set_all)
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device=0: set_all([None] * device + [state]))
    set_rng_state(rng_state())
    assert list(restored) == [0] and torch.equal(restored[0], saved[0])


def test_running_sums_avoid_float64_on_apple_gpus():
    from vit_lessons.train.run import accumulator_dtype

    assert accumulator_dtype(torch.device("mps")) == torch.float32  # MPS has no float64
    assert accumulator_dtype(torch.device("cpu")) == torch.float64  # unchanged where it exists
    assert accumulator_dtype(torch.device("cuda")) == torch.float64


def _torchrun_probe(out, stop_after, mode):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += [str(ROOT / "tests" / "helpers" / "torchrun_drop_path_probe.py"), str(out), str(stop_after), mode]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180, cwd=out.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((out / f"masks_rank{rank}_{mode}.json").read_text()) for rank in (0, 1)]


def test_torchrun_ranks_draw_their_own_drop_path_masks_and_resume_them_exactly(tmp_path):
    # All processes seeded alike would drop the same samples' branches on every rank: stochastic depth
    # weaker than on one device. And after a resume each rank must continue its own random stream.
    straight = _torchrun_probe(tmp_path / "straight", 2, "first")
    assert straight[0] != straight[1], "ranks drew identical drop-path masks"
    assert all(len(masks) > 0 for masks in straight)
    first = _torchrun_probe(tmp_path / "interrupted", 1, "first")
    resumed = _torchrun_probe(tmp_path / "interrupted", 2, "resumed")
    for rank in (0, 1):
        assert first[rank] + resumed[rank] == straight[rank], f"rank {rank} did not resume its own stream"


def test_torchrun_ranks_evaluate_with_the_same_batchnorm_statistics(tmp_path):
    # Each rank updates BatchNorm's running statistics from its own shard; evaluated as they are, every
    # rank would judge a different model from the one rank 0 saves.
    _torchrun_probe(tmp_path / "run", 1, "first")
    buffers = [json.loads((tmp_path / "run" / f"buffers_rank{rank}_first.json").read_text()) for rank in (0, 1)]
    assert buffers[0] and buffers[0] == buffers[1]


def test_checkpoints_hold_cpu_tensors_only():
    # A GPU run's last.pt must open on a CPU: every tensor, however deeply nested, is copied over.
    from torch._subclasses.fake_tensor import FakeTensorMode

    from vit_lessons.train.checkpoint import on_cpu

    with FakeTensorMode(allow_non_fake_inputs=True):  # CUDA tensors (shapes only) without a GPU
        state = {"model": {"w": torch.ones(2, device="cuda")}, "rng": [torch.ones(1, device="cuda"), 3], "e": 1}
        moved = on_cpu(state)
    assert moved["model"]["w"].device.type == "cpu" and moved["rng"][0].device.type == "cpu"
    assert moved["rng"][1] == 3 and moved["e"] == 1 and isinstance(moved["rng"], list)


def test_ema_decay_warms_up_so_a_short_run_is_not_judged_on_its_random_start():
    from torch.optim.swa_utils import AveragedModel

    from vit_lessons.train.trainer import ema_with_warmup

    model = nn.Linear(4, 4, bias=False)
    start = model.weight.detach().clone()
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(0.999), use_buffers=True)
    for _ in range(200):  # the weights walk away from their start, one unit per step
        with torch.no_grad():
            model.weight.add_(1.0)
        ema.update_parameters(model)
    distance_from_start = (ema.module.weight - start).mean().item()
    assert distance_from_start > 150, distance_from_start  # a fixed 0.999 would have moved ~19 units
    # and it never averages faster than the configured decay allows, once warmed up
    late = ema_with_warmup(0.9)
    average, current = [torch.zeros(1)], [torch.ones(1)]
    late(average, current, torch.tensor(10_000))
    assert average[0].item() == pytest.approx(0.1)


def test_command_line_without_cifar_offline_says_what_to_do(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    with pytest.raises(SystemExit) as exit_info:
        main(["--config", "cifar10-quick", "--data-dir", str(tmp_path / "none"), "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "CIFAR-10" in message and "VIT_LESSONS_DATA" in message and "Traceback" not in message
