"""Settings students depend on without seeing them: which device a lesson picks and the precision it
trains in there, including an Apple-silicon Mac (faked: no Mac here)."""

import pytest
import torch

from vit_lessons.settings import autocast_dtype, is_quick, pick_device
from vit_lessons.train import resolve_precision


def test_a_mac_gets_its_gpu_and_trains_in_fp32(monkeypatch):
    monkeypatch.delenv("VIT_LESSONS_DEVICE", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    device = pick_device()
    assert device.type == "mps"
    # The MPS policy: fp32, no autocast and no GradScaler (bf16/fp16 autocast on MPS is not measured
    # to pay for these small models, and fp16 training would need loss scaling).
    assert autocast_dtype(device) is None
    policy = resolve_precision("auto", device)
    assert (policy.name, policy.dtype, policy.use_scaler) == ("fp32", None, False)
    with pytest.raises(ValueError, match="fp16 training needs a CUDA GPU"):
        resolve_precision("fp16", device)


def test_device_choice_order_and_override(monkeypatch):
    monkeypatch.delenv("VIT_LESSONS_DEVICE", raising=False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cuda"  # a CUDA GPU first
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device().type == "cpu"
    monkeypatch.setenv("VIT_LESSONS_DEVICE", "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device().type == "cpu"  # the environment variable wins
    assert pick_device("mps").type == "mps"  # and an explicit choice wins over it


@pytest.mark.parametrize("value,quick", [("1", True), ("true", True), ("yes", True), ("0", False), ("", False)])
def test_quick_mode_switch(monkeypatch, value, quick):
    monkeypatch.setenv("VIT_LESSONS_QUICK", value)
    assert is_quick() is quick


def test_run_banner_names_the_hardware_and_how_to_switch_modes(monkeypatch):
    from vit_lessons.settings import cpu_model, run_banner

    monkeypatch.setenv("VIT_LESSONS_QUICK", "0")
    full = run_banner("cpu")
    assert cpu_model() in full and "full mode" in full and "VIT_LESSONS_QUICK=1" in full
    monkeypatch.setenv("VIT_LESSONS_QUICK", "1")
    assert "quick mode" in run_banner("cpu")


def test_native_bf16_is_read_from_the_cpu_flags():
    from vit_lessons.settings import cpu_has_native_bf16

    xeon = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n"
    zen3 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
    assert cpu_has_native_bf16(xeon) and cpu_has_native_bf16(xeon.replace(" avx512_bf16", ""))
    assert not cpu_has_native_bf16(zen3) and not cpu_has_native_bf16("")
    assert isinstance(cpu_has_native_bf16(), bool)  # this machine, whatever it is
