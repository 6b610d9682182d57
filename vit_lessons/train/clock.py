"""Training against a wall clock: the whole run, data loading and the final evaluation included, fits a budget.

Lesson 08, section 4 teaches it (``--time-budget SECONDS``; the ``cifar10-cpu`` recipe has 600 s). The
cosine schedule follows :attr:`TimeBudget.progress` (0 → 1 as the clock runs out) instead of the step
count, so a fast machine gets more epochs and a slow one fewer, and both end with a decayed learning
rate. Training stops ``reserve`` seconds before the deadline, enough to evaluate on the whole test
split: estimated from one timed evaluation batch before training, then from each per-epoch
evaluation on a subset. Under ``torchrun`` every process follows the slowest clock, so all stop at
the same step.
"""

from __future__ import annotations

import time

import torch

from ..timing import time_calls
from .distributed import Distributed

__all__ = ["TimeBudget", "NoBudget"]

RESERVE_MARGIN = 1.25  # the final evaluation's estimate, times this, plus RESERVE_SECONDS
RESERVE_SECONDS = 2.0


class NoBudget:
    """An epoch-counted run: every step fits, and every epoch is evaluated on the whole test split."""

    timed = False
    finished = False

    def tick(self, trainer) -> bool:
        return True

    def end_epoch(self, trainer, progress_at_epoch: float, steps: int) -> None:
        pass

    def is_final(self, epoch: int, epochs: int) -> bool:
        return True

    def observe_evaluation(self, seconds: float, images: int) -> None:
        pass

    def progress(self, trainer, epoch: int, epochs: int) -> float:
        return (epoch + 1) / epochs


class TimeBudget(NoBudget):
    """The clock of one session: ``seconds`` in all, ``used`` of them by earlier sessions (resume).

    ``start`` is when this session began (``time.perf_counter()``); ``progress`` the schedule's
    progress when it began; ``final_images`` how many forward passes the final evaluation makes.
    """

    timed = True

    def __init__(self, seconds: float, start: float, used: float, progress: float, final_images: int, dist_info=None):
        self.deadline = start + (seconds - used)
        self.progress0 = progress
        self.final_images = final_images
        self.dist = dist_info or Distributed()
        self.finished = progress >= 1.0
        self.reserve = 0.0  # seconds kept for the final evaluation
        self.monitor_seconds = 0.0  # the last per-epoch evaluation
        self.train_start = time.perf_counter()

    @property
    def usable(self) -> float:
        """Seconds this session has for training."""
        return max(1e-6, self.deadline - self.reserve - self.train_start)

    def clock_progress(self, device=None) -> float:
        progress = self.progress0 + (1 - self.progress0) * (time.perf_counter() - self.train_start) / self.usable
        # every rank must follow the slowest clock, or they stop at different steps
        return self.dist.all_reduce([progress], device, "max")[0]

    @torch.no_grad()
    def probe(self, model, images: torch.Tensor, autocast) -> None:
        """Time one evaluation batch: a slow model may need much of the budget to evaluate.

        As the evaluation runs it (under the run's ``autocast``), after one untimed batch that pays for
        cuBLAS/cuDNN start-up, with the device synchronised (:func:`vit_lessons.timing.time_calls`).
        """
        if self.finished:
            return
        model.eval()
        with autocast:
            seconds = time_calls(model, images, repeats=1, warmup=1)[0]
        self.reserve = RESERVE_MARGIN * seconds / len(images) * self.final_images + RESERVE_SECONDS

    def tick(self, trainer) -> bool:
        """Before a step: set the schedule's progress; False (and finished) when the time is up."""
        trainer.time_progress = self.clock_progress(trainer.device)
        if trainer.time_progress >= 1.0:
            trainer.time_progress, self.finished = 1.0, True
        return not self.finished

    def end_epoch(self, trainer, progress_at_epoch: float, steps: int) -> None:
        """Would the next epoch's first step still start in time, after this epoch's evaluation?"""
        if self.finished or steps < 2:
            return
        per_step = (trainer.time_progress - progress_at_epoch) / (steps - 1)
        per_eval = self.monitor_seconds / self.usable  # this process's own estimate: it differs between ranks
        predicted = self.clock_progress(trainer.device) + per_step + per_eval
        # Every process must take the same decision, or one evaluates for the last time while another
        # starts an epoch, and their collectives no longer pair up (a hang): the most pessimistic rules.
        self.finished = self.dist.all_reduce([predicted], trainer.device, "max")[0] >= 1.0

    def is_final(self, epoch: int, epochs: int) -> bool:
        """Judge on the whole test split when the time is up or the epochs are used up."""
        return self.finished or epoch + 1 == epochs

    def observe_evaluation(self, seconds: float, images: int) -> None:
        """A per-epoch evaluation of ``images`` took ``seconds``: scale it to the final one, with a margin."""
        self.reserve = RESERVE_MARGIN * seconds * self.final_images / images + RESERVE_SECONDS
        self.monitor_seconds = seconds

    def progress(self, trainer, epoch: int, epochs: int) -> float:
        return trainer.time_progress
