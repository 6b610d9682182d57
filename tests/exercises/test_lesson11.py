"""Bug zoo for 11.window_partition and 11.shift_mask (run by test_zoos.py)."""

import torch


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


PARTITION_BUGS = {
    plain_reshape: "plain view/reshape does not cut windows",
    column_major_windows: "column-major order",
    swapped_inside: "rows and columns are swapped",
    keeps_batch_axis: "merge the batch and window dimensions",
    flattened_windows: r"keep each window as \(M, M, C\)",
    assumes_square: "raised RuntimeError",
    in_place: "changed its input in place",
}


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

ZOO = {"11.window_partition": PARTITION_BUGS, "11.shift_mask": MASK_BUGS}
