"""Timing, done one way: warm up, synchronise the device, time each call, report the median.

GPUs run kernels asynchronously: ``time.perf_counter()`` around a CUDA call measures the launch,
not the work, unless the device is synchronised before the clock is read. Every timing in the
package and the lessons goes through :func:`time_call` (lesson 13 teaches why).
"""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch

__all__ = ["synchronize", "time_call", "time_calls"]


def synchronize(device: torch.device | str | None) -> None:
    """Wait for the kernels queued on ``device`` (CUDA or MPS); a no-op on the CPU."""
    device = torch.device(device or "cpu")
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _device_of(args) -> torch.device:
    for arg in args:
        if isinstance(arg, torch.Tensor):
            return arg.device
    return torch.device("cpu")


def time_calls(fn: Callable, *args, repeats: int = 5, warmup: int = 1, device=None) -> list[float]:
    """Wall time in seconds of each of ``repeats`` calls ``fn(*args)``, after ``warmup`` untimed calls.

    ``device`` (default: the device of the first tensor argument) is synchronised before and after
    each timed call, so asynchronous GPU work is counted.
    """
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be a non-negative int, got {warmup!r}")
    device = torch.device(device) if device is not None else _device_of(args)
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn(*args)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return times


def time_call(fn: Callable, *args, repeats: int = 5, warmup: int = 1, device=None) -> float:
    """Median wall time in seconds of ``fn(*args)`` (see :func:`time_calls`)."""
    return statistics.median(time_calls(fn, *args, repeats=repeats, warmup=warmup, device=device))
