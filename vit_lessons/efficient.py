"""Efficient ViT inference: fused attention, ``torch.compile``, token merging, and a throughput table.

Three ideas, each measured in lesson 13:

1. **Fused attention.** ``F.scaled_dot_product_attention`` (SDPA) never stores the (N, N) score
   matrix when it can use a flash or memory-efficient kernel, so its memory grows as O(N) instead
   of O(N²). The "efficient attention" many tutorials show (plain attention with a mask) computes
   the same (N, N) scores and saves nothing: :func:`masked_attention` is that, for comparison.
2. **torch.compile**: :func:`compile_benchmark` measures the compile time and the steady-state speed-up.
3. **Token merging** (ToMe; Bolya et al., ICLR 2023, "Token Merging: Your ViT But Faster"): in each
   block, after attention, merge the r most similar token pairs by bipartite soft matching, so the
   MLP and every later block see fewer tokens. It needs no retraining. Merged tokens are size-weighted
   averages, and later attention is *proportional* (Eq. 1 of the paper):

       A = softmax(q kᵀ / sqrt(d) + log s)

   with s the number of patches each key token stands for. :func:`apply_token_merging` patches a
   :class:`~vit_lessons.vit.VisionTransformer` in place and returns a handle whose ``remove()``
   restores it exactly.

:func:`inference_benchmark` measures images/s for ViTs and torchvision ResNets;
``python -m vit_lessons.efficient`` (and ``python -m vit_lessons.bench --inference``) print it as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .settings import hardware_name
from .timing import _device_of, synchronize, time_call, time_calls
from .vit import MODEL_CONFIGS, VisionTransformer

__all__ = [
    "explicit_attention",
    "masked_attention",
    "sdpa_backend",
    "time_call",
    "peak_memory",
    "attention_benchmark",
    "compile_benchmark",
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


# -- 3. token merging ----------------------------------------------------------------------------
class MergePlan(NamedTuple):
    """Which tokens bipartite soft matching merges. Set A = even positions, set B = odd positions.

    ``kept_a`` (B, n_A - r): A tokens left alone, in their original order; ``merged_a`` (B, r): the
    A tokens merged away; ``into_b`` (B, r): the B token each of them is merged into.
    """

    kept_a: torch.Tensor
    merged_a: torch.Tensor
    into_b: torch.Tensor


def bipartite_soft_matching(metric: torch.Tensor, r: int) -> MergePlan:
    """ToMe's bipartite soft matching (Bolya et al. 2023, Sec. 3): (B, n, c) similarity features → plan.

    1. split the tokens alternately into A (even positions) and B (odd positions);
    2. connect each A token to its most similar B token (cosine similarity);
    3. keep the r most similar edges: those A tokens are merged into their B partner.

    ``r`` is clamped to the size of A, ceil(n/2). Prefix tokens (class token) must be left out of
    ``metric`` by the caller: they are never merged.
    """
    if metric.ndim != 3:
        raise ValueError(f"metric must have shape (B, n, c), got {tuple(metric.shape)}")
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # cosine similarity
    set_a, set_b = metric[:, ::2], metric[:, 1::2]  # (B, n_A, c), (B, n_B, c)
    r = max(0, min(int(r), set_a.shape[1] if set_b.shape[1] else 0))
    scores = set_a @ set_b.transpose(-1, -2)  # (B, n_A, n_B)
    best_score, best_b = scores.max(dim=-1)  # (B, n_A) each: every A token's best partner
    order = best_score.argsort(dim=-1, descending=True, stable=True)  # most similar edges first
    merged_a = order[:, :r]  # (B, r)
    kept_a = order[:, r:].sort(dim=-1).values  # (B, n_A - r), original order
    into_b = best_b.gather(1, merged_a)  # (B, r)
    return MergePlan(kept_a, merged_a, into_b)


def _merge_sum(plan: MergePlan, values: torch.Tensor) -> torch.Tensor:
    """Apply a plan, summing merged values: (B, n, c) → (B, n - r, c) as [kept A | B]."""
    set_a, set_b = values[:, ::2], values[:, 1::2]  # (B, n_A, c), (B, n_B, c)
    channels = values.shape[-1]
    kept = set_a.gather(1, plan.kept_a[..., None].expand(-1, -1, channels))  # (B, n_A - r, c)
    moved = set_a.gather(1, plan.merged_a[..., None].expand(-1, -1, channels))  # (B, r, c)
    set_b = set_b.scatter_add(1, plan.into_b[..., None].expand(-1, -1, channels), moved)  # (B, n_B, c)
    return torch.cat([kept, set_b], dim=1)


def merge_weighted(plan: MergePlan, tokens: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge tokens as size-weighted averages; sizes add up.

    tokens (B, n, D), size (B, n, 1) → tokens (B, n - r, D), size (B, n - r, 1).
    """
    summed = _merge_sum(plan, tokens * size)  # Σ s_i x_i
    new_size = _merge_sum(plan, size)  # Σ s_i
    return summed / new_size, new_size


def _r_per_block(r, depth: int) -> list[int]:
    if isinstance(r, bool) or not isinstance(r, (int, list, tuple)):
        raise TypeError(f"r must be an int or a list of ints (one per block), got {type(r).__name__}")
    values = [r] * depth if isinstance(r, int) else list(r)
    if len(values) != depth:
        raise ValueError(f"r has {len(values)} entries but the model has {depth} blocks; give one per block")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"r values must be ints, got {value!r}")
        if value < 0:
            raise ValueError(f"r must be non-negative (tokens merged per block), got {value}")
    return values


def token_schedule(num_tokens: int, r, depth: int, num_prefix_tokens: int = 1) -> list[int]:
    """Token counts entering each block and leaving the last: a list of depth + 1 numbers.

    Block l merges min(r_l, (N_l - prefix) // 2) tokens: bipartite matching can merge at most the
    size of set A, and we keep set B whole, so r larger than possible is clamped, never an error.
    """
    counts = [num_tokens]
    for r_block in _r_per_block(r, depth):
        current = counts[-1]
        counts.append(current - min(r_block, (current - num_prefix_tokens) // 2))
    return counts


@dataclass
class _MergeState:
    r: list[int]
    num_prefix_tokens: int
    trace_source: bool
    size: torch.Tensor | None = None  # (B, N, 1) patches per token
    source: torch.Tensor | None = None  # (B, N, N_in) which input tokens each token holds
    token_counts: list[int] = field(default_factory=list)

    def reset(self) -> None:
        self.size, self.source, self.token_counts = None, None, []


def _attention_with_size(attn: nn.Module, tokens: torch.Tensor, size: torch.Tensor | None):
    """Multi-head attention with proportional attention: logits + log(size of each key).

    tokens (B, N, D), size (B, N, 1) or None → output (B, N, D) and the keys (B, h, N, d)."""
    B, N, D = tokens.shape
    q, k, v = attn.split_heads(tokens)  # (B, h, N, d) each
    bias = None if size is None else size.log().to(q.dtype).reshape(B, 1, 1, N)  # (B, 1, 1, N)
    dropout = attn.attn_drop.p if attn.training else 0.0
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
    else:
        scores = q @ k.transpose(-2, -1) * attn.scale  # (B, h, N, N)
        if bias is not None:
            scores = scores + bias
        out = attn.attn_drop(scores.softmax(dim=-1)) @ v
    out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
    return attn.proj_drop(attn.proj(out)), k


def _merging_block_forward(block: nn.Module, state: _MergeState, index: int, tokens: torch.Tensor) -> torch.Tensor:
    """EncoderBlock.forward with ToMe between attention and MLP. (B, N, D) → (B, N - r_l, D)."""
    if index == 0:
        state.reset()
    if state.trace_source and state.source is None:
        B, N, _ = tokens.shape
        state.source = torch.eye(N, device=tokens.device).expand(B, N, N)  # (B, N, N_in)
    state.token_counts.append(tokens.shape[1])
    attended, keys = _attention_with_size(block.attn, block.norm1(tokens), state.size)
    tokens = tokens + block.drop_path1(attended)  # (B, N, D)

    prefix = state.num_prefix_tokens
    r = min(state.r[index], (tokens.shape[1] - prefix) // 2)
    if r > 0:
        metric = keys.mean(dim=1)  # (B, N, d): keys averaged over heads, the paper's similarity
        plan = bipartite_soft_matching(metric[:, prefix:], r)
        if state.size is None:
            state.size = tokens.new_ones(tokens.shape[0], tokens.shape[1], 1, dtype=torch.float32)
        merged, size = merge_weighted(plan, tokens[:, prefix:].float(), state.size[:, prefix:])
        tokens = torch.cat([tokens[:, :prefix], merged.to(tokens.dtype)], dim=1)  # (B, N - r, D)
        state.size = torch.cat([state.size[:, :prefix], size], dim=1)  # (B, N - r, 1)
        if state.source is not None:
            source = _merge_sum(plan, state.source[:, prefix:])  # disjoint sets: the sum is the union
            state.source = torch.cat([state.source[:, :prefix], source], dim=1)
    tokens = tokens + block.drop_path2(block.mlp(block.norm2(tokens)))  # (B, N - r, D)
    if index == len(state.r) - 1:
        state.token_counts.append(tokens.shape[1])
    return tokens


_ACTIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its TokenMergingHandle


class TokenMergingHandle:
    """Returned by :func:`apply_token_merging`. After a forward pass:

    - ``token_counts``: tokens entering each block, then leaving the last (depth + 1 numbers);
    - ``size``: (B, N_out, 1), how many input tokens each output token stands for (sums to N_in);
    - ``source``: (B, N_out, N_in) 0/1 membership, when created with ``trace_source=True``.

    ``remove()`` puts the model back exactly as it was (also on leaving a ``with`` block); the
    figures of the last forward pass stay readable.
    """

    def __init__(self, model: nn.Module, blocks: list[nn.Module], state: _MergeState):
        self._model = weakref.ref(model)
        self._blocks = blocks
        self._state = state
        self.r = list(state.r)
        self.removed = False

    @property
    def token_counts(self) -> list[int]:
        return list(self._state.token_counts)

    @property
    def size(self) -> torch.Tensor | None:
        state = self._state
        if state.size is None and state.token_counts:  # nothing merged: every token is one patch
            return torch.ones(1, state.token_counts[-1], 1)
        return state.size

    @property
    def source(self) -> torch.Tensor | None:
        return self._state.source

    def remove(self) -> None:
        """Undo the patch: the blocks get their own ``forward`` back. Safe to call twice."""
        if self.removed:
            return
        for block in self._blocks:
            if "forward" in block.__dict__:
                del block.forward
        model = self._model()
        if model is not None:
            _ACTIVE.pop(model, None)
        self.removed = True

    def __enter__(self) -> TokenMergingHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"TokenMergingHandle(r={self.r}, removed={self.removed})"


_BLOCK_PARTS = ("norm1", "attn", "drop_path1", "norm2", "mlp", "drop_path2")
_ATTN_PARTS = ("qkv", "proj", "num_heads", "head_dim", "fused_attn", "split_heads", "scale")


def apply_token_merging(model: nn.Module, r, trace_source: bool = False) -> TokenMergingHandle:
    """Patch a ViT in place so each block merges ``r`` tokens (ToMe), without retraining.

    Args:
        model: a :class:`~vit_lessons.vit.VisionTransformer` (or any model with ``blocks`` of
            :class:`~vit_lessons.blocks.EncoderBlock` and ``num_prefix_tokens``).
        r: tokens merged per block: an int (the same in every block) or one int per block. Where
            r is more than a block can merge (half its non-prefix tokens), it is clamped to that;
            see :func:`token_schedule`. The class token (all ``num_prefix_tokens``) is never merged.
        trace_source: also track which input patches each token holds (``handle.source``), for
            visualisation; costs an (N, N_in) matrix per image.

    Returns a :class:`TokenMergingHandle`; ``handle.remove()`` restores the model bit for bit
    (no parameter or buffer is touched; only the blocks' ``forward`` is overridden).
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (a VisionTransformer), got {type(model).__name__}")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.Sequential, nn.ModuleList)) or len(blocks) == 0:
        raise TypeError(
            f"{type(model).__name__} has no `blocks` of encoder blocks; token merging needs a plain ViT "
            "(vit_lessons.vit.VisionTransformer), not a CNN or a hierarchical model such as Swin"
        )
    for index, block in enumerate(blocks):
        missing = [name for name in _BLOCK_PARTS if not hasattr(block, name)]
        missing += [f"attn.{name}" for name in _ATTN_PARTS if not hasattr(getattr(block, "attn", None), name)]
        if missing:
            raise TypeError(
                f"blocks[{index}] ({type(block).__name__}) lacks {missing}; apply_token_merging works on "
                "vit_lessons.blocks.EncoderBlock (pre-norm, MultiHeadSelfAttention)"
            )
    if model in _ACTIVE:
        raise ValueError("this model already has token merging applied; call handle.remove() before applying again")
    if isinstance(trace_source, bool) is False:
        raise TypeError(f"trace_source must be True or False, got {trace_source!r}")
    state = _MergeState(_r_per_block(r, len(blocks)), int(getattr(model, "num_prefix_tokens", 1)), trace_source)
    for index, block in enumerate(blocks):
        if "forward" in block.__dict__:
            raise ValueError(f"blocks[{index}] already has its forward replaced (by another tool); remove that first")
    patched = list(blocks)
    for index, block in enumerate(patched):
        block.forward = _BoundMergingForward(block, state, index)
    handle = TokenMergingHandle(model, patched, state)
    _ACTIVE[model] = handle
    return handle


class _BoundMergingForward:
    """``block.forward`` while token merging is on (holds the block weakly: no reference cycle)."""

    def __init__(self, block: nn.Module, state: _MergeState, index: int):
        self._block = weakref.ref(block)
        self._state = state
        self._index = index

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return _merging_block_forward(self._block(), self._state, self._index, tokens)


def patch_labels(source: torch.Tensor, num_prefix_tokens: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Which output token each patch ended in: (B, N_out, N_in) source → (B, gh, gw) integer labels.

    Prefix tokens are dropped from both sides; labels number the output patch tokens from 0.
    """
    if source is None:
        raise ValueError("no source recorded: apply_token_merging(model, r, trace_source=True), then run the model")
    patches = source[:, num_prefix_tokens:, num_prefix_tokens:]  # (B, N_out - p, N_in - p)
    gh, gw = grid_size
    if patches.shape[-1] != gh * gw:
        raise ValueError(f"source covers {patches.shape[-1]} patches, but grid {grid_size} holds {gh * gw}")
    return patches.argmax(dim=1).reshape(-1, gh, gw)  # (B, gh, gw)


def merged_image(image: torch.Tensor, labels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Paint each merged region with its mean colour: image (C, H, W), labels (gh, gw) → (C, H, W)."""
    if image.ndim != 3 or labels.ndim != 2:
        raise ValueError("pass one image (C, H, W) and its labels (gh, gw)")
    pixel_labels = labels.repeat_interleave(patch_size, 0).repeat_interleave(patch_size, 1)  # (H, W)
    if pixel_labels.shape != image.shape[1:]:
        raise ValueError(f"labels cover {tuple(pixel_labels.shape)} pixels, the image is {tuple(image.shape[1:])}")
    flat_labels = pixel_labels.flatten()  # (H·W,)
    count = int(flat_labels.max()) + 1
    pixels = image.flatten(1).float()  # (C, H·W)
    sums = torch.zeros(image.shape[0], count).index_add_(1, flat_labels, pixels)
    counts = torch.zeros(count).index_add_(0, flat_labels, torch.ones_like(flat_labels, dtype=torch.float))
    means = sums / counts.clamp_min(1)  # (C, regions)
    return means[:, flat_labels].reshape(image.shape)


# -- 4. throughput -------------------------------------------------------------------------------
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
    per-round ratios.
    """
    if model is None:
        model = VisionTransformer(**{**MODEL_CONFIGS["vit_small_patch16_224"], "img_size": img_size})
    model.eval()
    base_rates, merged_rates, ratios = [], [], []
    for _ in range(rounds):
        base = throughput(model, batch_size, img_size, device, repeats=repeats)
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
