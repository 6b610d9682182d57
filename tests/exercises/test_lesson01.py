"""Bug zoo for 01.patchify and 01.unpatchify (run by test_zoos.py), and other correct ways to patchify."""

import pytest
import torch
import torch.nn.functional as F

from vit_lessons.exercises import get_exercise


@pytest.fixture(scope="module")
def ex():
    return get_exercise("01.patchify")


def _grid(images, P):
    B, C, H, W = images.shape
    return images.reshape(B, C, H // P, P, W // P, P)  # (B, C, gh, P, gw, P)


def seed_unfold_channels_last(images, P):
    # The seed tutorial's code: unfold twice, then permute(0, 2, 3, 4, 1) puts channels last.
    B, C, H, W = images.shape
    x = images.unfold(2, P, P).unfold(3, P, P)  # (B, C, gh, gw, P, P)
    x = x.reshape(B, C, -1, P, P).permute(0, 2, 3, 4, 1)  # (B, N, P, P, C)
    return x.reshape(B, -1, C * P * P)


def column_major(images, P):
    B, C, H, W = images.shape
    return _grid(images, P).permute(0, 4, 2, 1, 3, 5).reshape(B, -1, C * P * P)


def transposed_patches(images, P):
    B, C, H, W = images.shape
    return _grid(images, P).permute(0, 2, 4, 1, 5, 3).reshape(B, -1, C * P * P)


def square_only(images, P):
    B, C, H, W = images.shape
    g = H // P
    return images.reshape(B, C, g, P, g, P).permute(0, 2, 4, 1, 3, 5).reshape(B, g * g, C * P * P)


def three_channels_only(images, P):
    B, _, H, W = images.shape
    return images.reshape(B, 3, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, 3 * P * P)


def batch_one_only(images, P):
    _, C, H, W = images.shape
    x = images[0].reshape(C, H // P, P, W // P, P).permute(1, 3, 0, 2, 4)
    return x.reshape(1, -1, C * P * P)


def unfold_without_transpose(images, P):
    return F.unfold(images, kernel_size=P, stride=P)  # (B, C·P·P, N)


def modifies_input(images, P):
    images -= 0  # harmless-looking in-place op...
    images.mul_(2)
    B, C, H, W = images.shape
    return _grid(images, P).permute(0, 2, 4, 1, 3, 5).reshape(B, -1, C * P * P) / 2


def naive_reshape(images, P):
    B, C, H, W = images.shape
    return images.reshape(B, -1, C * P * P)  # not patches at all


def returns_numpy(images, P):
    return get_exercise("01.patchify").solution_obj(images, P).numpy()


PATCHIFY_BUGS = {
    seed_unfold_channels_last: r"\(row, column, channel\).*permute\(0, 2, 3, 4, 1\)",
    column_major: "column-major order",
    transposed_patches: "rows and columns are swapped",
    square_only: "non-square",
    three_channels_only: "C = 1",
    batch_one_only: "batch of 2",
    unfold_without_transpose: r"\(B, C·P·P, N\).*transpose",
    modifies_input: "in place",
    naive_reshape: "right pixels in the wrong places",
    returns_numpy: "should be a torch.Tensor",
}


def test_other_correct_ways_pass(ex):
    # unfold + transpose and a stride-P "identity" convolution are correct too.
    def by_unfold(images, P):
        return F.unfold(images, kernel_size=P, stride=P).transpose(1, 2)

    def by_conv(images, P):
        C = images.shape[1]
        eye = torch.eye(C * P * P).reshape(C * P * P, C, P, P)
        return F.conv2d(images, eye, stride=P).flatten(2).transpose(1, 2)

    assert ex.grade(by_unfold).correct, ex.grade(by_unfold)
    assert ex.grade(by_conv).correct, ex.grade(by_conv)


def unpatchify_grid_swapped(patches, P, grid_size):
    B, N, dim = patches.shape
    gh, gw = grid_size
    C = dim // (P * P)
    return patches.reshape(B, gw, gh, C, P, P).permute(0, 3, 1, 4, 2, 5).reshape(B, C, gw * P, gh * P)


def unpatchify_wrong_permute(patches, P, grid_size):
    B, N, dim = patches.shape
    gh, gw = grid_size
    C = dim // (P * P)
    return patches.reshape(B, gh, gw, C, P, P).permute(0, 3, 1, 5, 2, 4).reshape(B, C, gh * P, gw * P)


ZOO = {
    "01.patchify": PATCHIFY_BUGS,
    "01.unpatchify": {
        unpatchify_grid_swapped: "swapped",
        unpatchify_wrong_permute: r"unpatchify\(patchify\(x\)\) is not x",
    },
}
