"""The Swin Transformer (Liu et al. 2021, "Hierarchical Vision Transformer using Shifted Windows").

Taught in lesson 11 (``notebooks/11_swin_transformer.ipynb``).

ViT attends globally: every token to every other, a cost quadratic in the number of tokens. Swin
attends inside non-overlapping M×M windows (W-MSA), linear in the image area, and alternates with
windows shifted by M/2 (SW-MSA) so information crosses window borders. Patch merging halves the
grid and doubles the width between stages, giving a CNN-like pyramid of feature maps.

    z'_l     = W-MSA(LN(z_{l-1})) + z_{l-1}          z_l     = MLP(LN(z'_l)) + z'_l        (Eq. 3)
    z'_{l+1} = SW-MSA(LN(z_l)) + z_l                 z_{l+1} = MLP(LN(z'_{l+1})) + z'_{l+1}
    Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d) + B) V                                       (Eq. 4)

with B the relative position bias. Tokens are kept as feature maps (B, H, W, C) between blocks.
Parameter names and shapes are those of timm's ``SwinTransformer`` (``patch_embed.proj/norm``,
``layers.i.downsample``, ``layers.i.blocks.j.attn.relative_position_bias_table``, ``head.fc``), so
timm state dicts load with ``strict=True``; ``relative_position_index`` and ``attn_mask`` are
non-persistent buffers, as in timm 1.0, and are not in the state dict.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention
from .blocks import DropPath, Mlp
from .patches import PatchEmbedding

__all__ = [
    "window_partition",
    "window_reverse",
    "relative_position_index",
    "cyclic_shift",
    "shift_region_labels",
    "shifted_window_mask",
    "stage_resolutions",
    "SwinPatchEmbedding",
    "WindowAttention",
    "SwinBlock",
    "PatchMerging",
    "SwinStage",
    "SwinTransformer",
    "MODEL_REGISTRY",
]

SWIN_LAYER_NORM_EPS = 1e-5  # Swin (and timm's Swin) use nn.LayerNorm's default, not ViT's 1e-6


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair (height, width), got {value!r}")
        return int(value[0]), int(value[1])
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an int or a pair (height, width), got {type(value).__name__} ({value!r})")
    return value, value


# -- windows ------------------------------------------------------------------------------------
def window_partition(tokens: torch.Tensor, window_size) -> torch.Tensor:
    """Cut a feature map into non-overlapping windows, row-major over the window grid.

    (B, H, W, C) → (B · H/M · W/M, M, M, C), window index b · (H/M · W/M) + row · W/M + col.
    """
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 4:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"window_partition expects a feature map (B, H, W, C), got {shape}")
    win_h, win_w = _pair(window_size)
    B, H, W, C = tokens.shape
    if H % win_h or W % win_w:
        raise ValueError(
            f"a {H}x{W} feature map does not split into {win_h}x{win_w} windows; its height and width "
            f"must be multiples of the window size (pad it, or choose a window size that divides {H} and {W})"
        )
    grid = tokens.reshape(B, H // win_h, win_h, W // win_w, win_w, C)  # (B, H/M, M, W/M, M, C)
    windows = grid.permute(0, 1, 3, 2, 4, 5)  # (B, H/M, W/M, M, M, C): the window grid first
    return windows.reshape(-1, win_h, win_w, C)  # (B·nW, M, M, C)


def window_reverse(windows: torch.Tensor, window_size, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`window_partition`: (B · nW, M, M, C) → (B, H, W, C)."""
    win_h, win_w = _pair(window_size)
    if height % win_h or width % win_w:
        raise ValueError(f"a {height}x{width} map is not a whole number of {win_h}x{win_w} windows")
    if windows.ndim != 4 or tuple(windows.shape[1:3]) != (win_h, win_w):
        raise ValueError(f"expected windows of shape (B·nW, {win_h}, {win_w}, C), got {tuple(windows.shape)}")
    num_windows = (height // win_h) * (width // win_w)
    if windows.shape[0] % num_windows:
        raise ValueError(
            f"{windows.shape[0]} windows is not a multiple of the {num_windows} windows of a {height}x{width} map"
        )
    C = windows.shape[-1]
    grid = windows.reshape(-1, height // win_h, width // win_w, win_h, win_w, C)  # (B, H/M, W/M, M, M, C)
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, C)  # (B, H, W, C)


def relative_position_index(window_size) -> torch.Tensor:
    """Index into the (2M-1)² relative position bias table for every (query, key) pair of a window.

    Token i at (y_i, x_i), token j at (y_j, x_j): the offset (y_i - y_j, x_i - x_j) lies in
    [-(M-1), M-1]², shifted to [0, 2M-2]² and read row-major. Returns (M², M²) long.
    """
    win_h, win_w = _pair(window_size)
    rows, cols = torch.meshgrid(torch.arange(win_h), torch.arange(win_w), indexing="ij")
    coords = torch.stack([rows.flatten(), cols.flatten()])  # (2, M²): (y, x) of each token
    offsets = coords[:, :, None] - coords[:, None, :]  # (2, M², M²): query minus key
    dy = offsets[0] + win_h - 1  # in [0, 2·M_h - 2]
    dx = offsets[1] + win_w - 1
    return dy * (2 * win_w - 1) + dx  # (M², M²)


def cyclic_shift(tokens: torch.Tensor, shift: int) -> torch.Tensor:
    """Roll a feature map (B, H, W, C) up and left by ``shift`` (down and right to undo: ``-shift``).

    The top ``shift`` rows move to the bottom and the left ``shift`` columns to the right, so the
    windows that straddled the old window borders become whole windows again (paper Fig. 4)."""
    shift_h, shift_w = _pair(shift)
    return torch.roll(tokens, shifts=(-shift_h, -shift_w), dims=(1, 2))


def shift_region_labels(height: int, width: int, window_size, shift) -> torch.Tensor:
    """Label each position of the *shifted* map by the region it came from: (H, W) long.

    Along each axis the shifted map has three bands: ``[0, H-M)`` (never moved across a border),
    ``[H-M, H-s)`` and ``[H-s, H)`` (the rows that wrapped round from the top). Rows and columns
    give 3 × 3 = 9 regions; tokens of different regions were not neighbours in the image.
    """
    win_h, win_w = _pair(window_size)
    shift_h, shift_w = _pair(shift)
    labels = torch.zeros(height, width, dtype=torch.long)
    bands_h = ((0, height - win_h), (height - win_h, height - shift_h), (height - shift_h, height))
    bands_w = ((0, width - win_w), (width - win_w, width - shift_w), (width - shift_w, width))
    for i, (top, bottom) in enumerate(bands_h):
        for j, (left, right) in enumerate(bands_w):
            labels[top:bottom, left:right] = 3 * i + j
    return labels


def shifted_window_mask(height: int, width: int, window_size, shift) -> torch.Tensor:
    """Attention mask for shifted windows: (nW, M², M²) bool, True where a query may attend a key.

    After the cyclic shift a window at the bottom or right border holds tokens from opposite
    borders of the image; they may only attend to tokens of their own region. ``shift = 0`` gives
    all True (plain windows need no mask).
    """
    win_h, win_w = _pair(window_size)
    shift_h, shift_w = _pair(shift)
    if not (0 <= shift_h < win_h and 0 <= shift_w < win_w):
        raise ValueError(f"shift {shift} must be in [0, window size {window_size}); Swin uses window_size // 2")
    labels = shift_region_labels(height, width, (win_h, win_w), (shift_h, shift_w))  # (H, W)
    window_labels = window_partition(labels[None, :, :, None], (win_h, win_w))  # (nW, M, M, 1)
    window_labels = window_labels.reshape(-1, win_h * win_w)  # (nW, M²)
    return window_labels[:, :, None] == window_labels[:, None, :]  # (nW, M², M²)


def stage_resolutions(img_size, patch_size: int, window_size: int, num_stages: int) -> list[dict]:
    """Per stage: the feature-map size, the window used and the shift, with timm's rule that a
    stage whose map fits in one window uses the whole map as its window and does not shift.

    Raises a ValueError (with a size that works) when the image does not split into patches and
    whole windows at every stage."""
    height, width = _pair(img_size)
    problem = _size_problem(height, width, patch_size, window_size, num_stages)
    if problem:
        good = _nearest_good_size(height, patch_size, window_size, num_stages)
        fix = f"use img_size={good}" if good else "change patch_size or window_size"
        raise ValueError(
            f"image size {height}x{width} does not fit patch_size={patch_size}, window_size={window_size} "
            f"with {num_stages} stages: {problem}. The image must be a multiple of patch × window "
            f"(and halve evenly between stages); {fix}"
        )
    stages, grid = [], (height // patch_size, width // patch_size)
    for index in range(num_stages):
        if index > 0:
            grid = (grid[0] // 2, grid[1] // 2)
        window = tuple(min(r, window_size) for r in grid)
        shift = tuple(0 if r <= window_size else window_size // 2 for r in grid)
        stages.append(dict(resolution=grid, window=window, shift=shift))
    return stages


def _size_problem(height: int, width: int, patch_size: int, window_size: int, num_stages: int) -> str:
    if height % patch_size or width % patch_size:
        return f"{height}x{width} is not divisible by patch size {patch_size}"
    grid = [height // patch_size, width // patch_size]
    for index in range(num_stages):
        if index > 0:
            if grid[0] % 2 or grid[1] % 2:
                return f"stage {index} cannot merge 2x2 patches of a {grid[0]}x{grid[1]} map (odd size)"
            grid = [grid[0] // 2, grid[1] // 2]
        for r in grid:
            if r > window_size and r % window_size:
                size = f"{grid[0]}x{grid[1]}"
                return f"stage {index}'s {size} map is not a whole number of {window_size}x{window_size} windows"
    return ""


def _nearest_good_size(size: int, patch_size: int, window_size: int, num_stages: int) -> int | None:
    for distance in range(0, 4 * size + 1):
        for candidate in (size - distance, size + distance):
            if candidate > 0 and not _size_problem(candidate, candidate, patch_size, window_size, num_stages):
                return candidate
    return None


def _trunc_normal_(tensor: torch.Tensor, std: float = 0.02) -> torch.Tensor:
    """N(0, std²) truncated at ±2 std, by inverse CDF (as timm does): one pass, where
    ``nn.init.trunc_normal_``'s rejection loop takes seconds on a 28M-parameter model's CPU init."""
    with torch.no_grad():
        low = 0.5 * (1 + math.erf(-2.0 / math.sqrt(2)))  # Φ(-2)
        tensor.uniform_(2 * low - 1, 1 - 2 * low)  # 2Φ(x) - 1 for x in [-2, 2]
        return tensor.erfinv_().mul_(std * 2**0.5).clamp_(-2 * std, 2 * std)


def _init_weights(module: nn.Module) -> None:
    """The ViT initialisation: truncated normal (std 0.02) linear weights, zero biases, LayerNorm = identity."""
    if isinstance(module, nn.Linear):
        _trunc_normal_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# -- modules ------------------------------------------------------------------------------------
class SwinPatchEmbedding(PatchEmbedding):
    """Patch partition + linear embedding (paper Sec. 3.1) followed by a LayerNorm, as in Swin.

    (B, C, H, W) → (B, H/P, W/P, D): a feature map, not a sequence, since windows need the grid.
    """

    def __init__(self, img_size=224, patch_size: int = 4, in_chans: int = 3, embed_dim: int = 96):
        super().__init__(img_size, patch_size, in_chans, embed_dim)
        self.norm = nn.LayerNorm(embed_dim, eps=SWIN_LAYER_NORM_EPS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = super().forward(images)  # (B, N, D), images checked there
        feature_map = tokens.reshape(tokens.shape[0], *self.grid_size, -1)  # (B, H/P, W/P, D)
        return self.norm(feature_map)


class WindowAttention(MultiHeadSelfAttention):
    """Multi-head self-attention inside each window, with a learned relative position bias (Eq. 4).

    One bias per head and per relative offset: a ``relative_position_bias_table`` of shape
    ((2M-1)², h), read through the fixed ``relative_position_index`` (M², M²). (B·nW, M², D) →
    (B·nW, M², D). ``mask`` (nW, M², M²) bool, True = may attend; masked pairs get exactly zero weight.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        window_size=7,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.window_size = _pair(window_size)
        win_h, win_w = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * win_h - 1) * (2 * win_w - 1), num_heads))
        _trunc_normal_(self.relative_position_bias_table)
        self.register_buffer("relative_position_index", relative_position_index(self.window_size), persistent=False)

    def relative_position_bias(self) -> torch.Tensor:
        """The bias B of Eq. 4 for every head: (h, M², M²)."""
        area = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]  # (M²·M², h)
        return bias.reshape(area, area, -1).permute(2, 0, 1)  # (h, M², M²)

    def attention_bias(self, num_windows_total: int, mask: torch.Tensor | None) -> torch.Tensor:
        """Relative position bias plus the shift mask as -inf: (B·nW or 1, h, M², M²)."""
        bias = self.relative_position_bias().unsqueeze(0)  # (1, h, M², M²)
        if mask is None:
            return bias
        num_windows = mask.shape[0]
        if num_windows_total % num_windows:
            raise ValueError(f"{num_windows_total} windows is not a multiple of the mask's {num_windows} windows")
        blocked = torch.zeros(mask.shape, dtype=bias.dtype, device=bias.device).masked_fill(~mask, float("-inf"))
        bias = bias + blocked.unsqueeze(1)  # (nW, h, M², M²)
        bias = bias.unsqueeze(0).expand(num_windows_total // num_windows, -1, -1, -1, -1)  # (B, nW, h, M², M²)
        return bias.reshape(num_windows_total, self.num_heads, *mask.shape[1:])  # (B·nW, h, M², M²)

    def forward(self, windows: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        area = self.window_size[0] * self.window_size[1]
        if windows.ndim != 3 or windows.shape[1] != area or windows.shape[2] != self.qkv.in_features:
            raise ValueError(
                f"expected windows of shape (B·nW, {area}, {self.qkv.in_features}), got {tuple(windows.shape)}"
            )
        if mask is not None and mask.dtype != torch.bool:
            raise TypeError("mask must be boolean (True = may attend), as from shifted_window_mask")
        B_, N, D = windows.shape
        q, k, v = self.split_heads(windows)  # (B·nW, h, M², d) each
        bias = self.attention_bias(B_, mask)  # (B·nW or 1, h, M², M²)
        if self.fused_attn:
            dropout = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=dropout)
        else:
            scores = (q * self.scale) @ k.transpose(-2, -1) + bias  # (B·nW, h, M², M²)
            weights = self.attn_drop(scores.softmax(dim=-1))  # a forward hook on attn_drop reads them
            out = weights @ v  # (B·nW, h, M², d)
        out = out.transpose(1, 2).reshape(B_, N, D)
        return self.proj_drop(self.proj(out))


class SwinBlock(nn.Module):
    """One Swin block: (shifted) window attention and an MLP, pre-norm, on a (B, H, W, C) map.

    ``shift_size = 0`` is W-MSA; ``window_size // 2`` is SW-MSA: roll the map, attend in windows
    with :func:`shifted_window_mask`, roll back. Names as timm: ``norm1``, ``attn``, ``norm2``, ``mlp``.
    """

    def __init__(
        self,
        dim: int,
        input_resolution,
        num_heads: int,
        window_size=7,
        shift_size=0,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.input_resolution = _pair(input_resolution)
        self.window_size = _pair(window_size)
        self.shift_size = _pair(shift_size)
        height, width = self.input_resolution
        if height % self.window_size[0] or width % self.window_size[1]:
            raise ValueError(
                f"a {height}x{width} map is not a whole number of {self.window_size} windows; see stage_resolutions"
            )
        self.norm1 = nn.LayerNorm(dim, eps=SWIN_LAYER_NORM_EPS)
        self.attn = WindowAttention(dim, num_heads, self.window_size, qkv_bias, attn_drop, proj_drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=SWIN_LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path)
        mask = shifted_window_mask(height, width, self.window_size, self.shift_size) if any(self.shift_size) else None
        self.register_buffer("attn_mask", mask, persistent=False)

    def window_attention(self, feature_map: torch.Tensor) -> torch.Tensor:
        """(S)W-MSA on a normalised map: (B, H, W, C) → (B, H, W, C)."""
        B, H, W, C = feature_map.shape
        if any(self.shift_size):
            feature_map = cyclic_shift(feature_map, self.shift_size)
        windows = window_partition(feature_map, self.window_size)  # (B·nW, M, M, C)
        windows = windows.reshape(windows.shape[0], -1, C)  # (B·nW, M², C)
        windows = self.attn(windows, mask=self.attn_mask)  # (B·nW, M², C)
        windows = windows.reshape(-1, *self.window_size, C)  # (B·nW, M, M, C)
        feature_map = window_reverse(windows, self.window_size, H, W)  # (B, H, W, C)
        if any(self.shift_size):
            feature_map = cyclic_shift(feature_map, (-self.shift_size[0], -self.shift_size[1]))
        return feature_map

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        if feature_map.ndim != 4 or tuple(feature_map.shape[1:3]) != self.input_resolution:
            raise ValueError(
                f"SwinBlock expects a feature map (B, {self.input_resolution[0]}, {self.input_resolution[1]}, C), "
                f"got {tuple(feature_map.shape)}"
            )
        feature_map = feature_map + self.drop_path1(self.window_attention(self.norm1(feature_map)))
        return feature_map + self.drop_path2(self.mlp(self.norm2(feature_map)))  # (B, H, W, C)


class PatchMerging(nn.Module):
    """Merge each 2×2 group of neighbouring tokens (paper Sec. 3.1): concatenate their 4C features,
    LayerNorm, and a linear map to 2C. (B, H, W, C) → (B, H/2, W/2, 2C).

    Concatenation order (timm's and the paper code's): (0,0), (1,0), (0,1), (1,1) as (row, col).
    """

    def __init__(self, dim: int, out_dim: int | None = None):
        super().__init__()
        self.out_dim = out_dim or 2 * dim
        self.norm = nn.LayerNorm(4 * dim, eps=SWIN_LAYER_NORM_EPS)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        B, H, W, C = feature_map.shape
        if H % 2 or W % 2:
            raise ValueError(f"patch merging needs an even-sized map, got {H}x{W}")
        groups = feature_map.reshape(B, H // 2, 2, W // 2, 2, C)  # (B, H/2, row, W/2, col, C)
        merged = groups.permute(0, 1, 3, 4, 2, 5).flatten(3)  # (B, H/2, W/2, 4C), col-major in the 2×2
        return self.reduction(self.norm(merged))  # (B, H/2, W/2, 2C)


class SwinStage(nn.Module):
    """One stage: patch merging (not in the first stage), then ``depth`` blocks alternating W-MSA
    and SW-MSA. timm puts the merging at the start of each stage (``layers.i.downsample``)."""

    def __init__(
        self,
        dim: int,
        out_dim: int,
        input_resolution,
        depth: int,
        num_heads: int,
        window_size: int = 7,
        downsample: bool = True,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path=0.0,
    ):
        super().__init__()
        height, width = _pair(input_resolution)
        if downsample:
            self.downsample = PatchMerging(dim, out_dim)
            height, width = height // 2, width // 2
        else:
            if dim != out_dim:
                raise ValueError(f"a stage without patch merging keeps its width: dim {dim} != out_dim {out_dim}")
            self.downsample = nn.Identity()
        self.output_resolution = (height, width)
        # timm's rule: a map that fits in one window is one window, and shifting it would do nothing.
        window = (min(height, window_size), min(width, window_size))
        shift = (0 if height <= window_size else window_size // 2, 0 if width <= window_size else window_size // 2)
        rates = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
        self.blocks = nn.Sequential(
            *[
                SwinBlock(
                    out_dim,
                    (height, width),
                    num_heads,
                    window,
                    (0, 0) if index % 2 == 0 else shift,
                    mlp_ratio,
                    qkv_bias,
                    proj_drop,
                    attn_drop,
                    rates[index],
                )
                for index in range(depth)
            ]
        )

    def forward(self, feature_map: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(feature_map))  # (B, H', W', C')


class ClassifierHead(nn.Module):
    """Average over the map, dropout, linear: (B, H, W, C) → (B, classes). Named like timm's (``fc``)."""

    def __init__(self, in_features: int, num_classes: int, drop_rate: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(in_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, feature_map: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        pooled = self.drop(feature_map.mean(dim=(1, 2)))  # (B, C)
        return pooled if pre_logits else self.fc(pooled)


class SwinTransformer(nn.Module):
    """Swin classifier: (B, C, H, W) → (B, num_classes).

    Stage i runs on an (H/P/2^i)-sized map of width ``embed_dim · 2^i`` with ``num_heads[i]`` heads.
    The image size must split into patches and whole windows at every stage (see
    :func:`stage_resolutions`); a stage whose map fits in one window uses the whole map.
    """

    def __init__(
        self,
        img_size=224,
        patch_size: int = 4,
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 96,
        depths: tuple[int, ...] = (2, 2, 6, 2),
        num_heads: tuple[int, ...] = (3, 6, 12, 24),
        window_size: int = 7,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.1,
    ):
        super().__init__()
        depths, num_heads = tuple(depths), tuple(num_heads)
        if len(depths) != len(num_heads) or not depths:
            raise ValueError(f"depths {depths} and num_heads {num_heads} need one entry per stage, same length")
        if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size <= 0:
            raise ValueError(f"window_size must be a positive int, got {window_size!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
        self.stages_info = stage_resolutions(img_size, patch_size, window_size, len(depths))  # validates sizes
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.num_features = embed_dim * 2 ** (len(depths) - 1)
        self.patch_embed = SwinPatchEmbedding(img_size, patch_size, in_chans, embed_dim)

        rates = torch.linspace(0, drop_path_rate, sum(depths), device="cpu").split(list(depths))
        stages, dim, resolution = [], embed_dim, self.patch_embed.grid_size
        for index, (depth, heads) in enumerate(zip(depths, num_heads)):
            out_dim = embed_dim * 2**index
            stage = SwinStage(
                dim,
                out_dim,
                resolution,
                depth,
                heads,
                window_size,
                downsample=index > 0,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                proj_drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=rates[index].tolist(),
            )
            stages.append(stage)
            dim, resolution = out_dim, stage.output_resolution
        self.layers = nn.Sequential(*stages)
        self.norm = nn.LayerNorm(self.num_features, eps=SWIN_LAYER_NORM_EPS)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate)
        self.apply(_init_weights)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) → (B, H/(P·2^(S-1)), W/(P·2^(S-1)), C_last), normalised."""
        feature_map = self.patch_embed(images)  # (B, H/P, W/P, D)
        feature_map = self.layers(feature_map)
        return self.norm(feature_map)

    def forward_head(self, feature_map: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(feature_map, pre_logits=pre_logits)  # (B, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(images))


# name -> (class, default kwargs); vit_lessons.create_model picks these up.
MODEL_REGISTRY: dict[str, tuple[type[nn.Module], dict]] = {
    "swin_tiny_patch4_window7_224": (
        SwinTransformer,
        dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24)),
    ),
    "swin_small_patch4_window7_224": (
        SwinTransformer,
        dict(patch_size=4, window_size=7, embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24)),
    ),
    "swin_base_patch4_window7_224": (
        SwinTransformer,
        dict(patch_size=4, window_size=7, embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32)),
    ),
    # The course's CIFAR-10 Swin: 2×2 patches (a 16×16 map), 4×4 windows, three stages 16 → 8 → 4.
    "swin_cifar_patch2_window4_32": (
        SwinTransformer,
        dict(
            img_size=32,
            patch_size=2,
            num_classes=10,
            window_size=4,
            embed_dim=48,
            depths=(2, 2, 2),
            num_heads=(3, 6, 12),
            mlp_ratio=2.0,
            drop_path_rate=0.0,
        ),
    ),
}
