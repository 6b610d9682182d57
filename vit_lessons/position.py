"""Position information for a set of tokens.

Self-attention is permutation-equivariant: without position information a ViT sees a bag of
patches. Two ways to add it:

- fixed sinusoidal encodings (Vaswani et al. 2017, Sec. 3.5):
  PE[p, 2i] = sin(p / 10000^(2i/D)), PE[p, 2i+1] = cos(p / 10000^(2i/D));
- learned embeddings, one D-vector per position (what ViT uses, Dosovitskiy et al. 2021, Eq. 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "sinusoidal_position_encoding",
    "sinusoidal_position_encoding_2d",
    "learned_position_embedding",
    "resample_position_embedding",
]


def _check_dim(name: str, value, multiple: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    if value % multiple:
        raise ValueError(f"{name}={value} must be a multiple of {multiple}; use {value + multiple - value % multiple}")


def sinusoidal_position_encoding(num_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Fixed 1-D sinusoidal encoding, (num_positions, dim), even ``dim``.

    Column 2i holds sin(p / base^(2i/dim)), column 2i+1 the cosine of the same angle.
    """
    _check_dim("num_positions", num_positions)
    _check_dim("dim", dim, 2)
    positions = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)  # (N, 1)
    two_i = torch.arange(0, dim, 2, dtype=torch.float64)  # (D/2,)
    angles = positions / base ** (two_i / dim)  # (N, D/2)
    encoding = torch.empty(num_positions, dim, dtype=torch.float64)
    encoding[:, 0::2] = torch.sin(angles)
    encoding[:, 1::2] = torch.cos(angles)
    return encoding.float()


def sinusoidal_position_encoding_2d(grid_height: int, grid_width: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """Fixed 2-D encoding for a patch grid, (grid_height·grid_width, dim), ``dim`` a multiple of 4.

    The first half of each vector is the 1-D encoding of the patch's row, the second half that of
    its column; patches are in row-major order, as :func:`vit_lessons.patches.patchify` gives them.
    """
    _check_dim("grid_height", grid_height)
    _check_dim("grid_width", grid_width)
    _check_dim("dim", dim, 4)
    rows = sinusoidal_position_encoding(grid_height, dim // 2, base)  # (gh, D/2)
    cols = sinusoidal_position_encoding(grid_width, dim // 2, base)  # (gw, D/2)
    rows = rows[:, None, :].expand(grid_height, grid_width, dim // 2)
    cols = cols[None, :, :].expand(grid_height, grid_width, dim // 2)
    return torch.cat([rows, cols], dim=-1).reshape(grid_height * grid_width, dim)


def learned_position_embedding(num_positions: int, dim: int, std: float = 0.02) -> nn.Parameter:
    """A learned embedding, (1, num_positions, dim), initialised from N(0, 0.02²) truncated at ±2σ
    (so the values' actual standard deviation is about 0.0176; timm truncates at ±2 absolute instead,
    which leaves N(0, 0.02²) untouched: either way training sets the final values)."""
    _check_dim("num_positions", num_positions)
    _check_dim("dim", dim)
    embedding = nn.Parameter(torch.empty(1, num_positions, dim))
    nn.init.trunc_normal_(embedding, std=std, a=-2 * std, b=2 * std)
    return embedding


def resample_position_embedding(
    pos_embed: torch.Tensor,
    new_grid: tuple[int, int] | int,
    num_prefix_tokens: int = 1,
    old_grid: tuple[int, int] | None = None,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Resample a (1, prefix + gh·gw, D) position embedding to a new patch grid.

    The prefix tokens (class, distillation) keep their embeddings; the grid part is interpolated
    as a D-channel image (bicubic with antialiasing, as timm's ``resample_abs_pos_embed``), so
    224-px weights (14×14 grid) run at 384 px (24×24) or on 32-px images.
    """
    if not isinstance(pos_embed, torch.Tensor) or pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ValueError("pos_embed must have shape (1, num_prefix_tokens + grid_h*grid_w, dim)")
    if isinstance(new_grid, int):
        new_grid = (new_grid, new_grid)
    new_grid = (int(new_grid[0]), int(new_grid[1]))
    num_grid = pos_embed.shape[1] - num_prefix_tokens
    if num_prefix_tokens < 0 or num_grid <= 0:
        raise ValueError(f"num_prefix_tokens={num_prefix_tokens} leaves no grid tokens in {tuple(pos_embed.shape)}")
    if old_grid is None:
        side = math.isqrt(num_grid)
        if side * side != num_grid:
            raise ValueError(f"{num_grid} grid tokens are not a square grid; pass old_grid=(rows, cols)")
        old_grid = (side, side)
    if old_grid[0] * old_grid[1] != num_grid:
        raise ValueError(f"old_grid {old_grid} does not hold {num_grid} tokens")
    if tuple(old_grid) == new_grid:
        return pos_embed
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    dim = grid.shape[-1]
    dtype = grid.dtype
    grid = grid.float().reshape(1, old_grid[0], old_grid[1], dim).permute(0, 3, 1, 2)  # (1, D, gh, gw)
    antialias = mode in ("bilinear", "bicubic")
    # Apple GPUs (MPS) lack the antialiased bicubic kernel in several PyTorch releases (NotImplementedError):
    # resample there on the CPU, a one-off on a small tensor.
    device = grid.device
    work = grid.cpu() if device.type == "mps" else grid
    grid = F.interpolate(work, size=new_grid, mode=mode, antialias=antialias).to(device)  # (1, D, gh', gw')
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim).to(dtype)
    return torch.cat([prefix, grid], dim=1)
