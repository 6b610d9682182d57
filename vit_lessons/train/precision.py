"""Mixed precision: which autocast dtype a training step uses, and whether it needs a GradScaler.

Lesson 08, section 5 teaches it: bf16 autocast on GPUs with compute capability ≥ 8 (A100, L4,
H100), fp16 autocast with ``torch.amp.GradScaler`` below (T4), fp32 on the CPU and Apple GPUs.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch

from ..settings import autocast_dtype

__all__ = ["PrecisionPolicy", "resolve_precision"]


@dataclass(frozen=True)
class PrecisionPolicy:
    """How a step runs: ``dtype`` for autocast (None: fp32) and whether a GradScaler is needed."""

    name: str  # "fp32" | "bf16" | "fp16"
    dtype: torch.dtype | None
    use_scaler: bool


def resolve_precision(
    precision: str, device: torch.device | str, capability: tuple[int, int] | None = None
) -> PrecisionPolicy:
    """Turn ``auto|fp32|bf16|fp16`` into a :class:`PrecisionPolicy` for ``device``.

    ``auto`` follows :func:`vit_lessons.settings.autocast_dtype` (compute capability, not
    ``is_bf16_supported``): bf16 on capability ≥ 8, fp16 + GradScaler below, fp32 on CPU/MPS.
    ``capability`` overrides the GPU query (tests).
    """
    device = torch.device(device)
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be auto, fp32, bf16 or fp16, got {precision!r}")
    if precision == "auto":
        dtype = autocast_dtype(device, capability)
        precision = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    if precision == "fp32":
        return PrecisionPolicy("fp32", None, False)
    if precision == "fp16":
        if device.type != "cuda":
            raise ValueError(f"fp16 training needs a CUDA GPU (device is {device}); use --precision bf16 or fp32")
        return PrecisionPolicy("fp16", torch.float16, True)
    if device.type == "cuda":
        if capability is None:
            capability = torch.cuda.get_device_capability(device)
        if capability[0] < 8:
            warnings.warn(
                f"bf16 on a GPU of compute capability {capability[0]}.{capability[1]} is emulated and slow; "
                "--precision auto picks fp16 + GradScaler there"
            )
    return PrecisionPolicy("bf16", torch.bfloat16, False)
