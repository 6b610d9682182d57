"""Efficient ViT inference: fused attention, ``torch.compile``, token merging, and a throughput table.

Three ideas, each measured in lesson 13 (``notebooks/src/13_efficient_vit.py``):

1. **Fused attention.** ``F.scaled_dot_product_attention`` (SDPA) never stores the (N, N) score
   matrix when it can use a flash or memory-efficient kernel, so its memory grows as O(N) instead
   of O(N²). The "efficient attention" many tutorials show (plain attention with a mask) computes
   the same (N, N) scores and saves nothing: :func:`masked_attention` is that, for comparison.
2. **torch.compile**: :func:`compile_benchmark` measures the compile time and the steady-state speed-up.
3. **Token merging** (ToMe; Bolya et al., ICLR 2023): the algorithm lives in :mod:`vit_lessons.tome`
   (:func:`apply_token_merging` and friends, re-exported here so the lesson imports one module);
   :func:`tome_speedup` measures what it buys.

:func:`inference_benchmark` measures images/s for ViTs and torchvision ResNets;
``python -m vit_lessons.efficient`` prints it as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
from collections.abc import Sequence
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .settings import hardware_name
from .timing import _device_of, synchronize, time_call, time_calls
from .tome import (
    MergePlan,
    TokenMergingHandle,
    apply_token_merging,
    bipartite_soft_matching,
    merge_weighted,
    merged_image,
    patch_labels,
    token_schedule,
)
from .vit import MODEL_CONFIGS, VisionTransformer

__all__ = [
    "explicit_attention",
    "masked_attention",
    "sdpa_backend",
    "time_call",
    "peak_memory",
    "attention_benchmark",
    "compile_benchmark",
    # token merging: defined in vit_lessons.tome, re-exported for lesson 13 and existing imports
    "MergePlan",
    "bipartite_soft_matching",
    "merge_weighted",
    "token_schedule",
    "apply_token_merging",
    "TokenMergingHandle",
    "patch_labels",
    "merged_image",
    "throughput",
    "tome_speedup",
    "hardware_name",
    "inference_benchmark",
    "main",
]


# -- 1. attention three ways ---------------------------------------------------------------------
def explicit_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """softmax(q kᵀ / sqrt(d)) v written out: stores the (B, h, N, N) scores. (B, h, N, d) → (B, h, N, d)."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, N, N)
    return scores.softmax(dim=-1) @ v  # (B, h, N, d)


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """The "efficient attention" of common tutorials: plain attention plus a mask.

    It builds the same (N, N) score matrix as :func:`explicit_attention` (and an (N, N) mask on top),
    so it saves neither time nor memory. Shown only to measure that. (B, h, N, d) → (B, h, N, d).
    """
    n_q, n_k = q.shape[-2], k.shape[-2]
    if mask is None:
        mask = torch.ones(n_q, n_k, dtype=torch.bool, device=q.device)  # (N, N): "attend everywhere"
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, h, N, N)
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


@contextlib.contextmanager
def _quiet_profiler():
    """Silence the profiler back-end's start/stop lines, which it writes straight to file descriptor 2."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no real stderr (some embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


_BACKEND_OPS = (
    ("_scaled_dot_product_flash_attention", "flash"),
    ("_scaled_dot_product_efficient_attention", "memory-efficient"),
    ("_scaled_dot_product_cudnn_attention", "cudnn"),
    ("_scaled_dot_product_attention_math", "math"),
    ("_scaled_dot_product_fused_attention_overrideable", "overrideable"),
)


def sdpa_backend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: torch.Tensor | None = None) -> str:
    """Which kernel ``F.scaled_dot_product_attention`` picks for these inputs: ``"flash"``,
    ``"memory-efficient"``, ``"cudnn"`` or ``"math"`` (read from the profiler's op names)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if q.is_cuda else [])
    with _quiet_profiler(), torch.no_grad(), profile(activities=activities) as prof:
        F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    names = {event.name for event in prof.events()}
    for op, backend in _BACKEND_OPS:
        if any(op in name for name in names):
            return backend
    return "unknown"


def peak_memory(fn: Callable, *args, device=None) -> int:
    """Peak bytes allocated while ``fn(*args)`` runs, above what was allocated before.

    CUDA: ``torch.cuda.max_memory_allocated``. CPU: the PyTorch profiler's memory events
    (``profile_memory=True``); each op's allocations are counted from its start and its frees from
    its end, so the figure is the profiler's view of the peak, at op granularity.
    """
    device = torch.device(device) if device is not None else _device_of(args)
    if device.type == "cuda":
        synchronize(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = fn(*args)
        synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del result
        return int(peak)
    from torch.profiler import ProfilerActivity, profile

    with _quiet_profiler(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        result = fn(*args)
        del result
    changes = []  # (time, bytes): allocations at the op's start, frees at its end
    for event in prof.events():
        amount = event.self_cpu_memory_usage
        if amount > 0:
            changes.append((event.time_range.start, amount))
        elif amount < 0:
            changes.append((event.time_range.end, amount))
    current = peak = 0
    for _, amount in sorted(changes, key=lambda change: change[0]):
        current += amount
        peak = max(peak, current)
    return int(peak)


def attention_benchmark(
    seq_lens: Sequence[int] = (64, 256, 1024),
    batch_size: int = 1,
    num_heads: int = 6,
    head_dim: int = 64,
    device=None,
    dtype: torch.dtype = torch.float32,
    repeats: int = 3,
    methods: Sequence[str] = ("explicit", "masked (tutorial)", "sdpa"),
) -> list[dict]:
    """Time and peak memory of each attention method for each sequence length N.

    Returns one row per (method, N): ``method``, ``seq_len``, ``seconds``, ``peak_mib``, ``backend``
    (the SDPA kernel used, or "-"), ``device``.
    """
    device = torch.device(device or "cpu")
    functions = {
        "explicit": explicit_attention,
        "masked (tutorial)": masked_attention,
        "sdpa": F.scaled_dot_product_attention,
    }
    unknown = [m for m in methods if m not in functions]
    if unknown:
        raise ValueError(f"unknown attention methods {unknown}; choose from {list(functions)}")
    rows = []
    generator = torch.Generator(device="cpu").manual_seed(0)
    for seq_len in seq_lens:
        shape = (batch_size, num_heads, seq_len, head_dim)  # (B, h, N, d)
        q, k, v = (torch.randn(shape, generator=generator).to(device, dtype) for _ in range(3))
        for method in methods:
            fn = functions[method]
            with torch.no_grad():
                seconds = time_call(fn, q, k, v, repeats=repeats, device=device)
                peak = peak_memory(fn, q, k, v, device=device)
            backend = sdpa_backend(q, k, v) if method == "sdpa" else "-"
            rows.append(
                dict(
                    method=method,
                    seq_len=seq_len,
                    seconds=seconds,
                    peak_mib=peak / 2**20,
                    backend=backend,
                    device=str(device),
                )
            )
    return rows


# -- 2. torch.compile ----------------------------------------------------------------------------
def compile_benchmark(model: nn.Module, example: torch.Tensor, repeats: int = 5, **compile_kwargs) -> dict:
    """Compile ``model`` and compare it with eager mode on ``example`` (inference, no grad).

    Returns ``compile_seconds`` (the first compiled call, which compiles), ``eager_seconds`` and
    ``compiled_seconds`` (median per call after warm-up), ``speedup`` (eager / compiled),
    ``break_even_calls`` (calls after which compiling has paid for itself) and ``max_abs_diff``.
    """
    model.eval()
    device = example.device
    with torch.no_grad():
        eager_seconds = time_call(model, example, repeats=repeats, device=device)
        reference = model(example)
        compiled = torch.compile(model, **compile_kwargs)
        compile_seconds = time_calls(compiled, example, repeats=1, warmup=0, device=device)[0]  # it compiles
        first = compiled(example)
        compiled_seconds = time_call(compiled, example, repeats=repeats, device=device)
    saved = eager_seconds - compiled_seconds
    return dict(
        compile_seconds=compile_seconds,
        eager_seconds=eager_seconds,
        compiled_seconds=compiled_seconds,
        speedup=eager_seconds / compiled_seconds,
        break_even_calls=math.ceil(compile_seconds / saved) if saved > 0 else None,
        max_abs_diff=(first.float() - reference.float()).abs().max().item(),
    )


# -- 3. throughput (with and without token merging) ----------------------------------------------
def _autocast(device: torch.device, dtype_name: str):
    if dtype_name == "fp32":
        return torch.autocast(device.type, enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype_name]
    return torch.autocast(device.type, dtype=dtype)


def throughput(
    model: nn.Module,
    batch_size: int,
    img_size: int = 224,
    device=None,
    dtype: str = "fp32",
    channels_last: bool = False,
    repeats: int = 3,
    warmup: int = 1,
) -> float:
    """Images per second of ``model`` in inference (``no_grad``, eval mode) on random images."""
    device = torch.device(device or "cpu")
    if dtype not in ("fp32", "bf16", "fp16"):
        raise ValueError(f"dtype must be 'fp32', 'bf16' or 'fp16', got {dtype!r}")
    model = model.eval().to(device)
    in_chans = getattr(getattr(model, "patch_embed", None), "in_chans", 3)
    images = torch.randn(batch_size, in_chans, img_size, img_size, device=device)  # (B, C, H, W)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)

    def run(batch):
        with _autocast(device, dtype):
            return model(batch)

    with torch.no_grad():
        seconds = time_call(run, images, repeats=repeats, warmup=warmup, device=device)
    return batch_size / seconds


def tome_speedup(
    model: nn.Module | None = None,
    r: int = 16,
    batch_size: int = 8,
    img_size: int = 224,
    device=None,
    repeats: int = 3,
    rounds: int = 3,
) -> dict:
    """Images/s with token merging (``r``) and without (r=0), measured alternately in one run.

    The default model is ViT-S/16 at ``img_size`` with random weights (throughput needs no training).
    Rounds alternate r=0 and r to spread background load evenly; ``ratio`` is the median of the
    per-round ``ratios``. With ``r=0`` the unmerged model is timed against itself (the spread of
    ``ratios`` is then the measurement's noise).
    """
    if model is None:
        model = VisionTransformer(**{**MODEL_CONFIGS["vit_small_patch16_224"], "img_size": img_size})
    model.eval()
    base_rates, merged_rates, ratios = [], [], []
    for _ in range(rounds):
        base = throughput(model, batch_size, img_size, device, repeats=repeats)
        if r == 0:
            merged = throughput(model, batch_size, img_size, device, repeats=repeats)
        else:
            with apply_token_merging(model, r):
                merged = throughput(model, batch_size, img_size, device, repeats=repeats)
        base_rates.append(base)
        merged_rates.append(merged)
        ratios.append(merged / base)
    depth = len(model.blocks)
    num_tokens = model.patch_embed.num_patches + model.num_prefix_tokens
    return dict(
        r=r,
        batch_size=batch_size,
        images_per_s_r0=statistics.median(base_rates),
        images_per_s_merged=statistics.median(merged_rates),
        ratio=statistics.median(ratios),
        ratios=ratios,  # one per round: their spread is the measurement's noise
        tokens=token_schedule(num_tokens, r, depth, model.num_prefix_tokens),
        hardware=hardware_name(device),
    )


_TORCHVISION_MODELS = ("resnet18", "resnet50")


def _build(name: str) -> nn.Module:
    if name in MODEL_CONFIGS:
        return VisionTransformer(**MODEL_CONFIGS[name])
    if name in _TORCHVISION_MODELS:
        import torchvision

        return getattr(torchvision.models, name)(weights=None)
    raise ValueError(f"unknown model {name!r}; choose from {sorted(MODEL_CONFIGS)} or {list(_TORCHVISION_MODELS)}")


def _supported_dtypes(device: torch.device) -> list[str]:
    if device.type == "cuda":
        from .settings import autocast_dtype

        return ["fp32", "fp16"] + (["bf16"] if autocast_dtype(device) == torch.bfloat16 else [])
    return ["fp32", "bf16"]  # CPU autocast runs bf16; fp16 on CPU is emulated and not a real option


def inference_benchmark(
    models: Sequence[str] = ("vit_tiny_patch16_224", "vit_small_patch16_224", "resnet18", "resnet50"),
    batch_sizes: Sequence[int] = (1, 64),
    dtypes: Sequence[str] | None = None,
    device=None,
    img_size: int = 224,
    repeats: int = 3,
    progress: Callable[[dict], None] | None = None,
) -> list[dict]:
    """Inference throughput (images/s) for each model × batch size × dtype, random weights.

    ``dtypes`` defaults to what the device supports: fp32 and bf16 on CPU; fp32, fp16 and (compute
    capability ≥ 8) bf16 on CUDA. Low precision runs under ``torch.autocast``. CNNs run channels-last.
    Each row: model, params, batch_size, dtype, channels_last, images_per_s, ms_per_batch, device, hardware.
    """
    device = torch.device(device or "cpu")
    if isinstance(batch_sizes, int) or not all(isinstance(b, int) and b > 0 for b in batch_sizes):
        raise ValueError(f"batch_sizes must be a list of positive ints, got {batch_sizes!r}")
    supported = _supported_dtypes(device)
    dtypes = list(dtypes) if dtypes is not None else supported
    unsupported = [d for d in dtypes if d not in supported]
    if unsupported:
        raise ValueError(f"dtypes {unsupported} are not supported on {device}; choose from {supported}")
    rows = []
    for name in models:
        model = _build(name)  # validates the name before any timing
        params = sum(p.numel() for p in model.parameters())
        channels_last = name in _TORCHVISION_MODELS
        for batch_size in batch_sizes:
            for dtype in dtypes:
                rate = throughput(model, batch_size, img_size, device, dtype, channels_last, repeats=repeats)
                row = dict(
                    model=name,
                    params=params,
                    batch_size=batch_size,
                    dtype=dtype,
                    channels_last=channels_last,
                    images_per_s=round(rate, 2),
                    ms_per_batch=round(1000 * batch_size / rate, 2),
                    device=str(device),
                    hardware=hardware_name(device),
                )
                rows.append(row)
                if progress is not None:
                    progress(row)
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows of :func:`inference_benchmark` as a Markdown table."""
    lines = [
        "| model | params | batch | dtype | channels-last | images/s | ms/batch |",
        "|---|---:|---:|---|---|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['params'] / 1e6:.1f}M | {row['batch_size']} | {row['dtype']} | "
            f"{'yes' if row['channels_last'] else 'no'} | {row['images_per_s']:.1f} | {row['ms_per_batch']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vit_lessons.efficient``: the inference table (Markdown to stderr, JSON to stdout and a file)."""
    parser = argparse.ArgumentParser(description="Inference throughput: ViT-Ti/S vs ResNet-18/50, plus ToMe r vs r=0.")
    parser.add_argument(
        "--models", nargs="+", default=["vit_tiny_patch16_224", "vit_small_patch16_224", "resnet18", "resnet50"]
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64])
    parser.add_argument("--dtypes", nargs="+", default=None, help="fp32 bf16 fp16 (default: what the device supports)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: vit_lessons.settings.pick_device)")
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tome-r", type=int, default=16, help="token merging r for the ToMe ratio (0 to skip)")
    parser.add_argument("--tome-batch", type=int, default=8)
    parser.add_argument("--tome-model", default="vit_small_patch16_224", choices=sorted(MODEL_CONFIGS))
    parser.add_argument(
        "--output", "--json", dest="output", default="runs/inference.json", help="where to save the JSON ('' to skip)"
    )
    args = parser.parse_args(argv)

    from .settings import pick_device

    device = torch.device(args.device) if args.device else pick_device()
    rows = inference_benchmark(
        args.models,
        args.batch_sizes,
        args.dtypes,
        device,
        args.img_size,
        args.repeats,
        progress=lambda row: print(
            f"{row['model']:>22} batch {row['batch_size']:>3} {row['dtype']}: {row['images_per_s']:.1f} images/s",
            file=sys.stderr,
        ),
    )
    result = dict(hardware=hardware_name(device), torch=torch.__version__, rows=rows)
    if args.tome_r > 0:
        tome_model = VisionTransformer(**{**MODEL_CONFIGS[args.tome_model], "img_size": args.img_size})
        result["token_merging"] = tome_speedup(
            tome_model,
            r=args.tome_r,
            batch_size=args.tome_batch,
            img_size=args.img_size,
            device=device,
            repeats=args.repeats,
        )
    print(format_table(rows), file=sys.stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        os.makedirs(os.path.dirname(args.output) or ".", exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
        print(f"saved {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
