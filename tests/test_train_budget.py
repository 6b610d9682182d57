"""Time-budgeted training (issue 11): the cosine schedule on the clock, flip test-time augmentation,
the explicit-attention switch, ``--set`` overrides, and the CPU recipe on a tiny fake CIFAR-10."""

import math
import time

import numpy as np
import pytest
import torch

from vit_lessons import create_model
from vit_lessons.data import ArrayDataset, DeviceLoader
from vit_lessons.train import (
    CONFIGS,
    Trainer,
    build_model,
    get_config,
    main,
    parse_overrides,
    predict,
    resolve_precision,
    train,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _trainer(config, steps_per_epoch=10):
    model = build_model(config)
    return Trainer(model, config, resolve_precision("fp32", "cpu"), "cpu", steps_per_epoch)


def test_time_budget_schedule_follows_the_clock_not_the_step_count():
    config = get_config("digits", time_budget=60.0, warmup_epochs=1, lr=1e-2, min_lr_ratio=0.0)
    trainer = _trainer(config, steps_per_epoch=4)
    lrs = []
    for progress in [0.0] * 4 + [0.0, 0.25, 0.5, 0.75, 1.0]:
        trainer.time_progress = progress
        trainer.scheduler.step()
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    # warm-up by steps: after 4 scheduler steps the factor is 1; then cosine in the clock's progress
    expected = [1e-2 * (0.5 * (1 + math.cos(math.pi * p))) for p in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert lrs[3] == pytest.approx(1e-2)
    assert lrs[4:] == pytest.approx(expected, abs=1e-7)
    # a warm-up longer than a tenth of the budget is cut short by the clock
    slow = _trainer(get_config("digits", time_budget=60.0, warmup_epochs=100, lr=1e-2, min_lr_ratio=0.0), 4)
    for progress, warm in ((0.05, 0.5), (0.2, 1.0)):
        slow.time_progress = progress
        slow.scheduler.step()
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        assert slow.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * warm * cosine)
    # the same step count without a budget is still in its (epoch-based) cosine: not at the minimum
    plain = _trainer(get_config("digits", warmup_epochs=1, lr=1e-2, min_lr_ratio=0.0), steps_per_epoch=4)
    for _ in range(9):
        plain.scheduler.step()
    assert plain.optimizer.param_groups[0]["lr"] > 0.9e-2


def test_a_budgeted_run_stops_on_time_and_ends_with_a_full_evaluation(tmp_path):
    budget = 8.0
    config = get_config("digits", time_budget=budget, epochs=1000)
    start = time.perf_counter()
    summary = train(config, out=tmp_path, device="cpu", progress=False, log=None)
    elapsed = time.perf_counter() - start
    history = summary["history"]
    assert 1 < len(history) < 1000  # stopped by the clock, not by the epoch cap
    assert summary["time_budget"] == budget
    # a generous margin: the run checks the clock before each step and estimates the final evaluation
    assert elapsed < budget * 1.5 + 2, f"budget {budget} s, took {elapsed:.1f} s"
    assert history[-1]["final"] and not any(row["final"] for row in history[:-1])
    assert history[-1]["time_progress"] > 0.85
    lrs = [row["lr"] for row in history]
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])), lrs  # decays with the clock
    assert lrs[-1] < 0.1 * config.lr
    assert summary["test_accuracy"] == history[-1]["test_accuracy"] > 0.5
    assert (tmp_path / "best.pt").exists()


def test_time_budget_resume_continues_the_clock(tmp_path):
    config = get_config("digits", time_budget=6.0, epochs=1000)
    first = train(config, out=tmp_path, device="cpu", progress=False, log=None, stop_after=2)
    assert len(first["history"]) == 2 and not first["history"][-1]["final"]
    second = train(config, out=tmp_path, device="cpu", progress=False, log=None, resume=True)
    history = second["history"]
    assert len(history) > 2 and history[-1]["final"]
    assert history[2]["time_progress"] > history[1]["time_progress"]  # carried on, not restarted at 0
    assert second["wall_seconds"] < 6.0 * 1.5 + 2
    # a finished run resumed again trains nothing more and reports the same final accuracy
    third = train(config, out=tmp_path, device="cpu", progress=False, log=None, resume=True)
    assert len(third["history"]) == len(history)
    assert third["test_accuracy"] == pytest.approx(second["test_accuracy"])


def test_budget_errors():
    with pytest.raises(ValueError, match="time_budget must be a positive number of seconds"):
        get_config("digits", time_budget=0)
    with pytest.raises(TypeError, match="time_budget must be a number of seconds"):
        get_config("digits", time_budget="10 min")
    with pytest.raises(ValueError, match="does not train with flip=True"):
        get_config("digits", tta_flip=True)
    with pytest.raises(ValueError, match="monitor_test must be a positive int"):
        get_config("digits", monitor_test=0)


def test_flip_tta_averages_the_image_and_its_mirror():
    torch.manual_seed(0)
    model = create_model("vit_digits_patch2_8", num_classes=10)
    images = torch.randint(0, 256, (6, 1, 8, 8), dtype=torch.uint8).numpy()
    dataset = ArrayDataset(images, np.arange(6) % 10, [str(i) for i in range(10)], (0.5,), (0.25,), "test")
    loader = DeviceLoader(dataset, 4, train=False)
    plain, labels = predict(model, loader)
    tta, tta_labels = predict(model, loader, tta_flip=True)
    model.eval()
    with torch.no_grad():
        x = (torch.from_numpy(images).float() / 255 - 0.5) / 0.25
        mirrored = model(x.flip(-1))
    assert torch.equal(labels, tta_labels)
    torch.testing.assert_close(tta, (plain + mirrored) / 2, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(tta, plain, atol=1e-3)  # the mirror image changes the logits


def test_explicit_attention_switch_reaches_every_block_and_the_ema_copy():
    config = get_config("cifar10-cpu", fused_attn=False, ema_decay=0.99)
    trainer = _trainer(config)
    flags = [m.fused_attn for m in trainer.model.modules() if hasattr(m, "fused_attn")]
    ema_flags = [m.fused_attn for m in trainer.ema.module.modules() if hasattr(m, "fused_attn")]
    assert flags and ema_flags and not any(flags) and not any(ema_flags)
    fused = _trainer(get_config("cifar10-cpu", fused_attn=True))
    assert all(m.fused_attn for m in fused.model.modules() if hasattr(m, "fused_attn"))


def test_set_overrides_parse_json_and_dotted_keys():
    base = CONFIGS["cifar10-cpu"]
    overrides = parse_overrides(
        ["ema_decay=null", "tta_flip=false", "model_kwargs.depth=6", "model_kwargs.stem_channels=[16,32,64]"], base
    )
    assert overrides["ema_decay"] is None and overrides["tta_flip"] is False
    assert overrides["model_kwargs"]["depth"] == 6 and overrides["model_kwargs"]["stem_channels"] == [16, 32, 64]
    assert overrides["model_kwargs"]["global_pool"] == base.model_kwargs["global_pool"]  # other keys kept
    assert base.model_kwargs.get("depth") != 6  # the registered config is not modified
    with pytest.raises(ValueError, match="has no field 'emma_decay'"):
        parse_overrides(["emma_decay=0.9"], base)
    with pytest.raises(ValueError, match="expects FIELD=VALUE"):
        parse_overrides(["tta_flip"], base)
    with pytest.raises(ValueError, match="lr is not a dict"):
        parse_overrides(["lr.value=1"], base)


def test_command_line_time_budget_and_set(tmp_path, capsys):
    summary = main(
        ["--config", "digits", "--time-budget", "5", "--set", "model_kwargs.depth=1", "--set", "monitor_test=100"]
        + ["--out", str(tmp_path), "--no-progress", "--device", "cpu"]
    )
    assert summary["time_budget"] == 5.0 and summary["history"][-1]["final"]
    assert "a 5 s time budget" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--config", "digits", "--set", "no_such_field=1"])
    assert "has no field 'no_such_field'" in capsys.readouterr().err


class _SlowEvaluation(torch.nn.Module):
    """A model whose evaluation batches take ``seconds`` each, after the first ``fast_batches`` of them,
    and whose training steps take ``train_seconds``."""

    def __init__(self, model, seconds, fast_batches=0, train_seconds=0.0):
        super().__init__()
        self.model, self.seconds, self.fast_batches, self.train_seconds = model, seconds, fast_batches, train_seconds
        self.eval_batches = 0

    def forward(self, images):
        if self.training:
            time.sleep(self.train_seconds)
        else:
            self.eval_batches += 1
            if self.eval_batches > self.fast_batches:
                time.sleep(self.seconds)
        return self.model(images)


def test_when_the_clock_runs_out_during_an_evaluation_the_last_epoch_gets_the_final_one(tmp_path):
    # The first (monitor) evaluation takes longer than the time left: the next epoch cannot start, and
    # the epoch already trained is evaluated on the whole test split instead of logging an empty epoch.
    config = get_config("digits", time_budget=6.0, epochs=1000, batch_size=64)
    # (the run times one evaluation batch before training, after an untimed one: those two are fast, the
    # later ones are not)
    slow = lambda config: _SlowEvaluation(create_model(config.model, **config.model_kwargs), 1.0, 2)  # noqa: E731
    summary = train(config, out=tmp_path, device="cpu", progress=False, log=None, model_factory=slow)
    history = summary["history"]
    assert len(history) == 1 and history[0]["final"] and history[0]["test_images"] == 450
    assert history[0]["train_images"] > 0 and summary["test_accuracy"] == history[0]["test_accuracy"]
    assert summary["train_seconds"] == pytest.approx(sum(row["epoch_seconds"] for row in history))


def test_the_cpu_recipe_is_a_hybrid_vit_on_a_ten_minute_clock(tmp_path):
    from vit_lessons.patches import ConvStemEmbedding
    from vit_lessons.vit import VisionTransformer

    config = get_config("cifar10-cpu")
    assert config.time_budget == 600 and config.tta_flip and config.flip
    model = create_model(config.model, **config.model_kwargs)
    assert isinstance(model, VisionTransformer) and isinstance(model.patch_embed, ConvStemEmbedding)
    assert len(model.blocks) >= 2 and model.patch_embed.num_patches == 16


def test_the_cpu_recipe_runs_on_a_tiny_subset_within_its_clock(fake_cifar, tmp_path):
    config = get_config("cifar10-cpu", time_budget=4.0, batch_size=16, per_class_train=8, per_class_test=4)
    summary = train(config, data_dir=fake_cifar, out=tmp_path / "run", progress=False, log=None)
    history = summary["history"]
    assert len(history) >= 2 and history[-1]["final"] and summary["tta_flip"]
    assert all(np.isfinite(row["train_loss"]) for row in history) and summary["skipped_steps"] == 0
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "metrics.csv").exists()


def test_a_slow_evaluation_is_reserved_for_before_the_first_epoch_ends(tmp_path):
    # An epoch longer than the budget and an evaluation that takes seconds (a ResNet on a CPU): the run
    # times one evaluation batch before training and stops training early enough to evaluate in time.
    config = get_config("digits", time_budget=8.0, epochs=1000, batch_size=32)

    def slow(config):
        return _SlowEvaluation(create_model(config.model, **config.model_kwargs), 1.0, train_seconds=0.3)

    start = time.perf_counter()
    summary = train(config, out=tmp_path, device="cpu", progress=False, log=None, model_factory=slow)
    elapsed = time.perf_counter() - start
    history = summary["history"]
    assert len(history) == 1 and history[0]["final"] and 0 < history[0]["train_images"] < 1347
    assert elapsed < 8.0 + 1.5, f"8 s budget, took {elapsed:.1f} s"


class _TwoRanks:
    """Distributed as seen by rank 0 of two: both clocks agree, but the peer's prediction of where the
    next epoch would end is ``peer`` (every max-reduction after the first, the clock's)."""

    enabled, world_size, rank = True, 2, 0

    def __init__(self, peer):
        self.peer, self.calls = peer, 0

    def all_reduce(self, values, device, op="sum"):
        assert op == "max"
        self.calls += 1
        return values if self.calls == 1 else [max(value, self.peer) for value in values]


def test_every_rank_takes_the_same_last_epoch_decision():
    # Near the deadline rank 0 predicts that one more epoch fits and its peer that it does not (each
    # estimates the final evaluation from its own timings): both must stop, or their collectives
    # stop pairing up and the run hangs.
    from types import SimpleNamespace

    from vit_lessons.train.clock import TimeBudget

    trainer = SimpleNamespace(time_progress=0.0, device=torch.device("cpu"))
    for peer, finished in ((0.0, False), (1.5, True)):
        clock = TimeBudget(600.0, time.perf_counter(), 0.0, 0.0, 100, dist_info=_TwoRanks(peer))
        clock.end_epoch(trainer, progress_at_epoch=0.0, steps=10)
        assert clock.finished is finished
