"""Lesson 01 exercises: cutting images into patches, graded against
:func:`vit_lessons.patches.patchify` and :func:`vit_lessons.patches.unpatchify`."""

from __future__ import annotations

import torch

from ..patches import patchify as reference_patchify
from ..patches import unpatchify as reference_unpatchify
from . import Exercise, register
from .grading import Incorrect, expect_tensor


def patchify(images, patch_size):
    """Reference solution: (B, C, H, W) → (B, N, C·P·P), patches row-major over the grid, each
    vector ordered (channel, row in patch, column in patch) like ``Conv2d.weight.flatten(1)``."""
    B, C, H, W = images.shape
    P = patch_size
    grid_h, grid_w = H // P, W // P
    patches = images.reshape(B, C, grid_h, P, grid_w, P)  # (B, C, gh, P, gw, P)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
    return patches.reshape(B, grid_h * grid_w, C * P * P)  # (B, N, C·P·P)


def unpatchify(patches, patch_size, grid_size):
    """Reference solution: (B, N, C·P·P) → (B, C, H, W) for a grid of (rows, columns) patches."""
    B, N, patch_dim = patches.shape
    P = patch_size
    grid_h, grid_w = grid_size
    C = patch_dim // (P * P)
    images = patches.reshape(B, grid_h, grid_w, C, P, P)  # (B, gh, gw, C, P, P)
    images = images.permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, P, gw, P)
    return images.reshape(B, C, grid_h * P, grid_w * P)  # (B, C, H, W)


# -- 01.patchify ---------------------------------------------------------------------------------


def _wrong_layouts(images: torch.Tensor, P: int) -> dict[str, torch.Tensor]:
    """The outputs of the usual mistakes, each with the message that names it."""
    B, C, H, W = images.shape
    gh, gw = H // P, W // P
    grid = images.reshape(B, C, gh, P, gw, P)  # (B, C, gh, P, gw, P): axes 0 B, 1 C, 2 gh, 3 row, 4 gw, 5 col
    layouts = {
        (0, 2, 4, 3, 5, 1): (
            "each patch vector is ordered (row, column, channel), channels last; the order must be "
            "(channel, row in patch, column in patch), as Conv2d.weight.flatten(1) is. This is the "
            "unfold(...).permute(0, 2, 3, 4, 1) bug: permute the channel axis before the two patch axes."
        ),
        (0, 4, 2, 1, 3, 5): (
            "the patches are in column-major order (down the first column of the grid, then the next); "
            "take them row by row: the grid-row axis must come before the grid-column axis."
        ),
        (0, 2, 4, 1, 5, 3): (
            "inside each patch, rows and columns are swapped (each patch is transposed): keep the "
            "row-in-patch axis before the column-in-patch axis."
        ),
        (0, 4, 2, 3, 5, 1): "the patches are column-major and each vector is ordered (row, column, channel).",
        (0, 2, 4, 5, 3, 1): "each patch vector is ordered (column, row, channel); it must be (channel, row, column).",
    }
    wrong = {}
    for order, message in layouts.items():
        wrong[message] = grid.permute(*order).reshape(B, gh * gw, C * P * P)
    return wrong


def _patchify_case(candidate, images: torch.Tensor, P: int, context: str) -> None:
    before = images.clone()
    try:
        result = candidate(images, P)
    except NotImplementedError:
        raise
    except Exception as error:
        raise Incorrect(f"{context}: your function raised {type(error).__name__}: {error}".strip()) from None
    if not torch.equal(images, before):
        raise Incorrect("your function changed its input images in place; rearrange a view or a copy instead.")
    expected = reference_patchify(images, P)  # (B, N, C·P·P)
    B, N, patch_dim = expected.shape
    result = expect_tensor(result, f"{context}: the result")
    shape = tuple(result.shape)
    if shape != (B, N, patch_dim):
        if shape == (B, patch_dim, N):
            raise Incorrect(
                f"{context}: the result has shape {shape} = (B, C·P·P, N); return (B, N, C·P·P), one row per "
                "patch (what F.unfold gives you needs a .transpose(1, 2))."
            )
        if shape == (B * N, patch_dim) or shape == (1, B * N, patch_dim):
            raise Incorrect(
                f"{context}: the result has shape {shape}: the patches of all {B} images were merged; keep the "
                f"batch dimension, (B, N, C·P·P) = {(B, N, patch_dim)}."
            )
        raise Incorrect(f"{context}: the result has shape {shape}, expected (B, N, C·P·P) = {(B, N, patch_dim)}.")
    if not result.is_floating_point():
        raise Incorrect(f"{context}: the result has dtype {result.dtype}; keep the images' floating-point dtype.")
    result = result.detach().to(expected.dtype)
    if torch.equal(result, expected):
        return
    for message, wrong in _wrong_layouts(images, P).items():
        if torch.equal(result, wrong):
            raise Incorrect(f"{context}: {message}")
    if torch.equal(result.flatten(1).sort(dim=1).values, expected.flatten(1).sort(dim=1).values):
        raise Incorrect(
            f"{context}: the result holds the right pixels in the wrong places. Patches go row-major over the "
            "grid; each vector is (channel, row in patch, column in patch)."
        )
    raise Incorrect(
        f"{context}: the result has the right shape but wrong values: each row must be one P×P patch of the "
        "image, flattened, with no pixel changed."
    )


def grade_patchify(candidate) -> None:
    generator = torch.Generator().manual_seed(1)

    def image(*shape):
        # Distinct values everywhere, so any misplaced pixel shows.
        return torch.randperm(int(torch.tensor(shape).prod()), generator=generator).float().reshape(shape)

    _patchify_case(candidate, image(1, 3, 8, 8), 4, "one 3×8×8 image, patch size 4")
    _patchify_case(
        candidate,
        image(2, 3, 8, 8),
        4,
        "a batch of 2 images (it worked for one image; do not index images[0] or hard-code B=1)",
    )
    _patchify_case(
        candidate,
        image(2, 3, 8, 12),
        4,
        "non-square 8×12 images (H ≠ W: use H // P grid rows and W // P grid columns)",
    )
    _patchify_case(candidate, image(3, 1, 6, 6), 2, "one-channel 6×6 images (C = 1: do not hard-code 3 channels)")
    _patchify_case(candidate, image(2, 5, 9, 6), 3, "5-channel 9×6 images with patch size 3")


# -- 01.unpatchify -------------------------------------------------------------------------------


def grade_unpatchify(candidate) -> None:
    generator = torch.Generator().manual_seed(2)
    cases = [((2, 3, 8, 8), 4), ((2, 3, 8, 12), 4), ((1, 1, 6, 10), 2)]
    for shape, P in cases:
        images = torch.randn(*shape, generator=generator)  # (B, C, H, W)
        grid = (shape[2] // P, shape[3] // P)
        patches = reference_patchify(images, P)  # (B, N, C·P·P)
        before = patches.clone()
        context = f"patches of {shape[2]}×{shape[3]} images with C={shape[1]}, P={P}, grid_size={grid}"
        result = candidate(patches, P, grid)
        if not torch.equal(patches, before):
            raise Incorrect("your function changed its input patches in place.")
        result = expect_tensor(result, f"{context}: the result")
        if tuple(result.shape) != tuple(shape):
            hint = (
                " (rows and columns of the grid swapped?)" if tuple(result.shape) == (*shape[:2], *shape[:1:-1]) else ""
            )
            raise Incorrect(
                f"{context}: the result has shape {tuple(result.shape)}, expected (B, C, H, W) = {shape}{hint}."
            )
        expected = reference_unpatchify(patches, P, grid)
        if not torch.equal(result.detach().to(expected.dtype), expected):
            raise Incorrect(
                f"{context}: unpatchify(patchify(x)) is not x. Undo patchify's steps in reverse: reshape to "
                "(B, gh, gw, C, P, P), permute to (B, C, gh, P, gw, P), reshape to (B, C, H, W)."
            )


register(
    Exercise(
        id="01.patchify",
        title="Cut images into flattened patches",
        grader=grade_patchify,
        solution_obj=patchify,
        hint_text=(
            "Split each spatial axis in two with images.reshape(B, C, H // P, P, W // P, P), giving the axes "
            "(B, C, grid row, row in patch, grid column, column in patch). Permute them to (B, grid row, grid "
            "column, C, row in patch, column in patch) with .permute(0, 2, 4, 1, 3, 5), then reshape to "
            "(B, N, C * P * P)."
        ),
    )
)

register(
    Exercise(
        id="01.unpatchify",
        title="Put the patches back together",
        grader=grade_unpatchify,
        solution_obj=unpatchify,
        hint_text=(
            "Run patchify's steps backwards: C = patches.shape[-1] // (P * P); reshape to (B, gh, gw, C, P, P); "
            "permute(0, 3, 1, 4, 2, 5) gives (B, C, gh, P, gw, P); reshape to (B, C, gh * P, gw * P)."
        ),
    )
)
