"""Lesson 03 exercises: sinusoidal position encodings, graded against
:func:`vit_lessons.position.sinusoidal_position_encoding` and
:func:`vit_lessons.position.sinusoidal_position_encoding_2d`."""

from __future__ import annotations

import torch

from ..position import sinusoidal_position_encoding, sinusoidal_position_encoding_2d
from . import Exercise, register
from .grading import Incorrect

# Tolerance for float32 candidates: sin/cos of angles up to ~100 lose about 1e-5 in float32.
_ATOL = 1e-4


def sinusoidal(num_positions, dim):
    """Reference solution: PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(same angle)."""
    import torch

    positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (N, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,): 0, 2, 4, ...
    angles = positions / 10000 ** (two_i / dim)  # (N, D/2): one frequency per pair of columns
    encoding = torch.zeros(num_positions, dim, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angles)  # even columns
    encoding[:, 1::2] = torch.cos(angles)  # odd columns: the cosine of the same angle
    return encoding.float()  # (N, D)


def sinusoidal_2d(grid_height, grid_width, dim):
    """Reference solution: per patch (row-major), the 1-D encoding of its row in the first dim/2
    features and that of its column in the last dim/2."""
    import torch

    def encode(num_positions, width):  # the 1-D encoding, (num_positions, width)
        positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
        two_i = torch.arange(0, width, 2, dtype=torch.float64)
        angles = positions / 10000 ** (two_i / width)
        encoding = torch.zeros(num_positions, width, dtype=torch.float64)
        encoding[:, 0::2] = torch.sin(angles)
        encoding[:, 1::2] = torch.cos(angles)
        return encoding

    half = dim // 2
    rows = encode(grid_height, half)[:, None, :].expand(grid_height, grid_width, half)  # (gh, gw, D/2)
    cols = encode(grid_width, half)[None, :, :].expand(grid_height, grid_width, half)  # (gh, gw, D/2)
    return torch.cat([rows, cols], dim=-1).reshape(grid_height * grid_width, dim).float()  # (gh·gw, D)


# -- 03.sinusoidal -------------------------------------------------------------------------------


def _variants(num_positions: int, dim: int) -> dict[str, torch.Tensor]:
    """Outputs of the usual mistakes, each keyed by the message that names it."""
    p = torch.arange(num_positions, dtype=torch.float64)[:, None]  # (N, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,)
    i = torch.arange(dim // 2, dtype=torch.float64)  # (D/2,)
    column = torch.arange(dim, dtype=torch.float64)  # (D,)

    def interleave(sin, cos):
        out = torch.empty(num_positions, dim, dtype=torch.float64)
        out[:, 0::2], out[:, 1::2] = sin, cos
        return out

    angles = p / 10000 ** (two_i / dim)
    per_column = p / 10000 ** (column / dim)  # (N, D): the angle of column j uses j, odd columns too
    ones_based = (p + 1) / 10000 ** (two_i / dim)
    return {
        "sin and cos are concatenated in two halves ([sin | cos]); interleave them: sin in the even columns "
        "(0::2), cos in the odd columns (1::2).": torch.cat([angles.sin(), angles.cos()], dim=1),
        "the exponent is i/dim with i = 0, 1, 2, ...; it must be 2i/dim: use torch.arange(0, dim, 2) / dim.": (
            interleave((p / 10000 ** (i / dim)).sin(), (p / 10000 ** (i / dim)).cos())
        ),
        "sin and cos are swapped: even columns hold sin, odd columns cos.": interleave(angles.cos(), angles.sin()),
        "the base is 1000; the formula uses 10000.": interleave(
            (p / 1000 ** (two_i / dim)).sin(), (p / 1000 ** (two_i / dim)).cos()
        ),
        "column 2i+1 uses its own index in the exponent; the cosine in column 2i+1 uses the same angle as the "
        "sine in column 2i, p / 10000^(2i/dim).": torch.where(
            column.long() % 2 == 0, per_column.sin(), per_column.cos()
        ),
        "positions start at 1; the first position is p = 0 (its encoding is 0, 1, 0, 1, ...).": interleave(
            ones_based.sin(), ones_based.cos()
        ),
    }


def _call_sinusoidal(candidate, num_positions: int, dim: int) -> torch.Tensor:
    context = f"with num_positions={num_positions}, dim={dim}"
    result = candidate(num_positions, dim)
    try:
        import numpy as np

        if isinstance(result, np.ndarray):
            raise Incorrect(f"{context}, you returned a NumPy array; return a torch.Tensor (torch.from_numpy(...)).")
    except ImportError:  # pragma: no cover - numpy ships with torch
        pass
    if not isinstance(result, torch.Tensor):
        raise Incorrect(f"{context}, you returned {type(result).__name__}; return a torch.Tensor.")
    shape = tuple(result.shape)
    N, D = num_positions, dim
    if shape == (1, N, D):
        raise Incorrect(
            f"{context}, the result has shape {shape}: drop the batch dimension and return (num_positions, dim) = "
            f"{(N, D)}; the model adds it with pos[None] (or broadcasting) when it adds the encoding to the tokens."
        )
    if shape == (D, N):
        raise Incorrect(f"{context}, the result has shape {shape} = (dim, num_positions); return (num_positions, dim).")
    if shape != (N, D):
        raise Incorrect(f"{context}, the result has shape {shape}, expected (num_positions, dim) = {(N, D)}.")
    if not result.is_floating_point():
        raise Incorrect(f"{context}, the result has dtype {result.dtype}; return floating-point values.")
    return result.detach().to(torch.float64)


def grade_sinusoidal(candidate) -> None:
    # Non-square first, so a transposed result shows; then a big one (high positions, many
    # frequencies) and a dim that is even but not a multiple of 4.
    for num_positions, dim in [(12, 8), (50, 64), (7, 6), (1, 2)]:
        result = _call_sinusoidal(candidate, num_positions, dim)
        expected = sinusoidal_position_encoding(num_positions, dim).double()
        if torch.allclose(result, expected, atol=_ATOL, rtol=0):
            continue
        for message, wrong in _variants(num_positions, dim).items():
            if torch.allclose(result, wrong, atol=_ATOL, rtol=0):
                raise Incorrect(message)
        error = (result - expected).abs().max().item()
        raise Incorrect(
            f"with num_positions={num_positions}, dim={dim}, the values are wrong (max abs error {error:.3g}): "
            "PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim))."
        )


# -- 03.sinusoidal_2d ----------------------------------------------------------------------------


def grade_sinusoidal_2d(candidate) -> None:
    for grid_h, grid_w, dim in [(3, 5, 8), (4, 4, 16), (2, 7, 12)]:
        context = f"with grid_height={grid_h}, grid_width={grid_w}, dim={dim}"
        result = candidate(grid_h, grid_w, dim)
        if not isinstance(result, torch.Tensor):
            raise Incorrect(f"{context}, you returned {type(result).__name__}; return a torch.Tensor.")
        N = grid_h * grid_w
        if tuple(result.shape) == (grid_h, grid_w, dim):
            raise Incorrect(
                f"{context}, the result has shape {tuple(result.shape)}: flatten the grid row-major into "
                f"(grid_height * grid_width, dim) = {(N, dim)}, the order patchify gives the tokens."
            )
        if tuple(result.shape) != (N, dim):
            raise Incorrect(f"{context}, the result has shape {tuple(result.shape)}, expected {(N, dim)}.")
        if not result.is_floating_point():
            raise Incorrect(f"{context}, the result has dtype {result.dtype}; return floating-point values.")
        result = result.detach().double()
        expected = sinusoidal_position_encoding_2d(grid_h, grid_w, dim).double()
        if torch.allclose(result, expected, atol=_ATOL, rtol=0):
            continue
        half = dim // 2
        rows = expected[:, :half]  # row code of each patch
        cols = expected[:, half:]
        guesses = {
            "the halves are swapped: this course puts the row's encoding in the first dim/2 features and the "
            "column's in the last dim/2.": torch.cat([cols, rows], dim=1),
            "the patches are in column-major order; list them row by row (row-major), as patchify does.": (
                torch.cat(
                    [
                        sinusoidal_position_encoding(grid_h, half).double().repeat(grid_w, 1),
                        sinusoidal_position_encoding(grid_w, half).double().repeat_interleave(grid_h, 0),
                    ],
                    dim=1,
                )
            ),
            "this is the 1-D encoding of the patch index p = row * grid_width + column; a 2-D encoding encodes "
            "the row and the column separately, each in half of the features.": sinusoidal_position_encoding(
                N, dim
            ).double(),
        }
        for message, guess in guesses.items():
            if torch.allclose(result, guess, atol=_ATOL, rtol=0):
                raise Incorrect(f"{context}: {message}")
        raise Incorrect(
            f"{context}, the values are wrong: patch (r, c) gets [PE_1d(r) | PE_1d(c)], each PE_1d of width "
            "dim/2 (PE_1d(p)[2i] = sin(p / 10000^(2i/(dim/2))), PE_1d(p)[2i+1] = cos of the same angle)."
        )


register(
    Exercise(
        id="03.sinusoidal",
        title="1-D sinusoidal position encoding",
        grader=grade_sinusoidal,
        solution_obj=sinusoidal,
        hint_text=(
            "positions = torch.arange(num_positions)[:, None] (N, 1); two_i = torch.arange(0, dim, 2) (D/2,); "
            "angles = positions / 10000 ** (two_i / dim) (N, D/2); fill a (N, D) zero tensor with "
            "encoding[:, 0::2] = sin(angles) and encoding[:, 1::2] = cos(angles)."
        ),
    )
)

register(
    Exercise(
        id="03.sinusoidal_2d",
        title="2-D sinusoidal position encoding for a patch grid",
        grader=grade_sinusoidal_2d,
        solution_obj=sinusoidal_2d,
        hint_text=(
            "Encode the rows with the 1-D encoding of width dim // 2, (gh, D/2), and the columns the same way, "
            "(gw, D/2). Broadcast both to (gh, gw, D/2) with [:, None, :] and [None, :, :] and .expand, "
            "concatenate [rows | columns] on the last axis, and reshape to (gh * gw, dim)."
        ),
    )
)
