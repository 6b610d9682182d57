"""Bug zoo for 04.attention and 04.padding_mask (run by test_zoos.py), and what ex.check prints."""

import math

import pytest
import torch

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("04.attention")


def _masked(scores, mask):
    return scores if mask is None else scores.masked_fill(~mask, float("-inf"))


def no_scale(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1), mask).softmax(-1)
    return w @ v, w


def scale_by_d(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / q.shape[-1], mask).softmax(-1)
    return w @ v, w


def softmax_over_queries(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(-2)
    return w @ v, w


def ignores_mask(q, k, v, mask=None):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    return w @ v, w


def inverted_mask(q, k, v, mask=None):
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.masked_fill(mask, float("-inf"))
    w = s.softmax(-1)
    return w @ v, w


def mask_after_softmax(q, k, v, mask=None):
    w = (q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])).softmax(-1)
    if mask is not None:
        w = w * mask
    return w @ v, w


def uses_dot_T(q, k, v, mask=None):
    w = (q @ k.transpose(2, 3) / math.sqrt(q.shape[-1])) if q.ndim == 4 else (q @ k.T)
    w = _masked(w, mask).softmax(-1)
    return w @ v, w


def returns_only_output(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(-1)
    return w @ v


def transposed_weights(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(-1)
    return w @ v, w.transpose(-2, -1)


def naive_exp(q, k, v, mask=None):
    s = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask)
    e = s.exp()
    w = e / e.sum(-1, keepdim=True)
    return w @ v, w


def weights_times_q(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), mask).softmax(-1)
    return w @ k, w


def crashes(q, k, v, mask=None):
    return q @ v, None


def stub(q, k, v, mask=None):
    raise NotImplementedError


def sqrt_of_value_size(q, k, v, mask=None):
    w = _masked(q @ k.transpose(-2, -1) / math.sqrt(v.shape[-1]), mask).softmax(-1)
    return w @ v, w


def padding_mask_indexing(q, k, v, mask=None):
    """Handles a (Nq, Nk) mask by boolean indexing, which breaks on a broadcast (B, 1, 1, Nk) mask."""
    s = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        s = s.clone()
        s[..., ~mask.reshape(s.shape[-2], -1)] = float("-inf")
    w = s.softmax(-1)
    return w @ v, w


ATTENTION_BUGS = {
    no_scale: "no scaling",
    scale_by_d: "divided by d",
    softmax_over_queries: "over the queries",
    ignores_mask: "mask is ignored",
    inverted_mask: "mask is inverted",
    mask_after_softmax: "sum to 1",
    uses_dot_T: "2-D inputs",
    returns_only_output: "return a pair",
    transposed_weights: r"\(\.\.\., Nk, Nq\)",
    naive_exp: "large scores",
    weights_times_q: r"out has shape \(2, 3, 5, 8\), expected \(2, 3, 5, 6\)",
    crashes: "raised RuntimeError",
    sqrt_of_value_size: "VALUE size",
    padding_mask_indexing: "padding mask",
}


def test_check_prints_status(ex, capsys):
    ex.check(stub)
    assert "not attempted" in capsys.readouterr().out


# 04.padding_mask


def pm_reference_like(lengths, num_tokens):
    return (torch.arange(num_tokens) < lengths[:, None])[:, None, None, :]


def pm_2d(lengths, num_tokens):
    return torch.arange(num_tokens) < lengths[:, None]


def pm_float(lengths, num_tokens):
    return pm_reference_like(lengths, num_tokens).float()


def pm_inverted(lengths, num_tokens):
    return ~pm_reference_like(lengths, num_tokens)


def pm_off_by_one(lengths, num_tokens):
    return (torch.arange(num_tokens) <= lengths[:, None])[:, None, None, :]


def pm_uses_max_length(lengths, num_tokens):
    return pm_reference_like(lengths, int(lengths.max()))


PADDING_MASK_BUGS = {
    pm_2d: r"shape \(B, N\)",
    pm_float: "boolean",
    pm_inverted: "inverted",
    pm_off_by_one: "off by one",
    pm_uses_max_length: r"\(2, 1, 1, 9\)",
}

ZOO = {"04.attention": ATTENTION_BUGS, "04.padding_mask": PADDING_MASK_BUGS}


def test_padding_mask_written_out_is_correct():
    assert get_exercise("04.padding_mask").grade(pm_reference_like).status == "correct"


def test_exact_values_computed_in_float64_are_correct():
    # A student who computes in double precision is right; the grader compares values, not dtypes.
    from vit_lessons.exercises.lesson04 import attention

    def in_float64(q, k, v, mask=None):
        return attention(q.double(), k.double(), v.double(), mask)

    assert get_exercise("04.attention").grade(in_float64).status == "correct"
