"""Bug zoo for 05.multi_head_attention and 05.parameter_count (run by test_zoos.py), and the answers the
graders accept or refuse besides it."""

import math

import pytest
import torch
from torch import nn

from vit_lessons.exercises import get_exercise
from vit_lessons.exercises.lesson05 import MultiHeadAttention as Reference


@pytest.fixture(scope="module")
def ex():
    return get_exercise("05.multi_head_attention")


class Configurable(Reference):
    """The reference with one switch per typical mistake."""

    scale_by_embed_dim = False
    layout_h3d = False
    merge_without_transpose = False
    softmax_dim = -1
    use_proj = True

    def forward(self, tokens):
        B, N, D = tokens.shape
        h, d = self.num_heads, self.head_dim
        qkv = self.qkv(tokens)
        if self.layout_h3d:
            q, k, v = qkv.reshape(B, N, h, 3, d).permute(3, 0, 2, 1, 4)
        else:
            q, k, v = qkv.reshape(B, N, 3, h, d).permute(2, 0, 3, 1, 4)
        scale = math.sqrt(D if self.scale_by_embed_dim else d)
        heads = (q @ k.transpose(-2, -1) / scale).softmax(self.softmax_dim) @ v
        merged = heads.reshape(B, N, D) if self.merge_without_transpose else heads.transpose(1, 2).reshape(B, N, D)
        return self.proj(merged) if self.use_proj else merged


class ScaleByEmbedDim(Configurable):
    scale_by_embed_dim = True


class LayoutH3D(Configurable):
    layout_h3d = True


class MergeWithoutTranspose(Configurable):
    merge_without_transpose = True


class SoftmaxOverQueries(Configurable):
    softmax_dim = -2


class ProjNotApplied(Configurable):
    use_proj = False


class NoScale(Reference):
    def forward(self, tokens):
        B, N, D = tokens.shape
        q, k, v = self.qkv(tokens).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return self.proj((q @ k.transpose(-2, -1)).softmax(-1).matmul(v).transpose(1, 2).reshape(B, N, D))


class SharedHeadLinear(nn.Module):
    """A popular tutorial's einsum SelfAttention: one head_dim×head_dim Linear per q/k/v, shared by
    all heads, and the scores scaled by sqrt(embed_dim)."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.heads, self.head_dim, self.dim = num_heads, dim // num_heads, dim
        self.values = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.keys = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.queries = nn.Linear(self.head_dim, self.head_dim, bias=False)
        self.fc_out = nn.Linear(dim, dim)

    def forward(self, tokens):
        B, N, D = tokens.shape
        x = tokens.reshape(B, N, self.heads, self.head_dim)
        q, k, v = self.queries(x), self.keys(x), self.values(x)
        energy = torch.einsum("nqhd,nkhd->nhqk", q, k)
        attention = torch.softmax(energy / self.dim**0.5, dim=3)
        return self.fc_out(torch.einsum("nhql,nlhd->nqhd", attention, v).reshape(B, N, D))


class NoProjection(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)

    def forward(self, tokens):
        B, N, D = tokens.shape
        q, k, v = self.qkv(tokens).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        return ((q @ k.transpose(-2, -1) / self.head_dim**0.5).softmax(-1) @ v).transpose(1, 2).reshape(B, N, D)


class AlwaysNoQkvBias(Reference):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__(dim, num_heads, qkv_bias=False)


class AlwaysQkvBias(Reference):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__(dim, num_heads, qkv_bias=True)


class SeparateLinears(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.q, self.k, self.v = (nn.Linear(dim, dim, bias=qkv_bias) for _ in range(3))
        self.proj = nn.Linear(dim, dim)


class ReturnsWeightsToo(Reference):
    def forward(self, tokens):
        return super().forward(tokens), None


class ChangesInput(Reference):
    def forward(self, tokens):
        out = super().forward(tokens)
        tokens.zero_()
        return out


class Crashes(Reference):
    def forward(self, tokens):
        return tokens @ self.qkv.weight


MULTI_HEAD_ATTENTION_BUGS = {
    ScaleByEmbedDim: r"1/sqrt\(embed_dim\)",
    NoScale: "not scaled",
    LayoutH3D: r"\(B, N, num_heads, 3, head_dim\)",
    MergeWithoutTranspose: "without transpose|straight from",
    SoftmaxOverQueries: "over the queries",
    ProjNotApplied: "output projection is missing: apply",
    SharedHeadLinear: r"wrong parameter shapes: .*shared by all 3 heads",
    NoProjection: "output projection is missing: add",
    AlwaysNoQkvBias: "no bias although qkv_bias=True",
    AlwaysQkvBias: "has a bias although qkv_bias=False",
    SeparateLinears: "no parameter qkv.weight",
    ReturnsWeightsToo: "should be a torch.Tensor, got tuple",
    ChangesInput: "in place",
    Crashes: "raised RuntimeError",
}


def test_instance_instead_of_class(ex):
    result = ex.grade(Reference(8, 2))
    assert result.status == "incorrect" and "class itself" in result.message


def test_library_class_is_correct(ex):
    from vit_lessons.attention import MultiHeadSelfAttention

    for fused in (True, False):

        class Library(MultiHeadSelfAttention):
            def __init__(self, dim, num_heads, qkv_bias=True, fused=fused):
                super().__init__(dim, num_heads, qkv_bias=qkv_bias)
                self.fused_attn = fused

        assert ex.grade(Library).status == "correct"


# 05.parameter_count


def count_no_bias(dim, num_heads, qkv_bias=True):
    return 4 * dim * dim


def count_shared(dim, num_heads, qkv_bias=True):
    d = dim // num_heads
    return 3 * d * d + (3 * d if qkv_bias else 0) + dim * dim + dim


def count_per_head(dim, num_heads, qkv_bias=True):
    return num_heads * (4 * dim * dim + (3 * dim if qkv_bias else 0) + dim)


def count_ignores_flag(dim, num_heads, qkv_bias=True):
    return 4 * dim * dim + 4 * dim


PARAMETER_COUNT_BUGS = {
    count_no_bias: "biases",
    count_shared: "shared across heads",
    count_per_head: "do not multiply",
    count_ignores_flag: "qkv_bias=False: got",
}

ZOO = {"05.multi_head_attention": MULTI_HEAD_ATTENTION_BUGS, "05.parameter_count": PARAMETER_COUNT_BUGS}


def test_parameter_count_as_a_tensor_is_incorrect():
    count = get_exercise("05.parameter_count").grade(lambda dim, num_heads, qkv_bias=True: torch.tensor(4 * dim * dim))
    assert count.status == "incorrect"


@pytest.mark.parametrize("number_type", [float, "numpy", "tensor"])
def test_a_right_parameter_count_in_any_number_type_is_correct(number_type):
    import numpy as np

    from vit_lessons.exercises.lesson05 import attention_parameter_count

    convert = {"numpy": np.int64, "tensor": torch.tensor}.get(number_type, number_type)
    result = get_exercise("05.parameter_count").grade(
        lambda *args, **kwargs: convert(attention_parameter_count(*args, **kwargs))
    )
    assert result.status == "correct", result.message
