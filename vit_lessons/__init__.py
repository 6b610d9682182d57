"""vit-lessons: the finished code of the Vision Transformer course.

Each module is one lesson's component, in teaching order: ``patches``, ``position``, ``attention``,
``blocks``, ``vit``; then training, interpretation and the variants built on top.

    >>> from vit_lessons import create_model, list_models
    >>> model = create_model("vit_cifar_patch4_32")
"""

from __future__ import annotations

import difflib

import torch
from torch import nn

from .attention import MultiHeadSelfAttention, scaled_dot_product_attention
from .blocks import DropPath, EncoderBlock, Mlp
from .cnn import CNN_MODELS
from .deit import MODEL_REGISTRY as DEIT_MODELS
from .patches import PatchEmbedding, patchify, unpatchify
from .position import (
    learned_position_embedding,
    resample_position_embedding,
    sinusoidal_position_encoding,
    sinusoidal_position_encoding_2d,
)
from .settings import is_quick, pick_device, seed_everything
from .swin import MODEL_REGISTRY as SWIN_MODELS
from .vit import MODEL_CONFIGS, VisionTransformer

__version__ = "0.1.0"

__all__ = [
    "create_model",
    "list_models",
    "count_parameters",
    "VisionTransformer",
    "PatchEmbedding",
    "MultiHeadSelfAttention",
    "EncoderBlock",
    "Mlp",
    "DropPath",
    "patchify",
    "unpatchify",
    "scaled_dot_product_attention",
    "sinusoidal_position_encoding",
    "sinusoidal_position_encoding_2d",
    "learned_position_embedding",
    "resample_position_embedding",
    "is_quick",
    "pick_device",
    "seed_everything",
]

# name -> (model class, default keyword arguments): the plain ViTs, DeiT (lesson 10), Swin (lesson 11) and
# the compact ResNet that is DeiT's teacher.
_REGISTRY: dict[str, tuple[type[nn.Module], dict]] = {
    **{name: (VisionTransformer, config) for name, config in MODEL_CONFIGS.items()},
    **DEIT_MODELS,
    **SWIN_MODELS,
    **CNN_MODELS,
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_model`, sorted."""
    return sorted(_REGISTRY)


def create_model(name: str, device: str | torch.device | None = None, **overrides) -> nn.Module:
    """Build a named model; ``overrides`` replace its default arguments (e.g. ``num_classes=10``).

    ``device="meta"`` builds it without allocating memory (to count ViT-H's parameters, say).
    """
    if not isinstance(name, str):
        raise TypeError(f"model name must be a string, got {type(name).__name__}")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}.{hint} Available models: {', '.join(list_models())}")
    cls, config = _REGISTRY[name]
    kwargs = {**config, **overrides}
    if device is None:
        return cls(**kwargs)
    with torch.device(device):
        return cls(**kwargs)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (works on ``meta`` models, which hold no memory)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
