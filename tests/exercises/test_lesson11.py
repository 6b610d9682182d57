"""Bug zoo for 11.window_partition and 11.shift_mask: each typical mistake gets its own message."""

import re

import pytest
import torch

from vit_lessons.exercises import get_exercise


# -- window partition -------------------------------------------------------------------------------
def plain_reshape(x, M):
    return x.reshape(-1, M, M, x.shape[-1])


def column_major_windows(x, M):
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 3, 1, 2, 4, 5).reshape(-1, M, M, C)


def swapped_inside(x, M):
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 4, 2, 5).reshape(-1, M, M, C)


def keeps_batch_axis(x, M):
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(B, -1, M, M, C)


def flattened_windows(x, M):
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, W // M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, M * M, C)


def assumes_square(x, M):
    B, H, W, C = x.shape
    return x.reshape(B, H // M, M, H // M, M, C).permute(0, 1, 3, 2, 4, 5).reshape(-1, M, M, C)


def in_place(x, M):
    x.mul_(1.0001)
    return plain_reshape(x, M)


def partition_stub(x, M):
    raise NotImplementedError


PARTITION_BUGS = {
    plain_reshape: "plain view/reshape does not cut windows",
    column_major_windows: "column-major order",
    swapped_inside: "rows and columns are swapped",
    keeps_batch_axis: "merge the batch and window dimensions",
    flattened_windows: r"keep each window as \(M, M, C\)",
    assumes_square: "raised RuntimeError",
    in_place: "changed its input in place",
}


@pytest.mark.parametrize("bug", list(PARTITION_BUGS), ids=lambda f: f.__name__)
def test_partition_bugs_are_rejected_with_their_message(bug):
    result = get_exercise("11.window_partition").grade(bug)
    assert result.status == "incorrect", result
    assert re.search(PARTITION_BUGS[bug], result.message), result.message


# -- shift mask -------------------------------------------------------------------------------------
def _labels_to_mask(labels, M):
    H, W = labels.shape
    windows = labels.reshape(H // M, M, W // M, M).permute(0, 2, 1, 3).reshape(-1, M * M)
    return windows[:, :, None] == windows[:, None, :]


def _bands(n, M, s):
    return ((0, n - M), (n - M, n - s), (n - s, n))


def _label(H, W, bands_h, bands_w):
    labels = torch.zeros(H, W, dtype=torch.long)
    for i, (a, b) in enumerate(bands_h):
        for j, (c, d) in enumerate(bands_w):
            labels[a:b, c:d] = 3 * i + j
    return labels


def all_true(H, W, M, s):
    return torch.ones((H // M) * (W // M), M * M, M * M, dtype=torch.bool)


def inverted(H, W, M, s):
    return ~_labels_to_mask(_label(H, W, _bands(H, M, s), _bands(W, M, s)), M) if s else all_true(H, W, M, s)


def rows_only(H, W, M, s):
    return _labels_to_mask(_label(H, W, _bands(H, M, s), ((0, W),)), M)


def columns_only(H, W, M, s):
    return _labels_to_mask(_label(H, W, ((0, H),), _bands(W, M, s)), M)


def bands_at_start(H, W, M, s):
    return _labels_to_mask(_label(H, W, ((0, s), (s, M), (M, H)), ((0, s), (s, M), (M, W))), M)


def additive_float(H, W, M, s):
    mask = _labels_to_mask(_label(H, W, _bands(H, M, s), _bands(W, M, s)), M)
    return torch.zeros(mask.shape).masked_fill(~mask, -100.0)


def global_mask(H, W, M, s):
    labels = _label(H, W, _bands(H, M, s), _bands(W, M, s)).flatten()
    return labels[:, None] == labels[None, :]


def column_major(H, W, M, s):
    labels = _label(H, W, _bands(H, M, s), _bands(W, M, s))
    windows = labels.reshape(H // M, M, W // M, M).permute(2, 0, 1, 3).reshape(-1, M * M)
    return windows[:, :, None] == windows[:, None, :]


def mask_stub(H, W, M, s):
    raise NotImplementedError


MASK_BUGS = {
    all_true: "lets every pair attend",
    inverted: "inverted",
    rows_only: "only splits along the height",
    columns_only: "only splits along the width",
    bands_at_start: "regions are at the top-left",
    additive_float: "return a boolean mask",
    global_mask: "one M²×M² mask per window",
    column_major: "column-major order",
}


@pytest.mark.parametrize("bug", list(MASK_BUGS), ids=lambda f: f.__name__)
def test_mask_bugs_are_rejected_with_their_message(bug):
    result = get_exercise("11.shift_mask").grade(bug)
    assert result.status == "incorrect", result
    assert re.search(MASK_BUGS[bug], result.message), result.message


@pytest.mark.parametrize("exercise_id,stub", [("11.window_partition", partition_stub), ("11.shift_mask", mask_stub)])
def test_stubs_are_not_attempted(exercise_id, stub):
    assert get_exercise(exercise_id).grade(stub).status == "not_attempted"


@pytest.mark.parametrize("exercise_id,name", [("11.window_partition", "mine"), ("11.shift_mask", "my_mask")])
def test_reference_solutions_are_correct(exercise_id, name):
    namespace = {}
    exec(get_exercise(exercise_id).solution_source(name), namespace)
    assert get_exercise(exercise_id).grade(namespace[name]).status == "correct"
