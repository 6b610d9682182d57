"""Token merging (ToMe): a ViT that merges similar tokens as it goes, faster without retraining.

Taught in lesson 13 (``notebooks/src/13_efficient_vit.py``); the measurements around it (attention
cost, ``torch.compile``, throughput) live in :mod:`vit_lessons.efficient`, which builds on this module.

ToMe (Bolya et al., ICLR 2023, "Token Merging: Your ViT But Faster"): in each block, after attention,
merge the r most similar token pairs by bipartite soft matching, so the MLP and every later block see
fewer tokens. It needs no retraining. Merged tokens are size-weighted averages, and later attention is
*proportional* (Eq. 1 of the paper):

    A = softmax(q kᵀ / sqrt(d) + log s)

with s the number of patches each key token stands for. :func:`apply_token_merging` patches a
:class:`~vit_lessons.vit.VisionTransformer` (blocks of :class:`~vit_lessons.blocks.EncoderBlock`
with :class:`~vit_lessons.attention.MultiHeadSelfAttention`) in place and returns a handle whose
``remove()`` restores it exactly. :func:`patch_labels` and :func:`merged_image` show which patches
ended up in which token.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "MergePlan",
    "bipartite_soft_matching",
    "merge_weighted",
    "token_schedule",
    "apply_token_merging",
    "TokenMergingHandle",
    "patch_labels",
    "merged_image",
]


# -- matching and merging ------------------------------------------------------------------------
class MergePlan(NamedTuple):
    """Which tokens bipartite soft matching merges. Set A = even positions, set B = odd positions.

    ``kept_a`` (B, n_A - r): A tokens left alone, in their original order; ``merged_a`` (B, r): the
    A tokens merged away; ``into_b`` (B, r): the B token each of them is merged into.
    """

    kept_a: torch.Tensor
    merged_a: torch.Tensor
    into_b: torch.Tensor


def bipartite_soft_matching(metric: torch.Tensor, r: int) -> MergePlan:
    """ToMe's bipartite soft matching (Bolya et al. 2023, Sec. 3): (B, n, c) similarity features → plan.

    1. split the tokens alternately into A (even positions) and B (odd positions);
    2. connect each A token to its most similar B token (cosine similarity);
    3. keep the r most similar edges: those A tokens are merged into their B partner.

    ``r`` is clamped to the size of A, ceil(n/2). Prefix tokens (class token) must be left out of
    ``metric`` by the caller: they are never merged.
    """
    if metric.ndim != 3:
        raise ValueError(f"metric must have shape (B, n, c), got {tuple(metric.shape)}")
    metric = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # cosine similarity
    set_a, set_b = metric[:, ::2], metric[:, 1::2]  # (B, n_A, c), (B, n_B, c)
    r = max(0, min(int(r), set_a.shape[1] if set_b.shape[1] else 0))
    scores = set_a @ set_b.transpose(-1, -2)  # (B, n_A, n_B)
    best_score, best_b = scores.max(dim=-1)  # (B, n_A) each: every A token's best partner
    order = best_score.argsort(dim=-1, descending=True, stable=True)  # most similar edges first
    merged_a = order[:, :r]  # (B, r)
    kept_a = order[:, r:].sort(dim=-1).values  # (B, n_A - r), original order
    into_b = best_b.gather(1, merged_a)  # (B, r)
    return MergePlan(kept_a, merged_a, into_b)


def _merge_sum(plan: MergePlan, values: torch.Tensor) -> torch.Tensor:
    """Apply a plan, summing merged values: (B, n, c) → (B, n - r, c) as [kept A | B]."""
    set_a, set_b = values[:, ::2], values[:, 1::2]  # (B, n_A, c), (B, n_B, c)
    channels = values.shape[-1]
    kept = set_a.gather(1, plan.kept_a[..., None].expand(-1, -1, channels))  # (B, n_A - r, c)
    moved = set_a.gather(1, plan.merged_a[..., None].expand(-1, -1, channels))  # (B, r, c)
    set_b = set_b.scatter_add(1, plan.into_b[..., None].expand(-1, -1, channels), moved)  # (B, n_B, c)
    return torch.cat([kept, set_b], dim=1)  # (B, n - r, c)


def merge_weighted(plan: MergePlan, tokens: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge tokens as size-weighted averages; sizes add up.

    tokens (B, n, D), size (B, n, 1) → tokens (B, n - r, D), size (B, n - r, 1).
    """
    summed = _merge_sum(plan, tokens * size)  # Σ s_i x_i
    new_size = _merge_sum(plan, size)  # Σ s_i
    return summed / new_size, new_size  # (B, n - r, D), (B, n - r, 1)


def _r_per_block(r, depth: int) -> list[int]:
    """``r`` as one non-negative int per block, checked here so a typo fails before any forward pass."""
    if isinstance(r, bool) or not isinstance(r, (int, list, tuple)):
        raise TypeError(f"r must be an int or a list of ints (one per block), got {type(r).__name__}")
    values = [r] * depth if isinstance(r, int) else list(r)
    if len(values) != depth:
        raise ValueError(f"r has {len(values)} entries but the model has {depth} blocks; give one per block")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"r values must be ints, got {value!r}")
        if value < 0:
            raise ValueError(f"r must be non-negative (tokens merged per block), got {value}")
    return values


def token_schedule(num_tokens: int, r, depth: int, num_prefix_tokens: int = 1) -> list[int]:
    """Token counts entering each block and leaving the last: a list of depth + 1 numbers.

    Block l merges min(r_l, (N_l - prefix) // 2) tokens: bipartite matching can merge at most the
    size of set A, and we keep set B whole, so r larger than possible is clamped, never an error.
    """
    counts = [num_tokens]
    for r_block in _r_per_block(r, depth):
        current = counts[-1]
        counts.append(current - min(r_block, (current - num_prefix_tokens) // 2))
    return counts


# -- patching a ViT ------------------------------------------------------------------------------
@dataclass
class _MergeState:
    """What the patched blocks share during one forward pass (block 0 resets it)."""

    r: list[int]
    num_prefix_tokens: int
    trace_source: bool
    size: torch.Tensor | None = None  # (B, N, 1) patches per token
    source: torch.Tensor | None = None  # (B, N, N_in) which input tokens each token holds
    token_counts: list[int] = field(default_factory=list)
    device: torch.device = torch.device("cpu")  # of the last forward pass's tokens

    def reset(self) -> None:
        self.size, self.source, self.token_counts = None, None, []


def _attention_with_size(attn: nn.Module, tokens: torch.Tensor, size: torch.Tensor | None):
    """Multi-head attention with proportional attention: logits + log(size of each key).

    tokens (B, N, D), size (B, N, 1) or None → output (B, N, D) and the keys (B, h, N, d)."""
    B, N, D = tokens.shape
    q, k, v = attn.split_heads(tokens)  # (B, h, N, d) each
    bias = None if size is None else size.log().to(q.dtype).reshape(B, 1, 1, N)  # (B, 1, 1, N)
    dropout = attn.attn_drop.p if attn.training else 0.0
    if attn.fused_attn:
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=dropout)
    else:
        scores = q @ k.transpose(-2, -1) * attn.scale  # (B, h, N, N)
        if bias is not None:
            scores = scores + bias
        out = attn.attn_drop(scores.softmax(dim=-1)) @ v  # (B, h, N, d)
    out = out.transpose(1, 2).reshape(B, N, D)  # (B, N, D)
    return attn.proj_drop(attn.proj(out)), k


def _merging_block_forward(block: nn.Module, state: _MergeState, index: int, tokens: torch.Tensor) -> torch.Tensor:
    """EncoderBlock.forward with ToMe between attention and MLP. (B, N, D) → (B, N - r_l, D)."""
    if index == 0:
        state.reset()
    if state.trace_source and state.source is None:
        B, N, _ = tokens.shape
        state.source = torch.eye(N, device=tokens.device).expand(B, N, N)  # (B, N, N_in)
    state.token_counts.append(tokens.shape[1])
    state.device = tokens.device
    attended, keys = _attention_with_size(block.attn, block.norm1(tokens), state.size)
    tokens = tokens + block.drop_path1(attended)  # (B, N, D)

    prefix = state.num_prefix_tokens
    r = min(state.r[index], (tokens.shape[1] - prefix) // 2)
    if r > 0:
        metric = keys.mean(dim=1)  # (B, N, d): keys averaged over heads, the paper's similarity
        plan = bipartite_soft_matching(metric[:, prefix:], r)
        if state.size is None:
            state.size = tokens.new_ones(tokens.shape[0], tokens.shape[1], 1, dtype=torch.float32)
        merged, size = merge_weighted(plan, tokens[:, prefix:].float(), state.size[:, prefix:])
        tokens = torch.cat([tokens[:, :prefix], merged.to(tokens.dtype)], dim=1)  # (B, N - r, D)
        state.size = torch.cat([state.size[:, :prefix], size], dim=1)  # (B, N - r, 1)
        if state.source is not None:
            source = _merge_sum(plan, state.source[:, prefix:])  # disjoint sets: the sum is the union
            state.source = torch.cat([state.source[:, :prefix], source], dim=1)  # (B, N - r, N_in)
    tokens = tokens + block.drop_path2(block.mlp(block.norm2(tokens)))  # (B, N - r, D)
    if index == len(state.r) - 1:
        state.token_counts.append(tokens.shape[1])
    return tokens


_ACTIVE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> its TokenMergingHandle


class TokenMergingHandle:
    """Returned by :func:`apply_token_merging`. After a forward pass:

    - ``token_counts``: tokens entering each block, then leaving the last (depth + 1 numbers);
    - ``size``: (B, N_out, 1), how many input tokens each output token stands for (sums to N_in);
    - ``source``: (B, N_out, N_in) 0/1 membership, when created with ``trace_source=True``.

    ``remove()`` puts the model back exactly as it was (also on leaving a ``with`` block); the
    figures of the last forward pass stay readable.
    """

    def __init__(self, model: nn.Module, blocks: list[nn.Module], state: _MergeState):
        self._model = weakref.ref(model)
        self._blocks = blocks
        self._state = state
        self.r = list(state.r)
        self.removed = False

    @property
    def token_counts(self) -> list[int]:
        return list(self._state.token_counts)

    @property
    def size(self) -> torch.Tensor | None:
        state = self._state
        if state.size is None and state.token_counts:  # nothing merged: every token is one patch
            return torch.ones(1, state.token_counts[-1], 1, device=state.device)  # (1, N, 1)
        return state.size

    @property
    def source(self) -> torch.Tensor | None:
        return self._state.source

    def remove(self) -> None:
        """Undo the patch: the blocks get their own ``forward`` back. Safe to call twice."""
        if self.removed:
            return
        for block in self._blocks:
            if "forward" in block.__dict__:
                del block.forward
        model = self._model()
        if model is not None:
            _ACTIVE.pop(model, None)
        self.removed = True

    def __enter__(self) -> TokenMergingHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"TokenMergingHandle(r={self.r}, removed={self.removed})"


_BLOCK_PARTS = ("norm1", "attn", "drop_path1", "norm2", "mlp", "drop_path2")
_ATTN_PARTS = ("qkv", "proj", "num_heads", "head_dim", "fused_attn", "split_heads", "scale")


def _encoder_blocks(model: nn.Module) -> nn.Sequential | nn.ModuleList:
    """``model.blocks``, after checking that every block has the EncoderBlock parts ToMe re-wires."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module (a VisionTransformer), got {type(model).__name__}")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.Sequential, nn.ModuleList)) or len(blocks) == 0:
        raise TypeError(
            f"{type(model).__name__} has no `blocks` of encoder blocks; token merging needs a plain ViT "
            "(vit_lessons.vit.VisionTransformer), not a CNN or a hierarchical model such as Swin"
        )
    for index, block in enumerate(blocks):
        missing = [name for name in _BLOCK_PARTS if not hasattr(block, name)]
        missing += [f"attn.{name}" for name in _ATTN_PARTS if not hasattr(getattr(block, "attn", None), name)]
        if missing:
            raise TypeError(
                f"blocks[{index}] ({type(block).__name__}) lacks {missing}; apply_token_merging works on "
                "vit_lessons.blocks.EncoderBlock (pre-norm, MultiHeadSelfAttention)"
            )
    return blocks


def apply_token_merging(model: nn.Module, r, trace_source: bool = False) -> TokenMergingHandle:
    """Patch a ViT in place so each block merges ``r`` tokens (ToMe), without retraining.

    Args:
        model: a :class:`~vit_lessons.vit.VisionTransformer` (or any model with ``blocks`` of
            :class:`~vit_lessons.blocks.EncoderBlock` and ``num_prefix_tokens``).
        r: tokens merged per block: an int (the same in every block) or one int per block. Where
            r is more than a block can merge (half its non-prefix tokens), it is clamped to that;
            see :func:`token_schedule`. The class token (all ``num_prefix_tokens``) is never merged.
        trace_source: also track which input patches each token holds (``handle.source``), for
            visualisation; costs an (N, N_in) matrix per image.

    Returns a :class:`TokenMergingHandle`; ``handle.remove()`` restores the model bit for bit
    (no parameter or buffer is touched; only the blocks' ``forward`` is overridden).
    """
    blocks = _encoder_blocks(model)
    if model in _ACTIVE:
        raise ValueError("this model already has token merging applied; call handle.remove() before applying again")
    if isinstance(trace_source, bool) is False:
        raise TypeError(f"trace_source must be True or False, got {trace_source!r}")
    state = _MergeState(_r_per_block(r, len(blocks)), int(getattr(model, "num_prefix_tokens", 1)), trace_source)
    for index, block in enumerate(blocks):
        if "forward" in block.__dict__:
            raise ValueError(f"blocks[{index}] already has its forward replaced (by another tool); remove that first")
    patched = list(blocks)
    for index, block in enumerate(patched):
        block.forward = _BoundMergingForward(block, state, index)
    handle = TokenMergingHandle(model, patched, state)
    _ACTIVE[model] = handle
    return handle


class _BoundMergingForward:
    """``block.forward`` while token merging is on (holds the block weakly: no reference cycle)."""

    def __init__(self, block: nn.Module, state: _MergeState, index: int):
        self._block = weakref.ref(block)
        self._state = state
        self._index = index

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        return _merging_block_forward(self._block(), self._state, self._index, tokens)


# -- seeing what merged --------------------------------------------------------------------------
def patch_labels(source: torch.Tensor, num_prefix_tokens: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Which output token each patch ended in: (B, N_out, N_in) source → (B, gh, gw) integer labels.

    Prefix tokens are dropped from both sides; labels number the output patch tokens from 0.
    """
    if source is None:
        raise ValueError("no source recorded: apply_token_merging(model, r, trace_source=True), then run the model")
    patches = source[:, num_prefix_tokens:, num_prefix_tokens:]  # (B, N_out - p, N_in - p)
    gh, gw = grid_size
    if patches.shape[-1] != gh * gw:
        raise ValueError(f"source covers {patches.shape[-1]} patches, but grid {grid_size} holds {gh * gw}")
    return patches.argmax(dim=1).reshape(-1, gh, gw)  # (B, gh, gw)


def merged_image(image: torch.Tensor, labels: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Paint each merged region with its mean colour: image (C, H, W), labels (gh, gw) → (C, H, W)."""
    if image.ndim != 3 or labels.ndim != 2:
        raise ValueError("pass one image (C, H, W) and its labels (gh, gw)")
    pixel_labels = labels.repeat_interleave(patch_size, 0).repeat_interleave(patch_size, 1)  # (H, W)
    if pixel_labels.shape != image.shape[1:]:
        raise ValueError(f"labels cover {tuple(pixel_labels.shape)} pixels, the image is {tuple(image.shape[1:])}")
    flat_labels = pixel_labels.flatten().to(image.device)  # (H·W,)
    count = labels.numel()  # labels number regions from 0, so there are at most this many (no GPU sync)
    pixels = image.flatten(1).float()  # (C, H·W)
    sums = pixels.new_zeros(image.shape[0], count).index_add_(1, flat_labels, pixels)  # (C, regions)
    counts = pixels.new_zeros(count).index_add_(0, flat_labels, torch.ones_like(flat_labels, dtype=torch.float))
    means = sums / counts.clamp_min(1)  # (C, regions)
    return means[:, flat_labels].reshape(image.shape)
