"""Lesson 05 exercises: multi-head self-attention, graded against
:class:`vit_lessons.attention.MultiHeadSelfAttention` with random weights.

The grader loads the reference's (randomised) parameters into the candidate, so a correct class
must use timm's names and shapes: ``qkv`` = Linear(D, 3D) whose output is [q | k | v] with the
heads contiguous inside each part, and ``proj`` = Linear(D, D).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..attention import MultiHeadSelfAttention
from . import Exercise, register
from .grading import Incorrect, as_count, compare_token_outputs, module_with_reference_weights, randomize_parameters

__all__ = ["MultiHeadAttention", "attention_parameter_count", "randomize_parameters", "grade_multi_head_attention"]


class MultiHeadAttention(nn.Module):
    """Reference solution: (B, N, D) → (B, N, D) with a fused qkv projection (timm's layout)."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)  # output [q | k | v], heads contiguous in each
        self.proj = nn.Linear(dim, dim)

    def forward(self, tokens):
        B, N, D = tokens.shape
        qkv = self.qkv(tokens).reshape(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 × (B, h, N, d)
        scores = q @ k.transpose(-2, -1) / self.head_dim**0.5  # (B, h, N, N): scale by the HEAD dim
        weights = scores.softmax(dim=-1)  # each query's weights over the keys sum to 1
        heads = weights @ v  # (B, h, N, d)
        merged = heads.transpose(1, 2).reshape(B, N, D)  # (B, N, h, d) → (B, N, D)
        return self.proj(merged)  # (B, N, D)


def _mha_variant(
    ref: MultiHeadSelfAttention,
    tokens: torch.Tensor,
    scale_dim: int | None = None,
    layout: str = "3hd",
    merge: str = "transpose",
    softmax_dim: int = -1,
    project: bool = True,
) -> torch.Tensor:
    """The reference forward with one usual mistake switched on (for diagnosis)."""
    B, N, D = tokens.shape
    h, d = ref.num_heads, ref.head_dim
    qkv = ref.qkv(tokens)  # (B, N, 3D)
    if layout == "3hd":
        q, k, v = qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
    else:  # (B, N, h, 3, d): [q_1 k_1 v_1 | q_2 k_2 v_2 | ...]
        q, k, v = qkv.reshape(B, N, h, 3, d).permute(3, 0, 2, 1, 4)
    scores = q @ k.transpose(-2, -1)
    if scale_dim != 0:
        scores = scores / math.sqrt(scale_dim or d)
    heads = scores.softmax(softmax_dim) @ v  # (B, h, N, d)
    merged = heads.transpose(1, 2).reshape(B, N, D) if merge == "transpose" else heads.reshape(B, N, D)
    return ref.proj(merged) if project else merged


def _diagnose(ref: MultiHeadSelfAttention, tokens: torch.Tensor, out: torch.Tensor) -> str:
    D, d = tokens.shape[-1], ref.head_dim
    guesses = [
        (
            dict(scale_dim=D),
            f"you scaled the scores by 1/sqrt(embed_dim) = 1/sqrt({D}); each head's dot product has only "
            f"head_dim = {d} terms, so divide by sqrt(head_dim) = sqrt({d}) (a popular tutorial makes this mistake)",
        ),
        (dict(scale_dim=0), "the scores are not scaled: divide q kᵀ by sqrt(head_dim) before the softmax"),
        (
            dict(layout="h3d"),
            "qkv was reshaped as (B, N, num_heads, 3, head_dim); its output is [q | k | v], each part holding "
            "the heads side by side, so reshape to (B, N, 3, num_heads, head_dim)",
        ),
        (
            dict(merge="reshape"),
            "heads were merged with reshape(B, N, D) straight from (B, h, N, d), which scrambles tokens and "
            "heads: transpose(1, 2) to (B, N, h, d) first, then reshape",
        ),
        (
            dict(softmax_dim=-2),
            "the softmax runs over the queries (dim=-2); each query's weights over the keys must sum to 1 (dim=-1)",
        ),
        (dict(project=False), "the output projection is missing: apply self.proj to the merged heads"),
    ]
    for kwargs, message in guesses:
        if torch.allclose(out, _mha_variant(ref, tokens, **kwargs), atol=1e-4, rtol=1e-4):
            return message
    return ""


def _check_parameters(candidate_module: nn.Module, dim: int, num_heads: int, qkv_bias: bool) -> None:
    """Explain missing, extra or wrongly shaped parameters before loading the reference weights."""
    head_dim = dim // num_heads
    params = dict(candidate_module.named_parameters())
    shared = [
        name
        for name, p in params.items()
        if p.ndim == 2 and p.shape[-1] == head_dim and p.shape[0] in (head_dim, 3 * head_dim)
    ]
    if shared and head_dim != dim:
        raise Incorrect(
            f"wrong parameter shapes: {', '.join(f'{n} {tuple(params[n].shape)}' for n in shared)} act on one "
            f"head's {head_dim} features, so one small projection is shared by all {num_heads} heads (the einsum "
            "SelfAttention of a popular tutorial does this). Each head needs its own query/key/value weights: "
            f"use qkv = nn.Linear(dim, 3 * dim), weight shape ({3 * dim}, {dim})."
        )
    expected = {"qkv.weight": (3 * dim, dim), "proj.weight": (dim, dim), "proj.bias": (dim,)}
    if qkv_bias:
        expected["qkv.bias"] = (3 * dim,)
    if "qkv.weight" not in params:
        raise Incorrect(
            f"no parameter qkv.weight (you have {sorted(params)}): name the fused projection self.qkv = "
            "nn.Linear(dim, 3 * dim, bias=qkv_bias), one matrix for queries, keys and values."
        )
    if "proj.weight" not in params:
        raise Incorrect(
            "the output projection is missing: add self.proj = nn.Linear(dim, dim) and apply it after merging heads."
        )
    if qkv_bias and "qkv.bias" not in params:
        raise Incorrect("qkv has no bias although qkv_bias=True: use nn.Linear(dim, 3 * dim, bias=qkv_bias).")
    if not qkv_bias and "qkv.bias" in params:
        raise Incorrect("qkv has a bias although qkv_bias=False: use nn.Linear(dim, 3 * dim, bias=qkv_bias).")
    extra = sorted(set(params) - set(expected))
    missing = sorted(set(expected) - set(params))
    if missing or extra:
        raise Incorrect(
            f"parameters {'missing ' + str(missing) if missing else ''}{'; ' if missing and extra else ''}"
            f"{'unexpected ' + str(extra) if extra else ''}: use exactly qkv and proj as in the exercise."
        )
    for name, shape in expected.items():
        if tuple(params[name].shape) != shape:
            raise Incorrect(f"parameter {name} has shape {tuple(params[name].shape)}, expected {shape}.")


# (dim, num_heads, qkv_bias, B, N): odd token counts, one to eight heads, with and without qkv bias.
CASES = [(24, 3, True, 2, 7), (32, 4, False, 3, 5), (16, 8, True, 1, 9), (12, 2, True, 2, 1), (20, 1, False, 2, 6)]


def grade_multi_head_attention(candidate) -> None:
    if not isinstance(candidate, type):
        raise Incorrect(f"pass the class itself (not an instance or a function); got {type(candidate).__name__}.")
    generator = torch.Generator().manual_seed(5)
    for dim, num_heads, qkv_bias, batch, tokens_n in CASES:
        setting = f"dim={dim}, num_heads={num_heads}, qkv_bias={qkv_bias}"
        ref = MultiHeadSelfAttention(dim, num_heads, qkv_bias=qkv_bias)
        module = module_with_reference_weights(
            candidate,
            ref,
            (dim, num_heads),
            dict(qkv_bias=qkv_bias),
            _check_parameters,
            generator,
        )
        for scale in (1.0, 3.0):  # larger inputs make the softmax sharper, where the scale matters more
            tokens = scale * torch.randn(batch, tokens_n, dim, generator=generator)
            compare_token_outputs(
                module,
                ref,
                tokens,
                setting,
                f"{setting}, {tokens_n} tokens",
                _diagnose,
                "compare each step with the lesson: split heads, scale, softmax, merge, project",
                "compute new tensors instead.",
                atol=1e-4,
            )


def attention_parameter_count(dim, num_heads, qkv_bias=True):
    """Reference solution: parameters of multi-head self-attention. The head count does not matter:
    the heads split the same D×3D projection, they do not add weights."""
    qkv = dim * 3 * dim + (3 * dim if qkv_bias else 0)
    proj = dim * dim + dim
    return qkv + proj


def grade_parameter_count(candidate) -> None:
    for dim, num_heads, qkv_bias in [(768, 12, True), (192, 3, True), (128, 8, False), (24, 1, True), (24, 24, False)]:
        expected = sum(p.numel() for p in MultiHeadSelfAttention(dim, num_heads, qkv_bias=qkv_bias).parameters())
        answer = as_count(candidate(dim, num_heads, qkv_bias=qkv_bias), "the number of parameters")
        if answer != expected:
            no_bias = expected - (3 * dim if qkv_bias else 0) - dim
            head_dim = dim // num_heads
            if answer == no_bias:
                hint = "count the biases too (qkv's when qkv_bias=True, and proj's always)"
            elif answer == 3 * head_dim * head_dim + (3 * head_dim if qkv_bias else 0) + dim * dim + dim:
                hint = "that is one head_dim×head_dim projection shared across heads; each head has its own"
            elif answer == num_heads * expected:
                hint = "the heads do not multiply the parameters: they split one D×3D projection"
            else:
                hint = "qkv is Linear(D, 3D) (with bias if qkv_bias), proj is Linear(D, D) with bias"
            raise Incorrect(f"for dim={dim}, num_heads={num_heads}, qkv_bias={qkv_bias}: got {answer}. {hint}.")


register(
    Exercise(
        id="05.multi_head_attention",
        title="Multi-head self-attention with a fused qkv projection",
        grader=grade_multi_head_attention,
        solution_obj=MultiHeadAttention,
        hint_text=(
            "qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias) and proj = nn.Linear(dim, dim). In forward: "
            "reshape qkv(tokens) to (B, N, 3, h, d), permute to (3, B, h, N, d) and unpack q, k, v; "
            "weights = (q @ k.transpose(-2, -1) / sqrt(d)).softmax(-1) with d the HEAD dim; "
            "(weights @ v).transpose(1, 2).reshape(B, N, D); then proj."
        ),
    )
)

register(
    Exercise(
        id="05.parameter_count",
        title="How many parameters does multi-head attention have?",
        grader=grade_parameter_count,
        solution_obj=attention_parameter_count,
        hint_text=(
            "Count qkv (a Linear from D to 3D, bias of 3D when qkv_bias) and proj (D to D with bias). "
            "Does the number of heads appear anywhere?"
        ),
    )
)
