"""Bug zoo for 07.count_parameters (run by test_zoos.py), and a written-out count the grader accepts."""

import pytest

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("07.count_parameters")


def _count(
    embed_dim,
    depth,
    mlp_ratio,
    patch_size,
    img_size,
    in_chans,
    num_classes,
    *,
    cls=1,
    pos=True,
    grid_squared=True,
    chans=True,
    qkv_out=3,
    attn_proj=True,
    norms_per_block=2,
    norm_params=2,
    final_norm=True,
    bias=1,
    hidden=None,
    head_bias=True,
):
    """A parameter count written out term by term, each term switchable to a typical mistake."""
    D = embed_dim
    h = int(D * mlp_ratio) if hidden is None else hidden(D)
    side = img_size // patch_size
    N = side**2 if grid_squared else side
    total = (in_chans if chans else 1) * patch_size**2 * D + bias * D
    total += cls * D
    total += (N + cls) * D if pos else 0
    block = norms_per_block * norm_params * D
    block += D * qkv_out * D + bias * qkv_out * D
    block += (D * D + bias * D) if attn_proj else 0
    block += D * h + bias * h + h * D + bias * D
    total += depth * block
    total += norm_params * D if final_norm else 0
    if num_classes:
        total += D * num_classes + (num_classes if head_bias and bias else 0)
    return total


def _bug(**mistake):
    def candidate(*args):
        return _count(*args, **mistake)

    candidate.__name__ = "_".join(f"{k}_{getattr(v, '__name__', v)}" for k, v in mistake.items())
    return candidate


def forgets_class_token(*args):
    # no class token: no cls parameter, and the position embedding has only N rows
    return _count(*args, cls=0)


def head_counted_when_no_classes(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes):
    extra = embed_dim if num_classes == 0 else 0  # a D→0 "head" with D biases? no: a made-up term
    return _count(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes) + extra


def off_by_one_somewhere(*args):
    return _count(*args) + 1


def four_times_embed_dim(D):
    return 4 * D


def untruncated_hidden(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes):
    # h = D * mlp_ratio left a float: a fractional count, or a whole one that is off, depending on the config
    return _count(
        embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes, hidden=lambda D: D * mlp_ratio
    )


def rounded_hidden(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes):
    return _count(
        embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes, hidden=lambda D: round(D * mlp_ratio)
    )


def forgotten_no_head_branch(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes):
    if num_classes == 0:
        raise NotImplementedError("no head: count later")
    return _count(embed_dim, depth, mlp_ratio, patch_size, img_size, in_chans, num_classes)


ZOO = {
    "07.count_parameters": {
        _bug(pos=False): "forgot the position embedding",
        _bug(grid_squared=False): r"\(img_size // patch_size\) \*\* 2",
        _bug(chans=False): "left out in_chans",
        _bug(qkv_out=1): "qkv maps D to 3·D",
        _bug(attn_proj=False): "output projection",
        _bug(norms_per_block=1): "two LayerNorms",
        _bug(norm_params=1): "weight and a bias",
        _bug(final_norm=False): "2·D short: count the final LayerNorm",
        _bug(bias=0): "biases are missing",
        _bug(hidden=four_times_embed_dim): "not a fixed 4·embed_dim",
        _bug(head_bias=False): "num_classes biases",
        forgets_class_token: "2·D short.*the class token",
        head_counted_when_no_classes: r"num_classes=0 you counted",
        off_by_one_somewhere: r"off by \+1",
        untruncated_hidden: r"int\(embed_dim \* mlp_ratio\), truncated.*not 72\.6",
        rounded_hidden: r"int\(embed_dim \* mlp_ratio\), truncated.*not round",
        forgotten_no_head_branch: r"unimplemented branch.*no head: count later",
    }
}


def test_written_out_count_is_correct(ex):
    # The test's own term-by-term count (no mistakes switched on) is independent of the reference.
    assert ex.grade(_count).status == "correct"


@pytest.mark.parametrize("number_type", [int, float, "numpy", "tensor"])
def test_a_right_count_in_any_number_type_is_correct(ex, number_type):
    # A student's formula may divide (a float), use NumPy or torch: the count is what is graded.
    import numpy as np
    import torch

    convert = {"numpy": np.int64, "tensor": torch.tensor}.get(number_type, number_type)
    assert ex.grade(lambda *args: convert(_count(*args))).status == "correct"


def test_a_fractional_count_is_incorrect(ex):
    result = ex.grade(lambda *args: _count(*args) + 0.5)
    assert result.status == "incorrect" and "whole number" in result.message
