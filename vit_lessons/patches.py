"""Images as sequences of patches (Dosovitskiy et al. 2021, Sec. 3.1, Eq. 1).

An image x of shape (B, C, H, W) is cut into N = (H/P)·(W/P) non-overlapping P×P patches, taken
in row-major order over the patch grid. Each patch is flattened in the order (channel, row in
patch, column in patch), the same order as ``Conv2d.weight.flatten(1)``, so that a linear layer on
the flattened patches and a stride-P convolution are the same map.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["patchify", "unpatchify", "PatchEmbedding", "ConvStemEmbedding", "check_images"]


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")


def check_images(
    images,
    in_chans: int | None = None,
    img_size: tuple[int, int] | None = None,
    patch_size: int | None = None,
) -> None:
    """Raise a clear TypeError/ValueError if ``images`` is not a float (B, C, H, W) batch.

    Checks, in order: a tensor; floating point (not uint8); 4 dimensions; channels first with
    ``in_chans`` channels; ``img_size`` when given; divisibility by ``patch_size`` when given.
    """
    if not isinstance(images, torch.Tensor):
        raise TypeError(
            f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}; "
            "convert with torch.as_tensor(...) or torchvision.transforms.ToTensor()"
        )
    if not images.is_floating_point():
        raise TypeError(
            f"images have dtype {images.dtype}; the model needs floating-point input. Convert "
            "uint8 images with images.float() / 255 and normalise them as in training"
        )
    if images.ndim == 3:
        raise ValueError(
            f"images have shape {tuple(images.shape)}: the batch dimension is missing; "
            "pass images.unsqueeze(0) to make a batch of one (1, C, H, W)"
        )
    if images.ndim != 4:
        raise ValueError(f"images must have 4 dimensions (B, C, H, W), got shape {tuple(images.shape)}")
    channels = images.shape[1]
    if in_chans is not None and channels != in_chans:
        if images.shape[-1] == in_chans:
            raise ValueError(
                f"images have shape {tuple(images.shape)}, which looks channels-last (B, H, W, C); "
                "the model expects channels-first (B, C, H, W): use images.permute(0, 3, 1, 2)"
            )
        raise ValueError(
            f"images have {channels} channels but the model expects in_chans={in_chans}; "
            f"convert the images or create the model with in_chans={channels}"
        )
    height, width = images.shape[-2:]
    if img_size is not None and (height, width) != tuple(img_size):
        raise ValueError(
            f"images are {height}x{width} but the model was built for {img_size[0]}x{img_size[1]}; "
            f"resize the images (e.g. torchvision.transforms.Resize({img_size[0]})) or create the "
            f"model with img_size={height if height == width else (height, width)}"
        )
    if patch_size is not None and (height % patch_size or width % patch_size):
        raise ValueError(
            f"image size {height}x{width} is not divisible by patch size {patch_size}; "
            f"crop or resize to a multiple of {patch_size} "
            f"(e.g. {height // patch_size * patch_size}x{width // patch_size * patch_size})"
        )


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut images into flattened patches.

    Args:
        images: (B, C, H, W), H and W multiples of ``patch_size``.
        patch_size: P.

    Returns:
        (B, N, C·P·P) with N = (H/P)·(W/P), patches row-major over the grid, each vector ordered
        (channel, row in patch, column in patch).
    """
    _check_positive_int("patch_size", patch_size)
    check_images(images, patch_size=patch_size)
    B, C, H, W = images.shape
    P = patch_size
    grid_h, grid_w = H // P, W // P
    patches = images.reshape(B, C, grid_h, P, grid_w, P)  # (B, C, gh, P, gw, P)
    patches = patches.permute(0, 2, 4, 1, 3, 5)  # (B, gh, gw, C, P, P)
    return patches.reshape(B, grid_h * grid_w, C * P * P)  # (B, N, C·P·P)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int] | int | None = None) -> torch.Tensor:
    """Inverse of :func:`patchify`: (B, N, C·P·P) back to (B, C, H, W).

    ``grid_size`` (rows, columns) of the patch grid defaults to a square grid.
    """
    _check_positive_int("patch_size", patch_size)
    if not isinstance(patches, torch.Tensor) or patches.ndim != 3:
        raise ValueError("patches must be a tensor of shape (B, N, C·P·P)")
    B, N, dim = patches.shape
    P = patch_size
    if dim % (P * P):
        raise ValueError(f"patch vector length {dim} is not C·P·P for patch_size={P}")
    C = dim // (P * P)
    if grid_size is None:
        side = round(N**0.5)
        if side * side != N:
            raise ValueError(f"{N} patches do not form a square grid; pass grid_size=(rows, cols)")
        grid_size = (side, side)
    elif isinstance(grid_size, int):
        grid_size = (grid_size, grid_size)
    grid_h, grid_w = grid_size
    if grid_h * grid_w != N:
        raise ValueError(f"grid_size {grid_size} holds {grid_h * grid_w} patches, not {N}")
    images = patches.reshape(B, grid_h, grid_w, C, P, P)  # (B, gh, gw, C, P, P)
    images = images.permute(0, 3, 1, 4, 2, 5)  # (B, C, gh, P, gw, P)
    return images.reshape(B, C, grid_h * P, grid_w * P)


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"expected an int or a pair (height, width), got {value!r}")
        return int(value[0]), int(value[1])
    return value, value


class PatchEmbedding(nn.Module):
    """Patchify and project each patch to ``embed_dim`` in one stride-P convolution.

    (B, C, H, W) → (B, N, D). The convolution is named ``proj`` as in timm, so pretrained weights load.
    """

    def __init__(self, img_size=224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768):
        super().__init__()
        height, width = _pair(img_size)
        for name, value in (
            ("img_size", height),
            ("img_size", width),
            ("patch_size", patch_size),
            ("in_chans", in_chans),
            ("embed_dim", embed_dim),
        ):
            _check_positive_int(name, value)
        if height % patch_size or width % patch_size:
            raise ValueError(
                f"image size {height}x{width} is not divisible by patch size {patch_size}; use "
                f"img_size={height // patch_size * patch_size or patch_size} or a patch size that "
                f"divides {height}"
            )
        self.img_size = (height, width)
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.grid_size = (height // patch_size, width // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.in_chans, self.img_size, self.patch_size)
        tokens = self.proj(images)  # (B, D, H/P, W/P)
        return tokens.flatten(2).transpose(1, 2)  # (B, N, D)


class ConvStemEmbedding(nn.Module):
    """A small convolutional stem in place of the patch projection (a "hybrid" ViT; Xiao et al.
    2021, "Early Convolutions Help Transformers See Better").

    3×3 convolutions with BatchNorm and GELU, one per entry of ``channels``, then a 1×1
    convolution ``proj`` to ``embed_dim``. Each convolution has stride 2 unless ``strides`` says
    otherwise (1 or 2 each): a token sees a (product of the strides)-pixel patch, as a patch
    embedding of that ``patch_size`` would, but through overlapping convolutions. A stride-1
    convolution adds depth at a resolution without shrinking it. (B, C, H, W) → (B, N, D). Same
    interface as :class:`PatchEmbedding`.
    """

    def __init__(self, img_size=32, in_chans: int = 3, embed_dim: int = 128, channels=(32, 64, 128), strides=None):
        super().__init__()
        height, width = _pair(img_size)
        for name, value in (
            ("img_size", height),
            ("img_size", width),
            ("in_chans", in_chans),
            ("embed_dim", embed_dim),
        ):
            _check_positive_int(name, value)
        strides = (2,) * len(channels) if strides is None else tuple(strides)
        if len(strides) != len(channels) or any(s not in (1, 2) for s in strides):
            raise ValueError(
                f"stem strides {strides} must give a stride of 1 or 2 for each of the {len(channels)} stem "
                f"convolutions (channels {tuple(channels)}), e.g. {(2,) * len(channels)}"
            )
        stride = math.prod(strides)
        if height % stride or width % stride:
            raise ValueError(
                f"image size {height}x{width} is not divisible by the stem's total stride {stride} "
                f"({strides.count(2)} stride-2 convolutions); use fewer stem channels or img_size="
                f"{max(stride, height // stride * stride)}"
            )
        layers, previous = [], in_chans
        for width_out, step in zip(channels, strides):
            layers += [
                nn.Conv2d(previous, width_out, 3, stride=step, padding=1, bias=False),
                nn.BatchNorm2d(width_out),
                nn.GELU(),
            ]
            previous = width_out
        self.stem = nn.Sequential(*layers)
        self.proj = nn.Conv2d(previous, embed_dim, kernel_size=1)
        self.img_size = (height, width)
        self.patch_size = stride
        self.in_chans = in_chans
        self.grid_size = (height // stride, width // stride)
        self.num_patches = self.grid_size[0] * self.grid_size[1]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        check_images(images, self.in_chans, self.img_size)
        features = self.stem(images)  # (B, C', H/s, W/s)
        return self.proj(features).flatten(2).transpose(1, 2)  # (B, N, D)
