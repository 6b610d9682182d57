"""The one timing helper and the one hardware-name helper."""

import platform

import pytest
import torch

from vit_lessons import timing
from vit_lessons.settings import cpu_model, hardware_name


def test_time_calls_warms_up_then_times_each_call():
    calls = []
    times = timing.time_calls(lambda: calls.append(1), repeats=4, warmup=2)
    assert len(calls) == 6 and len(times) == 4 and all(t >= 0 for t in times)
    assert timing.time_call(torch.ones, 3, repeats=3) > 0


@pytest.mark.parametrize("bad", [dict(repeats=0), dict(repeats=1.5), dict(warmup=-1), dict(repeats=True)])
def test_time_calls_rejects_bad_counts(bad):
    with pytest.raises(ValueError, match="repeats|warmup"):
        timing.time_calls(lambda: None, **bad)


def test_time_calls_synchronises_the_device_it_is_given(monkeypatch):
    # A GPU runs kernels asynchronously: without a synchronisation the clock measures launches only.
    synced = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: synced.append(torch.device(device)))
    timing.time_calls(lambda: None, repeats=3, warmup=1, device="cuda:0")
    assert synced == [torch.device("cuda:0")] * 6  # before and after each timed call
    synced.clear()
    timing.time_calls(lambda: None, repeats=2, device="cpu")
    assert synced == []


def test_hardware_name_names_the_cpu_model():
    name = hardware_name("cpu")
    assert cpu_model() in name and f"{torch.get_num_threads()} torch threads" in name
    if platform.system() == "Linux":
        with open("/proc/cpuinfo") as handle:
            models = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        if models:  # not on every architecture
            assert cpu_model() == models[0] and cpu_model() != platform.machine()


def test_hardware_name_on_a_gpu_is_the_gpu_model(monkeypatch):
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    assert hardware_name("cuda:0") == "NVIDIA H100 80GB HBM3"
    assert hardware_name("mps").startswith("Apple GPU (MPS) with ")
