"""Bug zoo for 03.sinusoidal and 03.sinusoidal_2d (run by test_zoos.py), and other correct ways."""

import math

import numpy as np
import pytest
import torch

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("03.sinusoidal")


def _angles(n, d, base=10000.0, exponent=lambda i, d: 2 * i / d, start=0):
    pos = torch.arange(start, start + n, dtype=torch.float32)[:, None]
    i = torch.arange(d // 2, dtype=torch.float32)
    return pos / base ** exponent(i, d)


def _interleave(sin, cos):
    out = torch.zeros(sin.shape[0], 2 * sin.shape[1])
    out[:, 0::2], out[:, 1::2] = sin, cos
    return out


def halves(n, d):
    a = _angles(n, d)
    return torch.cat([a.sin(), a.cos()], dim=1)


def exponent_i_over_d(n, d):
    a = _angles(n, d, exponent=lambda i, d: i / d)
    return _interleave(a.sin(), a.cos())


def swapped(n, d):
    a = _angles(n, d)
    return _interleave(a.cos(), a.sin())


def base_1000(n, d):
    a = _angles(n, d, base=1000.0)
    return _interleave(a.sin(), a.cos())


def per_column_exponent(n, d):
    # The loop version with the column index in the exponent for both sin and cos columns.
    out = torch.zeros(n, d)
    for p in range(n):
        for j in range(d):
            angle = p / 10000 ** (j / d)
            out[p, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    return out


def one_based(n, d):
    a = _angles(n, d, start=1)
    return _interleave(a.sin(), a.cos())


def transposed(n, d):
    a = _angles(n, d)
    return _interleave(a.sin(), a.cos()).T


def batched(n, d):
    a = _angles(n, d)
    return _interleave(a.sin(), a.cos()).unsqueeze(0)


def numpy_result(n, d):
    a = _angles(n, d)
    return _interleave(a.sin(), a.cos()).numpy()


def integer_positions_only(n, d):
    a = _angles(n, d)
    return _interleave(a.sin(), a.cos()).round().long()


SINUSOIDAL_BUGS = {
    halves: "concatenated in two halves",
    exponent_i_over_d: "exponent is i/dim",
    swapped: "swapped",
    base_1000: "base is 1000",
    per_column_exponent: "same angle as the sine",
    one_based: "positions start at 1",
    transposed: r"\(dim, num_positions\)",
    batched: r"drop the batch dimension",
    numpy_result: "NumPy array",
    integer_positions_only: "floating-point",
}


def test_float32_float64_and_numpy_style_correct_answers_pass(ex):
    def float64_version(n, d):
        return _interleave(_angles(n, d).double().sin(), _angles(n, d).double().cos()).double()

    def numpy_then_tensor(n, d):
        pos = np.arange(n)[:, None]
        angle = pos / np.power(10000, np.arange(0, d, 2) / d)
        out = np.zeros((n, d))
        out[:, 0::2], out[:, 1::2] = np.sin(angle), np.cos(angle)
        return torch.from_numpy(out)

    def float32_version(n, d):
        a = _angles(n, d)
        return _interleave(a.sin(), a.cos())

    for fn in (float64_version, numpy_then_tensor, float32_version):
        assert ex.grade(fn).correct, ex.grade(fn)


# -- 03.sinusoidal_2d ----------------------------------------------------------------------------


def _pe(n, d):
    return get_exercise("03.sinusoidal").solution_obj(n, d)


def columns_first(h, w, d):
    rows = _pe(h, d // 2)[:, None].expand(h, w, d // 2)
    cols = _pe(w, d // 2)[None].expand(h, w, d // 2)
    return torch.cat([cols, rows], -1).reshape(h * w, d)


def column_major_2d(h, w, d):
    rows = _pe(h, d // 2)[:, None].expand(h, w, d // 2)
    cols = _pe(w, d // 2)[None].expand(h, w, d // 2)
    return torch.cat([rows, cols], -1).transpose(0, 1).reshape(h * w, d)


def flat_index_1d(h, w, d):
    return _pe(h * w, d)


def not_flattened(h, w, d):
    rows = _pe(h, d // 2)[:, None].expand(h, w, d // 2)
    cols = _pe(w, d // 2)[None].expand(h, w, d // 2)
    return torch.cat([rows, cols], -1)


def full_width_halves(h, w, d):
    # Each axis encoded with the full dim, then truncated: the frequencies are wrong.
    rows = _pe(h, d)[:, None, : d // 2].expand(h, w, d // 2)
    cols = _pe(w, d)[None, :, : d // 2].expand(h, w, d // 2)
    return torch.cat([rows, cols], -1).reshape(h * w, d)


SINUSOIDAL_2D_BUGS = {
    columns_first: "halves are swapped",
    column_major_2d: "column-major",
    flat_index_1d: "1-D encoding of the patch index",
    not_flattened: "flatten the grid row-major",
    full_width_halves: r"each PE_1d of width dim/2",
}

ZOO = {"03.sinusoidal": SINUSOIDAL_BUGS, "03.sinusoidal_2d": SINUSOIDAL_2D_BUGS}
