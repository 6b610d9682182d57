"""Lesson 11 exercises: window partition and the shifted-window mask, graded against
:func:`vit_lessons.swin.window_partition` and :func:`vit_lessons.swin.shifted_window_mask`."""

from __future__ import annotations

import torch

from ..swin import shifted_window_mask as reference_mask
from ..swin import window_partition as reference_partition
from . import Exercise, register
from .grading import Incorrect, expect_tensor


# -- 11.window_partition ----------------------------------------------------------------------------
def window_partition(feature_map, window_size):
    """Reference solution: (B, H, W, C) → (B · H/M · W/M, M, M, C), windows in row-major order."""
    B, H, W, C = feature_map.shape
    M = window_size
    grid = feature_map.reshape(B, H // M, M, W // M, M, C)  # split both axes into (window, inside)
    windows = grid.permute(0, 1, 3, 2, 4, 5)  # (B, H/M, W/M, M, M, C): window-grid axes first
    return windows.reshape(-1, M, M, C)


def _partition_guesses(feature_map: torch.Tensor, M: int) -> dict[str, torch.Tensor]:
    B, H, W, C = feature_map.shape
    grid = feature_map.reshape(B, H // M, M, W // M, M, C)
    plain = feature_map.reshape(-1, M, M, C)
    return {
        "a plain view/reshape does not cut windows: it takes M·M consecutive tokens of a row. Reshape to "
        "(B, H/M, M, W/M, M, C), then permute(0, 1, 3, 2, 4, 5) so both window-grid axes come first": plain,
        "the windows are in column-major order: go along each row of windows first (window index = "
        "row · W/M + col), i.e. permute(0, 1, 3, 2, 4, 5)": grid.permute(0, 3, 1, 2, 4, 5).reshape(-1, M, M, C),
        "inside each window rows and columns are swapped: keep (row in window, column in window) in that "
        "order, permute(0, 1, 3, 2, 4, 5)": grid.permute(0, 1, 3, 4, 2, 5).reshape(-1, M, M, C),
    }


def grade_window_partition(candidate) -> None:
    generator = torch.Generator().manual_seed(11)
    # A non-square map with distinct values everywhere, so swapped axes show; then a second size.
    for shape, M in (((2, 8, 12, 3), 4), ((1, 6, 9, 5), 3), ((3, 4, 4, 2), 2), ((1, 7, 7, 4), 7)):
        feature_map = torch.randn(*shape, generator=generator)
        before = feature_map.clone()
        windows = candidate(feature_map, M)
        if not torch.equal(feature_map, before):
            raise Incorrect("your function changed its input in place; compute new tensors instead.")
        windows = expect_tensor(windows, "the windows")
        B, H, W, C = shape
        count = B * (H // M) * (W // M)
        if tuple(windows.shape) == (B, (H // M) * (W // M), M, M, C):
            raise Incorrect(
                "merge the batch and window dimensions: return shape (B · nW, M, M, C), e.g. with reshape(-1, M, M, C)."
            )
        if tuple(windows.shape) == (count, M * M, C):
            raise Incorrect(
                "keep each window as (M, M, C): return shape (B · nW, M, M, C); the block flattens it later."
            )
        expect_tensor(windows, f"the windows of a {tuple(shape)} map with M={M}", (count, M, M, C))
        expected = reference_partition(feature_map, M)
        if not torch.equal(windows, expected):
            for message, guess in _partition_guesses(feature_map, M).items():
                if torch.equal(windows, guess):
                    raise Incorrect(message + ".")
            raise Incorrect(
                f"wrong windows for a {tuple(shape)} map with M={M}: window k must hold rows (k // (W/M))·M ... and "
                "columns (k % (W/M))·M ... of one image (check it on a map that is not square)."
            )


# -- 11.shift_mask ----------------------------------------------------------------------------------
def shifted_window_mask(height, width, window_size, shift):
    """Reference solution: (nW, M², M²) bool, True where two tokens of a shifted window may attend."""
    import torch

    M, s = window_size, shift
    labels = torch.zeros(height, width, dtype=torch.long)
    # After rolling up/left by s, each axis has three bands; 3 × 3 regions of former neighbours.
    bands_h = ((0, height - M), (height - M, height - s), (height - s, height))
    bands_w = ((0, width - M), (width - M, width - s), (width - s, width))
    for i, (top, bottom) in enumerate(bands_h):
        for j, (left, right) in enumerate(bands_w):
            labels[top:bottom, left:right] = 3 * i + j
    windows = labels.reshape(height // M, M, width // M, M).permute(0, 2, 1, 3)  # (H/M, W/M, M, M)
    windows = windows.reshape(-1, M * M)  # (nW, M²), row-major over the window grid
    return windows[:, :, None] == windows[:, None, :]  # same region ⇒ may attend


def _mask_from_bands(height, width, M, bands_h, bands_w) -> torch.Tensor:
    labels = torch.zeros(height, width, dtype=torch.long)
    for i, (top, bottom) in enumerate(bands_h):
        for j, (left, right) in enumerate(bands_w):
            labels[top:bottom, left:right] = 3 * i + j
    windows = labels.reshape(height // M, M, width // M, M).permute(0, 2, 1, 3).reshape(-1, M * M)
    return windows[:, :, None] == windows[:, None, :]


def _mask_guesses(height, width, M, s) -> dict[str, torch.Tensor]:
    rows = ((0, height - M), (height - M, height - s), (height - s, height))
    cols = ((0, width - M), (width - M, width - s), (width - s, width))
    flat = ((0, height),)
    flat_w = ((0, width),)
    start_rows = ((0, s), (s, M), (M, height))
    start_cols = ((0, s), (s, M), (M, width))
    ref = _mask_from_bands(height, width, M, rows, cols)
    nw_h, nw_w = height // M, width // M
    col_major = ref.reshape(nw_h, nw_w, M * M, M * M).transpose(0, 1).reshape(-1, M * M, M * M)
    return {
        "the mask only splits along the height: the columns that wrapped round from the left border need "
        "their own regions too": _mask_from_bands(height, width, M, rows, flat_w),
        "the mask only splits along the width: the rows that wrapped round from the top border need their "
        "own regions too": _mask_from_bands(height, width, M, flat, cols),
        "the regions are at the top-left; after rolling up and left by s (torch.roll with -s) the wrapped "
        "tokens sit in the last s rows and columns, bands [H-M, H-s) and [H-s, H)": _mask_from_bands(
            height, width, M, start_rows, start_cols
        ),
        "your windows are in column-major order; number them row-major, as window_partition does": col_major,
    }


def grade_shift_mask(candidate) -> None:
    for height, width, M, s in ((8, 8, 4, 2), (8, 12, 4, 2), (12, 6, 3, 1), (14, 14, 7, 3)):
        mask = candidate(height, width, M, s)
        count = (height // M) * (width // M)
        mask = expect_tensor(mask, "the mask")
        if tuple(mask.shape) == (height * width, height * width):
            raise Incorrect("return one M²×M² mask per window, shape (nW, M², M²), not one for the whole map.")
        expect_tensor(mask, f"the mask for a {height}x{width} map, M={M}, shift {s}", (count, M * M, M * M))
        if mask.dtype != torch.bool:
            raise Incorrect(
                f"the mask has dtype {mask.dtype}: return a boolean mask, True = may attend (timm's additive form "
                "0 / -100 is torch.zeros(...).masked_fill(~mask, -100.0))."
            )
        expected = reference_mask(height, width, M, s)
        if torch.equal(mask, expected):
            continue
        if mask.all():
            raise Incorrect(
                "your mask lets every pair attend: tokens the cyclic shift brought together from "
                "opposite borders must not see each other."
            )
        if torch.equal(mask, ~expected):
            raise Incorrect("the mask is inverted: True must mean the two tokens may attend to each other.")
        for message, guess in _mask_guesses(height, width, M, s).items():
            if torch.equal(mask, guess):
                raise Incorrect(message + ".")
        if not torch.equal(mask, mask.transpose(1, 2)):
            raise Incorrect("the mask is not symmetric: two tokens either belong to the same region or not.")
        raise Incorrect(
            f"wrong mask for a {height}x{width} map, M={M}, shift {s}: label each token by its band "
            "along height and width, partition the labels into windows, compare labels pairwise."
        )
    if not expect_tensor(candidate(8, 8, 4, 0), "the mask for shift 0").all():
        raise Incorrect("with shift 0 nothing wraps round: every pair in a window may attend (all True).")


register(
    Exercise(
        id="11.window_partition",
        title="Window partition",
        grader=grade_window_partition,
        solution_obj=window_partition,
        hint_text=(
            "feature_map.reshape(B, H // M, M, W // M, M, C) splits each axis into (window, position in window); "
            ".permute(0, 1, 3, 2, 4, 5) brings the two window axes together; .reshape(-1, M, M, C)."
        ),
    )
)

register(
    Exercise(
        id="11.shift_mask",
        title="Shifted-window attention mask",
        grader=grade_shift_mask,
        solution_obj=shifted_window_mask,
        hint_text=(
            "Label an (H, W) map: along each axis the bands [0, H-M), [H-M, H-s), [H-s, H) (the last s rows came "
            "from the top border); label = 3 · row band + column band. Cut the label map into windows like "
            "window_partition, flatten each to M² labels, and return labels[:, :, None] == labels[:, None, :]."
        ),
    )
)
