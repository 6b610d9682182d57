"""Lesson 04 exercises: scaled dot-product attention, graded against
:func:`vit_lessons.attention.scaled_dot_product_attention`."""

from __future__ import annotations

import math

import torch

from ..attention import scaled_dot_product_attention
from . import Exercise, register
from .grading import Incorrect, as_float32, expect_close, expect_tensor


def attention(q, k, v, mask=None):
    """Reference solution: softmax(q kᵀ / sqrt(d)) v, mask True = may attend."""
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1) / d**0.5  # (..., Nq, Nk)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # each query's weights over the keys sum to 1
    return weights @ v, weights


def _call(candidate, q, k, v, mask=None):
    inputs = [t.clone() for t in (q, k, v)]
    result = candidate(q, k, v) if mask is None else candidate(q, k, v, mask)
    for name, before, after in zip("qkv", inputs, (q, k, v)):
        if not torch.equal(before, after):
            raise Incorrect(f"your function changed its input {name} in place; compute new tensors instead.")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Incorrect(
            f"return a pair (out, weights); got {type(result).__name__}. "
            "The weights are the softmax matrix, the output is weights @ v."
        )
    return tuple(as_float32(part) for part in result)


def _diagnose_weights(weights, q, k, mask, v=None) -> str:
    """Name the usual mistake behind wrong attention weights, or ''."""
    d = q.shape[-1]
    scores = q @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    guesses = {
        "no scaling: divide the scores by sqrt(d) before the softmax": scores,
        "you divided by d; divide by sqrt(d)": scores / d,
        "you multiplied by sqrt(d); divide by it": scores * math.sqrt(d),
    }
    if v is not None and v.shape[-1] != d:
        guesses["you divided by sqrt of the VALUE size; d is the query/key size q.shape[-1]"] = scores / math.sqrt(
            v.shape[-1]
        )
    for message, guess in guesses.items():
        if torch.allclose(weights, guess.softmax(-1), atol=1e-5, equal_nan=True):
            return message
    if torch.allclose(weights, (scores / math.sqrt(d)).softmax(-2), atol=1e-5, equal_nan=True):
        return "the softmax runs over the queries (dim=-2); each query's weights over the keys must sum to 1 (dim=-1)"
    return ""


def _check_batched(candidate, q, k, v) -> None:
    """(B, h, N, d) inputs: the weights' shape and values first, so a wrong formula gets a named mistake."""
    out, weights = _call(candidate, q, k, v)
    expected_out, expected_weights = scaled_dot_product_attention(q, k, v)
    weights = expect_tensor(weights, "weights")
    if tuple(weights.shape) == (2, 3, 7, 5):
        raise Incorrect("weights have shape (..., Nk, Nq): compute q @ k.transpose(-2, -1), which is (..., Nq, Nk).")
    expect_tensor(weights, "weights", (2, 3, 5, 7))
    if not torch.allclose(weights.detach(), expected_weights, atol=1e-5):
        hint = _diagnose_weights(weights.detach(), q, k, None, v)
        hint = hint or "check the formula softmax(q kᵀ / sqrt(d))"
        raise Incorrect(f"weights have the right shape but wrong values: {hint}.")
    expect_close(out, expected_out, "out", hint="It should be weights @ v, of shape (..., Nq, dv).")


def _check_unbatched(candidate, q, k, v) -> None:
    """Inputs without batch or head dimensions, (N, d): catches .T and fixed dimension numbers."""
    out, weights = _call(candidate, q, k, v)
    ref_out, ref_weights = scaled_dot_product_attention(q, k, v)
    expect_close(
        weights,
        ref_weights,
        "weights for 2-D inputs (N, d)",
        hint="Use transpose(-2, -1) rather than .T or fixed dimension numbers.",
    )
    expect_close(out, ref_out, "out for 2-D inputs (N, d)")


def _check_mask(candidate, q, k, v, mask) -> None:
    """A boolean (Nq, Nk) mask, True = may attend, broadcast over batch and heads."""
    out_m, weights_m = _call(candidate, q, k, v, mask)
    ref_out_m, ref_weights_m = scaled_dot_product_attention(q, k, v, mask)
    weights_m = expect_tensor(weights_m, "masked weights", (2, 3, 5, 7)).detach()
    if torch.allclose(weights_m, scaled_dot_product_attention(q, k, v)[1], atol=1e-5):
        raise Incorrect("the mask is ignored: set the scores of masked-out keys to -inf before the softmax.")
    inverted = ~mask
    inverted[:, 0] = True  # every query keeps one key, as in the mask itself
    if torch.allclose(weights_m, scaled_dot_product_attention(q, k, v, inverted)[1], atol=1e-5) or (
        weights_m[..., mask].abs().max() < 1e-6
    ):
        raise Incorrect("the mask is inverted: True means the query MAY attend to that key (as in torch's SDPA).")
    if weights_m[..., ~mask].abs().max() > 1e-6:
        raise Incorrect(
            "masked-out keys still get weight: fill their scores with -inf (not a large negative "
            "number times the mask, and not after the softmax)."
        )
    if not torch.allclose(weights_m.sum(-1), torch.ones(2, 3, 5), atol=1e-5):  # (B, h, Nq)
        raise Incorrect("with a mask, each row of weights must still sum to 1: mask the scores before the softmax.")
    expect_close(weights_m, ref_weights_m, "masked weights")
    expect_close(out_m, ref_out_m, "masked out")


def _check_padding_mask(candidate, q, k, v) -> None:
    """A key-padding mask (B, 1, 1, Nk): a different number of real tokens per sample, broadcast over
    heads and queries, as when images of different sizes share a batch."""
    padding = torch.arange(7) < torch.tensor([7, 4]).reshape(2, 1, 1, 1)  # (2, 1, 1, 7)
    try:
        out_p, weights_p = _call(candidate, q, k, v, padding)
    except Incorrect:
        raise
    except Exception as error:
        raise Incorrect(
            f"with a per-sample padding mask of shape (B, 1, 1, Nk) your code raised {type(error).__name__}: "
            f"{error}. Let the mask broadcast against the scores (masked_fill does); do not index or reshape it."
        ) from error
    ref_out_p, ref_weights_p = scaled_dot_product_attention(q, k, v, padding)
    expect_close(
        weights_p,
        ref_weights_p,
        "weights with a per-sample padding mask of shape (B, 1, 1, Nk)",
        hint="Let the mask broadcast against the scores (masked_fill does); do not index or reshape it.",
    )
    expect_close(out_p, ref_out_p, "out with a per-sample padding mask")


def _check_large_scores(candidate, big_q, v) -> None:
    """Large scores must not overflow (a hand-written exp/sum does)."""
    out_big, _ = _call(candidate, big_q, big_q, v)
    if not torch.isfinite(expect_tensor(out_big, "out for large scores")).all():
        raise Incorrect("large scores give inf/NaN: use tensor.softmax(dim=-1), which subtracts the maximum first.")


def grade_attention(candidate) -> None:
    generator = torch.Generator().manual_seed(4)

    def randn(*shape):
        return torch.randn(*shape, generator=generator)

    # One generator for all checks: the order of the draws below fixes what each check sees.
    # Different query and key counts, and a value size that differs from d, so transposes show.
    q, k, v = randn(2, 3, 5, 8), randn(2, 3, 7, 8), randn(2, 3, 7, 6)
    _check_batched(candidate, q, k, v)
    _check_unbatched(candidate, randn(4, 16), randn(6, 16), randn(6, 3))
    mask = torch.rand(5, 7, generator=generator) > 0.5
    mask[:, 0] = True  # every query may attend to at least one key
    _check_mask(candidate, q, k, v, mask)
    _check_padding_mask(candidate, q, k, v)
    _check_large_scores(candidate, randn(1, 4, 8) * 40, randn(1, 4, 8))


def padding_mask(lengths, num_tokens):
    """Reference solution: (B,) real-token counts → (B, 1, 1, N) boolean key mask, True = may attend."""
    import torch

    positions = torch.arange(num_tokens, device=lengths.device)  # (N,)
    return (positions < lengths.reshape(-1, 1)).reshape(-1, 1, 1, num_tokens)  # (B, 1, 1, N)


def grade_padding_mask(candidate) -> None:
    lengths = torch.tensor([5, 2, 1, 3])
    mask = candidate(lengths, 5)
    expected = padding_mask(lengths, 5)
    mask = expect_tensor(mask, "the mask")
    if mask.dtype != torch.bool:
        raise Incorrect(
            f"the mask has dtype {mask.dtype}; return a boolean tensor (torch's SDPA reads a float mask as "
            "numbers ADDED to the scores, so a 0/1 float mask would mask nothing)."
        )
    if tuple(mask.shape) == (4, 5):
        raise Incorrect(
            "the mask has shape (B, N); scores are (B, h, Nq, Nk), and (B, N) would broadcast B against Nq. "
            "Return (B, 1, 1, N): .reshape(B, 1, 1, N) or mask[:, None, None, :]."
        )
    expect_tensor(mask, "the mask", (4, 1, 1, 5))
    if torch.equal(mask, ~expected):
        raise Incorrect("the mask is inverted: True marks the real tokens, the keys a query MAY attend to.")
    if torch.equal(mask, padding_mask(lengths + 1, 5)) or torch.equal(mask, padding_mask(lengths - 1, 5)):
        raise Incorrect("off by one: a sample with length L has real tokens 0 .. L-1, so use positions < L.")
    if not torch.equal(mask, expected):
        raise Incorrect("wrong mask: for sample b, key j may be attended to exactly when j < lengths[b].")
    lengths2 = torch.tensor([8, 3])
    expect_tensor(candidate(lengths2, 9), "the mask for 9 tokens", (2, 1, 1, 9))
    if not torch.equal(candidate(lengths2, 9), padding_mask(lengths2, 9)):
        raise Incorrect("the mask must use num_tokens, not a fixed size or lengths.max().")


register(
    Exercise(
        id="04.padding_mask",
        title="A key-padding mask for a batch of different lengths",
        grader=grade_padding_mask,
        solution_obj=padding_mask,
        hint_text=(
            "torch.arange(num_tokens) < lengths.reshape(-1, 1) gives (B, N); reshape it to (B, 1, 1, N) so it "
            "broadcasts over heads and queries."
        ),
    )
)

register(
    Exercise(
        id="04.attention",
        title="Scaled dot-product attention",
        grader=grade_attention,
        solution_obj=attention,
        hint_text=(
            "scores = q @ k.transpose(-2, -1) / sqrt(d), with d = q.shape[-1]; where mask is False set the "
            "score to -inf (scores.masked_fill(~mask, float('-inf'))); weights = scores.softmax(dim=-1); "
            "return weights @ v, weights."
        ),
    )
)
