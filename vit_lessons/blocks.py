"""The Transformer encoder block of ViT (Dosovitskiy et al. 2021, Eq. 2–3): pre-norm.

    z' = z + MSA(LN(z))
    z  = z' + MLP(LN(z'))

LayerNorm comes *before* each sub-layer (pre-norm); the original Transformer put it after the
residual sum (post-norm), which trains worse without warm-up in deep stacks.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import MultiHeadSelfAttention

__all__ = ["Mlp", "DropPath", "EncoderBlock", "LAYER_NORM_EPS"]

LAYER_NORM_EPS = 1e-6  # as in the ViT reference code and timm (Hugging Face's ViT uses 1e-12)


class Mlp(nn.Module):
    """Two linear layers with a GELU between: (B, N, D) → (B, N, hidden) → (B, N, D)."""

    def __init__(self, in_features: int, hidden_features: int | None = None, drop: float = 0.0):
        super().__init__()
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop2 = nn.Dropout(drop)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        hidden = self.drop1(self.act(self.fc1(tokens)))  # (B, N, hidden)
        return self.drop2(self.fc2(hidden))  # (B, N, D)


class DropPath(nn.Module):
    """Stochastic depth (Huang et al. 2016): in training, drop a sample's whole residual branch
    with probability ``drop_prob`` and scale the kept ones by 1/(1 - drop_prob). Identity in eval."""

    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_prob must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, branch: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return branch
        keep_prob = 1.0 - self.drop_prob
        shape = (branch.shape[0],) + (1,) * (branch.ndim - 1)  # one coin per sample
        keep = branch.new_empty(shape).bernoulli_(keep_prob)
        return branch * keep / keep_prob

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class EncoderBlock(nn.Module):
    """Pre-norm encoder block with timm's names: ``norm1``, ``attn``, ``norm2``, ``mlp``.

    (B, N, D) → (B, N, D).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = MultiHeadSelfAttention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens + self.drop_path1(self.attn(self.norm1(tokens)))  # (B, N, D)
        tokens = tokens + self.drop_path2(self.mlp(self.norm2(tokens)))  # (B, N, D)
        return tokens
