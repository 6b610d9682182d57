"""Lesson 12 exercises: resample a learned position embedding to a new patch grid, graded against
:func:`vit_lessons.position.resample_position_embedding` (equal to timm's ``resample_abs_pos_embed``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..position import resample_position_embedding
from . import Exercise, register
from .grading import Incorrect, as_float32, expect_tensor, prefix_tokens_case


def resample(pos_embed, new_grid, num_prefix_tokens=1):
    """Reference solution: keep the prefix tokens, interpolate the square grid bicubically (with
    antialiasing, as timm does) to ``new_grid`` = (rows, cols)."""
    import math

    import torch
    import torch.nn.functional as F

    prefix = pos_embed[:, :num_prefix_tokens]  # (1, prefix, D): class/distillation tokens keep theirs
    grid = pos_embed[:, num_prefix_tokens:]  # (1, gh·gw, D)
    side = math.isqrt(grid.shape[1])
    dim = grid.shape[-1]
    grid = grid.reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, D, gh, gw): D channels of an image
    grid = F.interpolate(grid, size=tuple(new_grid), mode="bicubic", antialias=True)  # (1, D, gh', gw')
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)  # (1, gh'·gw', D)
    return torch.cat([prefix, grid], dim=1)


def _smooth_embedding(side: int, dim: int, prefix: int, generator: torch.Generator) -> torch.Tensor:
    """A position embedding that varies smoothly over the grid (like trained ones), plus prefix rows."""
    rows = torch.linspace(-1, 1, side)
    frequencies = torch.randn(dim, 2, generator=generator) * 2
    phases = torch.rand(dim, generator=generator) * 6.28
    y, x = torch.meshgrid(rows, rows, indexing="ij")  # (gh, gw)
    grid = torch.sin(frequencies[:, 0, None, None] * y + frequencies[:, 1, None, None] * x + phases[:, None, None])
    grid = grid + 0.3 * torch.randn(dim, side, side, generator=generator)  # (D, gh, gw)
    grid = grid.permute(1, 2, 0).reshape(1, side * side, dim)
    return torch.cat([torch.randn(1, prefix, dim, generator=generator) * 5, grid], dim=1)


def _diagnose(answer: torch.Tensor, pos_embed: torch.Tensor, new_grid, prefix: int) -> str:
    """Name the usual mistake that produced ``answer``, or ''."""
    side = int((pos_embed.shape[1] - prefix) ** 0.5)
    dim = pos_embed.shape[-1]
    grid = pos_embed[:, prefix:].reshape(1, side, side, dim).permute(0, 3, 1, 2)

    def assemble(image, rows, cols, keep_prefix=True):
        flat = image.permute(0, 2, 3, 1).reshape(1, rows * cols, dim)
        return torch.cat([pos_embed[:, :prefix], flat], dim=1) if keep_prefix else flat

    def interpolate(mode, antialias=True, size=tuple(new_grid)):
        return F.interpolate(grid, size=size, mode=mode, antialias=antialias, align_corners=False)

    rows, cols = new_grid
    guesses = {
        "you used bilinear interpolation; the reference (and timm) use mode='bicubic'": assemble(
            interpolate("bilinear"), rows, cols
        ),
        "downsampling without antialias=True aliases; timm resamples with antialias=True": assemble(
            interpolate("bicubic", antialias=False), rows, cols
        ),
        "the grid is transposed: new_grid is (rows, cols) and the tokens are row-major; reshape to (1, gh, gw, D) "
        "and permute to (1, D, gh, gw), not the other way round": assemble(
            interpolate("bicubic", size=(cols, rows)).transpose(2, 3), rows, cols
        ),
    }
    for message, guess in guesses.items():
        if answer.shape == guess.shape and torch.allclose(answer, guess, atol=1e-4):
            return message
    scrambled = pos_embed[:, prefix:].reshape(1, dim, side, side)  # reshape without permute
    wrong = F.interpolate(scrambled, size=tuple(new_grid), mode="bicubic", antialias=True)
    guess = torch.cat([pos_embed[:, :prefix], wrong.reshape(1, dim, rows * cols).transpose(1, 2)], dim=1)
    if answer.shape == guess.shape and torch.allclose(answer, guess, atol=1e-4):
        return (
            "the tokens were reshaped straight to (1, D, gh, gw), which mixes features and positions: "
            "reshape to (1, gh, gw, D) first, then permute(0, 3, 1, 2)"
        )
    return ""


def grade_resample(candidate) -> None:
    generator = torch.Generator().manual_seed(12)
    cases = [  # (old side, new grid, prefix tokens, dim): up, down (CIFAR), non-square, no/two prefix tokens
        (4, (6, 6), 1, 8),
        (7, (3, 3), 1, 6),
        (5, (3, 7), 1, 4),
        (6, (6, 6), 1, 5),
        (4, (5, 3), 0, 6),
        (6, (8, 4), 2, 8),
    ]
    for side, new_grid, prefix, dim in cases:
        pos_embed = _smooth_embedding(side, dim, prefix, generator)
        before = pos_embed.clone()
        with prefix_tokens_case(prefix):
            answer = candidate(pos_embed, new_grid, prefix)
        if not torch.equal(before, pos_embed):
            raise Incorrect("your function changed pos_embed in place; build a new tensor instead.")
        expected = resample_position_embedding(pos_embed, new_grid, num_prefix_tokens=prefix)
        what = f"the result for a {side}x{side} grid resampled to {new_grid[0]}x{new_grid[1]}"
        what += f" with {prefix} prefix token(s)"
        answer = as_float32(expect_tensor(answer, what).detach())
        rows, cols = new_grid
        if answer.shape[1] == rows * cols and prefix > 0:
            raise Incorrect(
                f"{what} has {rows * cols} tokens: the prefix (class) token's embedding was dropped. "
                f"Keep pos_embed[:, :num_prefix_tokens] unchanged and put it back in front."
            )
        if answer.shape[1] == rows * cols + 1 and prefix != 1:
            raise Incorrect(
                f"{what} has {answer.shape[1]} tokens, expected {rows * cols + prefix}: use num_prefix_tokens "
                "rather than assuming one class token."
            )
        if tuple(answer.shape) != tuple(expected.shape):
            raise Incorrect(f"{what} has shape {tuple(answer.shape)}, expected {tuple(expected.shape)}.")
        if prefix and not torch.allclose(answer[:, :prefix], pos_embed[:, :prefix], atol=1e-6):
            raise Incorrect(
                "the prefix (class) token's embedding changed: it has no place on the grid, so keep it as it is "
                "and interpolate only the grid tokens."
            )
        if not torch.allclose(answer, expected, atol=1e-4):
            hint = _diagnose(answer, pos_embed, new_grid, prefix)
            error = (answer - expected).abs().max().item()
            raise Incorrect(f"{what} has the right shape but wrong values (max abs error {error:.3g}). {hint}".strip())


register(
    Exercise(
        id="12.resample_position_embedding",
        title="Resample a position embedding to a new grid",
        grader=grade_resample,
        solution_obj=resample,
        hint_text=(
            "Split off pos_embed[:, :num_prefix_tokens]; reshape the rest to (1, side, side, D) and permute to "
            "(1, D, side, side) so the D features are image channels; F.interpolate(..., size=new_grid, "
            "mode='bicubic', antialias=True); permute back, reshape to (1, rows·cols, D) and concatenate the prefix "
            "in front."
        ),
    )
)
