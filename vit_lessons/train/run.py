"""One training run, top to bottom: set up → resume → for each epoch fit, evaluate, log, save → summary.

Lesson 08 teaches it (``train()`` in a notebook, ``python -m vit_lessons.train`` in a terminal). The
loop is a flat list of named steps; what cuts across them lives in small objects it calls:
:class:`~.trainer.Trainer` (the step), :class:`~.clock.TimeBudget` (the wall clock),
:class:`~.distributed.Distributed` (``torchrun``), :mod:`.checkpoint` (saving and resuming).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .. import count_parameters, create_model
from ..data import ArrayDataset, DeviceLoader, load_cifar10, load_digits
from ..settings import hardware_name, seed_everything
from .checkpoint import (
    CHECKPOINT_FORMAT,
    check_compatible,
    load_checkpoint,
    load_course_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .clock import NoBudget, TimeBudget
from .config import TrainConfig, get_config, plain, validate_config
from .distributed import Distributed
from .precision import resolve_precision
from .trainer import Trainer, evaluate, unwrap

__all__ = ["build_data", "build_model", "configure_model", "train"]


# -- set-up ----------------------------------------------------------------------------------------
def build_data(
    config: TrainConfig, data_dir=None, device="cpu", rank: int = 0, world_size: int = 1
) -> tuple[DeviceLoader, DeviceLoader, ArrayDataset, ArrayDataset]:
    """Loaders for a config: the whole dataset as uint8 on ``device``, augmented there."""
    if config.dataset == "digits":
        train_set, test_set = load_digits(seed=config.seed)
        train_set, test_set = train_set.subset(config.per_class_train), test_set.subset(config.per_class_test)
    else:
        train_set, test_set = load_cifar10(data_dir, config.per_class_train, config.per_class_test)
        train_set, test_set = train_set.select_classes(config.classes), test_set.select_classes(config.classes)
    if config.batch_size % world_size:
        raise ValueError(
            f"batch size {config.batch_size} is not divisible by the {world_size} processes; "
            f"use --batch-size {config.batch_size // world_size * world_size}"
        )
    per_rank = config.batch_size // world_size
    common = dict(device=device, seed=config.seed, rank=rank, world_size=world_size)
    train_loader = DeviceLoader(
        train_set, per_rank, train=True, crop_padding=config.crop_padding, flip=config.flip, **common
    )
    test_loader = DeviceLoader(test_set, max(per_rank, 256), train=False, **common)
    return train_loader, test_loader, train_set, test_set


def _check_classes(model: nn.Module, train_set: ArrayDataset, config: TrainConfig) -> None:
    """A model with another number of outputs than the data has classes trains without error, and wrongly."""
    outputs = getattr(model, "num_classes", None)
    if outputs is not None and outputs != len(train_set.classes):
        raise ValueError(
            f"the model predicts {outputs} classes but the data has {len(train_set.classes)} "
            f"({', '.join(train_set.classes)}); set model_kwargs.num_classes={len(train_set.classes)} "
            f"(--set model_kwargs.num_classes={len(train_set.classes)})"
        )


def _download_once(config: TrainConfig, data_dir, dist_info: Distributed) -> None:
    """Under torchrun, one process downloads CIFAR-10 if it is missing while the others wait."""
    if config.dataset == "cifar10" and dist_info.enabled:
        if dist_info.is_main:
            load_cifar10(data_dir, 1, 1)  # finds it, or downloads it (a one-image subset: nothing else read)
        dist_info.barrier()


def build_model(config: TrainConfig) -> nn.Module:
    """The config's model, with its attention path and memory layout chosen once, here."""
    return configure_model(create_model(config.model, **config.model_kwargs), config)


def configure_model(model: nn.Module, config: TrainConfig) -> nn.Module:
    """Set every attention module to ``config.fused_attn`` and, with ``channels_last``, the NHWC layout.

    Done when the model is built, not by the trainer, so that a loop written by hand (lesson 08)
    runs exactly the computation :class:`~.trainer.Trainer` runs.
    """
    for module in model.modules():
        if hasattr(module, "fused_attn"):
            module.fused_attn = config.fused_attn
    return model.to(memory_format=torch.channels_last) if config.channels_last else model


def _monitor_loader(config, test_loader, test_set, device, dist_info) -> DeviceLoader:
    # a timed run checks each epoch on a class-balanced subset of the test split, and the end on all of it
    if config.time_budget is None or config.monitor_test >= len(test_set):
        return test_loader
    per_class = max(1, config.monitor_test // len(test_set.classes))
    return DeviceLoader(
        test_set.subset(per_class),
        test_loader.batch_size,
        train=False,
        device=device,
        seed=config.seed,
        rank=dist_info.rank,
        world_size=dist_info.world_size,
    )


def _distillation(teacher, distill, alpha, temperature, model, train_set, config, device, say):
    """DeiT's loss with ``teacher`` (lesson 10), or None for plain cross-entropy."""
    if distill == "none" and teacher is None:
        return None
    from ..deit import DistillationLoss, load_teacher

    if teacher is None:
        raise ValueError(f"distill={distill!r} needs a teacher: pass --teacher CHECKPOINT_OR_NAME")
    num_classes = getattr(model, "num_classes", len(train_set.classes))
    teacher_model = load_teacher(teacher, num_classes, course_loader=load_course_checkpoint, device=device)
    kind = "hard" if distill == "none" else distill
    smoothing = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    criterion = DistillationLoss(teacher_model, kind, alpha, temperature, num_classes, smoothing)
    say(f"distilling from {teacher} ({criterion.distill}, alpha {alpha})")
    return criterion


# -- what a run carries from epoch to epoch (and across a resume) ------------------------------------
@dataclass
class _Progress:
    epoch: int = 0
    history: list = field(default_factory=list)
    best: float = -1.0
    wall: float = 0.0  # seconds, earlier sessions included
    cpu: float = 0.0
    train_seconds: float = 0.0
    train_images: int = 0

    @classmethod
    def start(cls, trainer: Trainer, path: Path, resume: bool, say) -> _Progress:
        """Where this session starts: from ``path`` with ``resume`` when it exists, else from scratch."""
        if resume and path.exists():
            return cls.resume(trainer, trainer.config, path, say)
        if resume:
            say(f"no checkpoint at {path}: starting from scratch")
        return cls()

    @classmethod
    def resume(cls, trainer: Trainer, config: TrainConfig, path: Path, say) -> _Progress:
        """Continue from ``path`` (``last.pt``): weights, optimizer, RNG states, history and the clock."""
        # on the CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device
        state = load_checkpoint(path, map_location="cpu")
        check_compatible(state, config, path)
        trainer.load_state_dict(state, path)
        ranks = state.get("rng_ranks") or [state["rng"]]  # one per process (torchrun), or one
        set_rng_state(ranks[trainer.dist.rank] if trainer.dist.rank < len(ranks) else ranks[0])
        trainer.time_progress = state.get("time_progress", 0.0)
        say(f"resumed from {path} after epoch {state['epoch']}")
        return cls(
            state["epoch"],
            list(state["history"]),
            state["best_accuracy"],
            state["wall_seconds"],
            state["cpu_seconds"],
            state["train_seconds"],
            state["train_images"],
        )


class _Stopwatch:
    """Wall and CPU seconds of this session, on top of what earlier sessions used."""

    def __init__(self):
        self.start, self.cpu_start = time.perf_counter(), time.process_time()

    def totals(self, progress: _Progress) -> tuple[float, float]:
        return progress.wall + time.perf_counter() - self.start, progress.cpu + time.process_time() - self.cpu_start


# -- one epoch -------------------------------------------------------------------------------------
@dataclass
class _EpochFit:
    loss_sum: float
    correct: float
    seen: float  # images, summed across processes
    seconds: float


def accumulator_dtype(device: torch.device) -> torch.dtype:
    """fp64 for the epoch's running loss sum, except on Apple GPUs, which have no fp64 (MPS raises)."""
    return torch.float32 if device.type == "mps" else torch.float64


def _fit_epoch(trainer: Trainer, loader: DeviceLoader, epoch: int, clock, bars) -> _EpochFit:
    """Train one epoch (or until the clock runs out); sums stay on the device, no sync per step."""
    device = trainer.device
    epoch_start = time.perf_counter()
    loss_sum = torch.zeros((), dtype=accumulator_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen, steps, progress_at_epoch = 0, 0, trainer.time_progress
    loader.set_epoch(epoch)  # the order and augmentation depend only on (seed, epoch)
    for images, labels in bars.epoch(loader, epoch):
        if not clock.tick(trainer):
            break
        loss, logits = trainer.step(images, labels)
        steps += 1
        if loss is not None:
            loss_sum += loss.to(loss_sum.dtype) * len(labels)
            correct += (logits.argmax(1) == labels).sum()  # (B,) -> ()
            seen += len(labels)
        if (steps - 1) % 10 == 0 and seen:
            bars.show(loss_sum.item() / seen, correct.item() / seen, seen, epoch_start)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - epoch_start
    clock.end_epoch(trainer, progress_at_epoch, steps)
    loss_sum, correct, seen = trainer.dist.all_reduce([loss_sum.item(), correct.item(), seen], device)
    return _EpochFit(loss_sum, correct, seen, seconds)


class _Bars:
    """tqdm bars: one per epoch for an epoch-counted run, one for the whole clock for a timed run."""

    def __init__(self, config: TrainConfig, clock, enabled: bool, world_size: int, used: float, stopwatch):
        from tqdm.auto import tqdm

        self.tqdm, self.config, self.enabled, self.world_size = tqdm, config, enabled, world_size
        self.clock, self.used, self.stopwatch, self.epoch_index, self.bar = clock, used, stopwatch, 0, None
        self.clock_bar = None
        if clock.timed:
            self.clock_bar = tqdm(
                total=round(config.time_budget),
                initial=round(used),
                unit="s",
                dynamic_ncols=True,
                desc=f"{config.name}, {config.time_budget:.0f} s budget",
                leave=False,  # the per-epoch log lines stay; a finished bar would only repeat them
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s {postfix}",
                disable=not enabled,
            )

    def epoch(self, loader, epoch: int):
        self.epoch_index = epoch + 1
        desc = f"epoch {self.epoch_index}/{self.config.epochs}"
        disable = self.clock.timed or not self.enabled
        self.bar = self.tqdm(loader, desc=desc, leave=False, disable=disable, dynamic_ncols=True)
        return self.bar

    def _tick_clock(self) -> float:
        now = time.perf_counter()
        self.clock_bar.n = min(self.clock_bar.total, round(self.used + now - self.stopwatch.start))
        return now

    def show(self, loss: float, accuracy: float, seen: int, epoch_start: float) -> None:
        rate = seen * self.world_size / (time.perf_counter() - epoch_start)
        postfix = dict(loss=f"{loss:.3f}", acc=f"{accuracy:.1%}", img_s=f"{rate:,.0f}")
        if self.clock_bar is None:
            self.bar.set_postfix(**postfix)
            return
        remaining = max(0, self.clock.deadline - self._tick_clock())
        self.clock_bar.set_postfix(epoch=self.epoch_index, remaining=f"{remaining:.0f} s", **postfix)

    def close(self) -> None:
        if self.clock_bar is not None:
            self._tick_clock()
            self.clock_bar.close()


# -- evaluating, logging and saving an epoch ---------------------------------------------------------
def _row(trainer, fit: _EpochFit, epoch, clock, evaluation, wall_cpu) -> dict:
    test_loss, test_acc, test_images, eval_seconds, final = evaluation
    return {
        "epoch": epoch + 1,
        "lr": trainer.optimizer.param_groups[0]["lr"],
        "train_loss": fit.loss_sum / max(fit.seen, 1),
        "train_accuracy": fit.correct / max(fit.seen, 1),
        "test_loss": test_loss,
        "test_accuracy": test_acc,
        "test_images": test_images,
        "train_images": int(fit.seen),
        "images_per_second": fit.seen / fit.seconds,
        "epoch_seconds": fit.seconds,
        "eval_seconds": eval_seconds,
        "wall_seconds": wall_cpu[0],
        "cpu_seconds": wall_cpu[1],
        "time_progress": clock.progress(trainer, epoch, trainer.config.epochs),
        "final": final,
        "skipped_steps": trainer.skipped_steps,
    }


def _log_line(row: dict, config: TrainConfig) -> str:
    timed, tta = config.time_budget is not None, config.tta_flip and row["final"]
    return (
        f"epoch {row['epoch']:>3}/{config.epochs}  train loss {row['train_loss']:.3f} acc {row['train_accuracy']:.1%}"
        f"  |  test loss {row['test_loss']:.3f} acc {row['test_accuracy']:.1%}"
        + (f" ({row['test_images']:,} images{', flip TTA' if tta else ''})" if timed else "")
        + f"  |  {row['images_per_second']:,.0f} img/s"
        + (f"  |  {row['wall_seconds']:.0f} s of {config.time_budget:.0f}" if timed else "")
    )


def _save(out: Path, trainer: Trainer, config: TrainConfig, progress: _Progress, row: dict, meta: dict) -> None:
    """``best.pt`` when a final evaluation improved, ``last.pt`` (atomic) and the metrics files (rank 0)."""
    rng_ranks = trainer.dist.gather(rng_state())  # every process's generators, so each resumes its own
    if not trainer.dist.is_main:
        return
    # timed runs: monitor accuracies (a test subset) are not comparable with the final one
    if row["final"] and row["test_accuracy"] > progress.best:
        progress.best = row["test_accuracy"]
        weights = {"format": CHECKPOINT_FORMAT + "-weights", "model": unwrap(trainer.eval_model).state_dict()}
        save_checkpoint(
            {**weights, "epoch": row["epoch"], "test_accuracy": row["test_accuracy"], **meta}, out / "best.pt"
        )
    state = {
        "format": CHECKPOINT_FORMAT,
        "config": plain(dataclasses.asdict(config)),
        **trainer.state_dict(),
        "epoch": row["epoch"],
        "rng": rng_ranks[0],
        "rng_ranks": rng_ranks,
        "history": progress.history,
        "best_accuracy": progress.best,
        "wall_seconds": row["wall_seconds"],
        "cpu_seconds": row["cpu_seconds"],
        "train_seconds": progress.train_seconds,
        "train_images": progress.train_images,
        "time_progress": trainer.time_progress,
        "precision": trainer.policy.name,
        **meta,
    }
    save_checkpoint(state, out / "last.pt")
    (out / "metrics.json").write_text(json.dumps(progress.history, indent=1))
    with open(out / "metrics.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(progress.history[0]))
        writer.writeheader()
        writer.writerows(progress.history)


def _evaluate_epoch(trainer, clock, loaders, epoch: int, final_override=None) -> tuple:
    """(test loss, accuracy, images, seconds, final): the whole test split when final, else the monitor subset."""
    config, (test_loader, monitor_loader) = trainer.config, loaders
    final = clock.is_final(epoch, config.epochs) if final_override is None else final_override
    loader = test_loader if final else monitor_loader
    start = time.perf_counter()
    trainer.dist.broadcast_buffers(trainer.eval_model)  # every rank evaluates (and rank 0 saves) the same model
    tta = config.tta_flip and final
    test_loss, test_acc = evaluate(trainer.eval_model, loader, trainer.policy, trainer.dist, tta_flip=tta)
    seconds = time.perf_counter() - start
    if not final:
        clock.observe_evaluation(seconds, loader.num_samples)
    return test_loss, test_acc, loader.num_samples, seconds, final


def _finalise_last_row(trainer, clock, loaders, progress: _Progress, stopwatch) -> dict | None:
    """The clock ran out before this epoch's first step: the weights are the previous epoch's, so that
    epoch's row gets the final (whole test split) evaluation instead of a new, empty row."""
    if not progress.history or progress.history[-1].get("final", True):
        return None
    row = progress.history.pop()
    epoch = row["epoch"] - 1
    evaluation = _evaluate_epoch(trainer, clock, loaders, epoch, final_override=True)
    fit = _EpochFit(
        row["train_loss"] * row["train_images"],
        row["train_accuracy"] * row["train_images"],
        row["train_images"],
        row["epoch_seconds"],
    )
    return _row(trainer, fit, epoch, clock, evaluation, stopwatch.totals(progress))


def _summary(config, trainer, progress: _Progress, final: tuple, stopwatch, params, compile, out) -> dict:
    (final_loss, final_acc), (wall, cpu) = final, stopwatch.totals(progress)
    history, seconds = progress.history, progress.train_seconds
    return {
        "config": config.name,
        "model": config.model,
        "test_accuracy": final_acc,
        "test_loss": final_loss,
        "best_test_accuracy": max(progress.best, final_acc),
        "epochs": len(history),
        "planned_epochs": config.epochs,
        "wall_seconds": wall,
        # CPU time of this process (all its threads): on a machine shared with other jobs, the
        # figure that says whether a run would fit its wall-time budget on dedicated cores.
        "cpu_seconds": cpu,
        "train_seconds": seconds,
        "images_per_second": progress.train_images / seconds if seconds else 0.0,
        "device": str(trainer.device),
        "device_name": hardware_name(trainer.device),
        "precision": trainer.policy.name,
        "params": params,
        "world_size": trainer.dist.world_size,
        "compile": compile,
        "time_budget": config.time_budget,
        "tta_flip": config.tta_flip,
        "skipped_steps": trainer.skipped_steps,
        # which weights the test accuracies come from: the EMA (its decay warms up) or the trained ones
        "evaluated_weights": "ema" if trainer.ema is not None else "model",
        "seconds_to_accuracy": {
            str(target): next((r["wall_seconds"] for r in history if r["test_accuracy"] >= target), None)
            for target in (0.8, 0.85, 0.9, 0.97)
        },
        "torch": torch.__version__,
        "out": str(out),
        "history": history,
    }


def _meta(config: TrainConfig, train_set: ArrayDataset) -> dict:
    """What a checkpoint needs to be used on its own: the model to build and the data it expects."""
    return dict(
        model_name=config.model,
        model_kwargs=config.model_kwargs,
        mean=list(train_set.mean),
        std=list(train_set.std),
        classes=list(train_set.classes),
    )


def _finish(trainer: Trainer, done: _Progress, test_loader, stopwatch, params, compile, out: Path, say) -> dict:
    """The summary (written to ``summary.json``): the last final evaluation, or one now if this session
    trained nothing final."""
    config = trainer.config
    if len(done.history) > done.epoch and done.history[-1].get("final", True):
        final = done.history[-1]["test_loss"], done.history[-1]["test_accuracy"]
    else:
        final = evaluate(trainer.eval_model, test_loader, trainer.policy, trainer.dist, config.tta_flip)
    summary = _summary(config, trainer, done, final, stopwatch, params, compile, out)
    if trainer.dist.is_main:
        (out / "summary.json").write_text(json.dumps(summary, indent=1))
    say(
        f"done: test accuracy {final[1]:.2%} after {len(done.history)} epochs, {summary['wall_seconds']:.0f} s wall, "
        f"{summary['images_per_second']:,.0f} training images/s; outputs in {out}"
    )
    return summary


def _banner(config, params, train_set, device, policy, dist_info) -> str:
    length = (
        f"a {config.time_budget:.0f} s time budget (at most {config.epochs} epochs)"
        if config.time_budget is not None
        else f"{config.epochs} epochs"
    )
    return (
        f"{config.name}: {config.model} ({params:,} parameters), {len(train_set):,} training images, {length}"
        f", device {device} ({hardware_name(device)}), precision {policy.name}"
        + (f", {dist_info.world_size} processes" if dist_info.enabled else "")
    )


def _clock(trainer: Trainer, loaders, test_images: int, stopwatch: _Stopwatch, done: _Progress):
    """The run's clock: a :class:`TimeBudget` whose reserve is probed now, or no budget."""
    config = trainer.config
    if config.time_budget is None:
        return NoBudget()
    final_images = test_images * (2 if config.tta_flip else 1)
    used, progress = done.wall, trainer.time_progress
    clock = TimeBudget(config.time_budget, stopwatch.start, used, progress, final_images, trainer.dist)
    clock.probe(trainer.eval_model, next(iter(loaders[1]))[0], trainer.autocast())
    return clock


def _epoch(trainer, train_loader, loaders, epoch, clock, bars, done: _Progress, stopwatch, say) -> bool:
    """Fit one epoch, evaluate it and log its row; False when there is nothing more to record."""
    fit = _fit_epoch(trainer, train_loader, epoch, clock, bars)
    if clock.timed and not fit.seen:
        row = _finalise_last_row(trainer, clock, loaders, done, stopwatch)
        if row is None:
            return False
    else:
        evaluation = _evaluate_epoch(trainer, clock, loaders, epoch)
        done.train_seconds, done.train_images = done.train_seconds + fit.seconds, done.train_images + int(fit.seen)
        row = _row(trainer, fit, epoch, clock, evaluation, stopwatch.totals(done))
    done.history.append(row)
    say(_log_line(row, trainer.config))
    return True


# -- the run ---------------------------------------------------------------------------------------
def train(
    config: TrainConfig | str,
    *,
    data_dir=None,
    out: str | Path | None = None,
    resume: bool = False,
    device: str | torch.device | None = None,
    precision: str = "auto",
    compile: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    model_factory: Callable[[TrainConfig], nn.Module] | None = None,
    log: Callable[[str], None] | None = print,
    teacher=None,
    distill: str = "none",
    distill_alpha: float = 0.5,
    distill_temperature: float = 3.0,
    return_trainer: bool = False,
) -> dict | tuple[dict, Trainer]:
    """Train ``config`` and return the summary (also written to ``out/summary.json``), a plain dict.

    ``stop_after`` ends this session after that many epochs in total, as an interrupted run would
    (the schedule still spans ``config.epochs``); ``resume=True`` picks it up from ``out/last.pt``.
    ``model_factory`` replaces :func:`build_model` (the benchmark trains timm's ViT this way).
    ``teacher`` (a module, a checkpoint with ``model_name``/``model_kwargs``/``model`` like
    ``best.pt``, or a course checkpoint name) and ``distill`` (``"hard"``/``"soft"``) train with
    DeiT's distillation loss (lesson 10, :class:`vit_lessons.deit.DistillationLoss`).
    ``return_trainer=True`` returns ``(summary, trainer)`` for a lesson that inspects the trained model.
    """
    # -- set up: processes, device, precision, output folder
    stopwatch = _Stopwatch()
    config = get_config(config) if isinstance(config, str) else config
    validate_config(config)
    dist_info, device = Distributed.setup(torch.device(device) if device else None)
    device = torch.device(device)
    policy = resolve_precision(precision, device)
    say = log if (log and dist_info.is_main) else (lambda message: None)
    out = Path(out) if out is not None else Path("runs") / config.name
    if dist_info.is_main:
        out.mkdir(parents=True, exist_ok=True)

    # -- data, model, loss, trainer
    _download_once(config, data_dir, dist_info)
    seed_everything(config.seed)
    train_loader, test_loader, train_set, test_set = build_data(
        config, data_dir, device, dist_info.rank, dist_info.world_size
    )
    model = build_model(config) if model_factory is None else configure_model(model_factory(config), config)
    _check_classes(model, train_set, config)
    params = count_parameters(model)
    dist_info.seed(config.seed)
    criterion = _distillation(
        teacher, distill, distill_alpha, distill_temperature, model, train_set, config, device, say
    )
    trainer = Trainer(model, config, policy, device, len(train_loader), dist_info, compile, criterion)

    # -- resume
    done = _Progress.start(trainer, out / "last.pt", resume, say)
    say(_banner(config, params, train_set, device, policy, dist_info))
    meta = _meta(config, train_set)

    # -- the clock (a timed run) and the progress bars
    loaders = (test_loader, _monitor_loader(config, test_loader, test_set, device, dist_info))
    clock = _clock(trainer, loaders, len(test_set), stopwatch, done)
    bars = _Bars(config, clock, progress and dist_info.is_main, dist_info.world_size, done.wall, stopwatch)

    # -- for each epoch: fit, evaluate, log, save
    end_epoch = config.epochs if stop_after is None else min(config.epochs, stop_after)
    for epoch in range(done.epoch, end_epoch):
        if clock.finished or not _epoch(trainer, train_loader, loaders, epoch, clock, bars, done, stopwatch, say):
            break
        _save(out, trainer, config, done, done.history[-1], meta)
        dist_info.barrier()
    bars.close()

    # -- summary
    summary = _finish(trainer, done, test_loader, stopwatch, params, compile, out, say)
    return (summary, trainer) if return_trainer else summary
