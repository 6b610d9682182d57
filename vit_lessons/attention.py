"""Scaled dot-product attention and multi-head self-attention (Vaswani et al. 2017, Eq. 1).

    Attention(Q, K, V) = softmax(Q Kᵀ / sqrt(d)) V

with d the size of one query/key vector: in multi-head attention that is the *head* dimension
D/h, not the embedding dimension D.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["scaled_dot_product_attention", "MultiHeadSelfAttention"]


def _check_qkv(q, k, v) -> None:
    for name, tensor in (("q", q), ("k", k), ("v", v)):
        if not isinstance(tensor, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
        if tensor.ndim < 2:
            raise ValueError(f"{name} must have at least 2 dimensions (..., N, d), got shape {tuple(tensor.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(
            f"queries have {q.shape[-1]} features but keys have {k.shape[-1]}; q and k must share "
            "their last dimension d for the dot product Q Kᵀ"
        )
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"keys hold {k.shape[-2]} tokens but values hold {v.shape[-2]}; each key needs one value")


def scaled_dot_product_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / sqrt(d)) v, written out so the weights can be returned.

    Args:
        q: (..., Nq, d); k: (..., Nk, d); v: (..., Nk, dv).
        mask: optional boolean, True where a query may attend to a key, broadcastable to
            (..., Nq, Nk); the same meaning as ``torch.nn.functional.scaled_dot_product_attention``.
            A query row that may attend to nothing gets all-zero weights and a zero output, as
            torch's fused SDPA gives on torch 2.x (0/0 would otherwise be NaN).

    Returns:
        ``(out, weights)``: (..., Nq, dv) and (..., Nq, Nk), each weights row summing to 1.
    """
    _check_qkv(q, k, v)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Nq, Nk)
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise TypeError("mask must be a boolean tensor (True = may attend); convert a 0/1 mask with mask.bool()")
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = scores.softmax(dim=-1)  # (..., Nq, Nk)
    if mask is not None:  # rows with no allowed key: zeros, not NaN
        weights = weights.masked_fill(~mask.any(dim=-1, keepdim=True), 0.0)
    return weights @ v, weights  # (..., Nq, dv), (..., Nq, Nk)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention with a fused ``qkv`` projection, laid out as timm's ``Attention``.

    ``qkv`` maps D to 3D = [q | k | v], each part holding the h heads contiguously (head j is
    features j·d to (j+1)·d). (B, N, D) → (B, N, D).

    ``fused_attn`` selects ``F.scaled_dot_product_attention`` (fast, no weights kept); set it to
    False (or use :func:`vit_lessons.interpret.attention_maps`) to compute the weights explicitly.
    In the explicit path the weights pass through ``attn_drop``, where a forward hook can read them.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        for name, value in (("dim", dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")
        if dim % num_heads:
            divisors = [h for h in range(1, dim + 1) if dim % h == 0 and h <= 32]
            raise ValueError(
                f"embed dim {dim} is not divisible by num_heads={num_heads}; pick num_heads from "
                f"{divisors} or an embed dim that is a multiple of {num_heads}"
            )
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.fused_attn = True
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def split_heads(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, N, D) → q, k, v, each (B, h, N, d)."""
        B, N, D = tokens.shape
        qkv = self.qkv(tokens).reshape(B, N, 3, self.num_heads, self.head_dim)  # (B, N, 3, h, d)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 × (B, h, N, d)
        return q, k, v

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if tokens.ndim != 3 or tokens.shape[-1] != self.qkv.in_features:
            raise ValueError(f"expected tokens of shape (B, N, {self.qkv.in_features}), got {tuple(tokens.shape)}")
        B, N, D = tokens.shape
        q, k, v = self.split_heads(tokens)  # (B, h, N, d) each
        if self.fused_attn:
            dropout = self.attn_drop.p if self.training else 0.0
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        else:
            out, weights = scaled_dot_product_attention(q, k, v, mask)  # weights (B, h, N, N)
            weights = self.attn_drop(weights)
            out = weights @ v  # (B, h, N, d)
        out = out.transpose(1, 2).reshape(B, N, D)  # heads side by side again
        return self.proj_drop(self.proj(out))
