"""What a Vision Transformer attends to: attention maps, attention rollout, gradient rollout.

Taught in lesson 09 (``notebooks/09_attention_maps.ipynb``).

- Raw maps: the weights softmax(Q Kᵀ / sqrt(d)) of every block (Vaswani et al. 2017, Eq. 1), one
  (B, h, N, N) tensor per layer. A model on the fast path (``F.scaled_dot_product_attention``)
  never forms them, so :func:`capture_attention` switches each attention module to the explicit
  path for one call and reads the weights where they enter ``attn_drop``.
- Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers"): the
  residual connection is modelled by Â = 0.5·A + 0.5·I (rows renormalised), and the layers are
  chained: R = Â_L ⋯ Â_2 Â_1.
- Gradient rollout (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability", Eq. 5-6):
  Ā = mean_h (∇A ⊙ A)⁺ for the chosen class, then R ← R + Ā R from the first layer to the last.

Token order is that of the model: ``model.num_prefix_tokens`` prefix tokens (class token, DeiT's
distillation token) first, then the patches row by row. Row 0 of a map is what the class token reads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .attention import MultiHeadSelfAttention

__all__ = [
    "attention_modules",
    "capture_attention",
    "attention_maps",
    "attention_rollout",
    "attention_gradients",
    "gradient_rollout",
    "gradient_rollout_from",
    "token_heatmap",
    "attention_distance",
    "HEAD_FUSIONS",
]

HEAD_FUSIONS = ("mean", "max", "min")


def attention_modules(model: nn.Module) -> list[MultiHeadSelfAttention]:
    """Every :class:`MultiHeadSelfAttention` in ``model``, in registration (= layer) order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    modules = [m for m in model.modules() if isinstance(m, MultiHeadSelfAttention)]
    if not modules:
        raise ValueError(
            f"{type(model).__name__} has no vit_lessons MultiHeadSelfAttention module; attention maps need a "
            "model built from vit_lessons blocks (create_model(...)); for a timm model import its weights first"
        )
    return modules


@contextlib.contextmanager
def capture_attention(model: nn.Module, keep_graph: bool = False) -> Iterator[list[list[torch.Tensor]]]:
    """Record the attention weights of every block during the forward passes inside the block.

    Yields a list with one list per attention module (layer order); each forward pass appends that
    layer's weights (B, h, N, N), taken *before* attention dropout. Inside the block the modules
    use the explicit path (``fused_attn=False``); on exit their flags are restored and the hooks
    removed, even after an error. ``keep_graph=True`` keeps the weights in the autograd graph (for
    gradients); otherwise they are detached, so no graph is held.

        >>> with capture_attention(model) as captured:
        ...     logits = model(images)
        >>> layer0 = captured[0][0]  # (B, h, N, N)
    """
    modules = attention_modules(model)
    captured: list[list[torch.Tensor]] = [[] for _ in modules]
    flags = [m.fused_attn for m in modules]
    handles = []

    def make_hook(index: int):
        def hook(module, inputs, output):
            weights = inputs[0]  # (B, h, N, N), the pre-dropout input of attn_drop
            captured[index].append(weights if keep_graph else weights.detach())

        return hook

    try:
        for index, module in enumerate(modules):
            module.fused_attn = False
            handles.append(module.attn_drop.register_forward_hook(make_hook(index)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()
        for module, flag in zip(modules, flags):
            module.fused_attn = flag


def _check_images(images) -> None:
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.ndim != 4:
        hint = " (add a batch dimension: images.unsqueeze(0))" if images.ndim == 3 else ""
        raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}{hint}")
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor, got {images.dtype}; convert with images.float() / 255")


def attention_maps(model: nn.Module, images: torch.Tensor, return_logits: bool = False):
    """The true attention weights softmax(Q Kᵀ / sqrt(d)) of every block for ``images``.

    Args:
        model: a model built from vit_lessons blocks (ViT, DeiT, ...), usually in ``eval()`` mode.
        images: (B, C, H, W).
        return_logits: also return the model's output of the same forward pass.

    Returns:
        A list with one (B, h, N, N) tensor per layer, first layer first, detached (the forward
        runs under ``torch.no_grad()``); with ``return_logits``, ``(maps, logits)``.
        The model is left as it was: its fast path stays on for every later call.
    """
    _check_images(images)
    with torch.no_grad(), capture_attention(model) as captured:
        logits = model(images)
    counts = {len(per_layer) for per_layer in captured}
    if counts != {1}:
        raise RuntimeError(f"expected one attention call per layer in one forward pass, got {sorted(counts)}")
    maps = [per_layer[0] for per_layer in captured]
    return (maps, logits) if return_logits else maps


def _check_maps(maps, name: str = "maps") -> torch.Tensor:
    """Stack a list of (B, h, N, N) maps into (L, B, h, N, N), validating shapes."""
    if isinstance(maps, torch.Tensor):
        maps = list(maps) if maps.ndim == 5 else [maps]
    if not isinstance(maps, Sequence) or not maps:
        raise TypeError(f"{name} must be a non-empty list of (B, heads, N, N) tensors, one per layer")
    for index, layer in enumerate(maps):
        if not isinstance(layer, torch.Tensor):
            raise TypeError(f"{name}[{index}] must be a torch.Tensor, got {type(layer).__name__}")
        if layer.ndim != 4 or layer.shape[-1] != layer.shape[-2]:
            hint = " (add the batch dimension: map.unsqueeze(0))" if layer.ndim == 3 else ""
            raise ValueError(f"{name}[{index}] must have shape (B, heads, N, N), got {tuple(layer.shape)}{hint}")
        if layer.shape != maps[0].shape:
            raise ValueError(
                f"{name}[{index}] has shape {tuple(layer.shape)} but {name}[0] has {tuple(maps[0].shape)}; "
                "all layers must come from the same forward pass"
            )
    return torch.stack(list(maps))  # (L, B, h, N, N)


def _fuse_heads(maps: torch.Tensor, head_fusion: str) -> torch.Tensor:
    """(L, B, h, N, N) → (L, B, N, N)."""
    if head_fusion == "mean":
        return maps.mean(dim=2)
    if head_fusion == "max":
        return maps.amax(dim=2)
    if head_fusion == "min":
        return maps.amin(dim=2)
    raise ValueError(f"head_fusion must be one of {HEAD_FUSIONS}, got {head_fusion!r}")


def _discard_lowest(fused: torch.Tensor, discard_ratio: float) -> torch.Tensor:
    """Zero the smallest ``discard_ratio`` fraction of each (N, N) map's entries, keeping the
    diagonal (a token always keeps its own weight, so no row becomes all zero)."""
    if discard_ratio == 0.0:
        return fused
    L, B, N, _ = fused.shape
    flat = fused.reshape(L, B, N * N)
    count = int(discard_ratio * N * N)
    if count == 0:
        return fused
    lowest = flat.topk(count, dim=-1, largest=False).indices  # (L, B, count)
    keep = torch.ones_like(flat, dtype=torch.bool).scatter(-1, lowest, False).reshape(L, B, N, N)
    keep |= torch.eye(N, dtype=torch.bool, device=fused.device)
    return fused * keep


def attention_rollout(maps, head_fusion: str = "mean", discard_ratio: float = 0.0) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema 2020): how much each input token flows into each output token.

    Per layer l: fuse the heads (mean/max/min) into A_l (B, N, N), optionally zero its lowest
    ``discard_ratio`` fraction of weights (the diagonal is kept), add the residual as
    Â_l = 0.5·A_l + 0.5·I, renormalise the rows to sum to 1; then R = Â_L ⋯ Â_2 Â_1.

    Args:
        maps: list of (B, h, N, N) per layer, first layer first (as :func:`attention_maps` returns).

    Returns:
        (B, N, N), rows summing to 1. Row 0 is the class token's rollout.
    """
    if not isinstance(discard_ratio, (int, float)) or not 0.0 <= discard_ratio < 1.0:
        raise ValueError(f"discard_ratio must be a number in [0, 1), got {discard_ratio!r}")
    stacked = _check_maps(maps).float()  # (L, B, h, N, N)
    fused = _discard_lowest(_fuse_heads(stacked, head_fusion), float(discard_ratio))  # (L, B, N, N)
    N = fused.shape[-1]
    eye = torch.eye(N, device=fused.device)
    rollout = eye.expand_as(fused[0]).clone()  # (B, N, N)
    for layer in fused:
        with_residual = 0.5 * layer + 0.5 * eye  # (B, N, N)
        with_residual = with_residual / with_residual.sum(dim=-1, keepdim=True)
        rollout = with_residual @ rollout  # the new layer multiplies from the left
    return rollout


def gradient_rollout_from(maps, grads) -> torch.Tensor:
    """Chefer et al. (2021, Eq. 5-6) from captured maps and their gradients.

    Per layer: Ā_l = mean over heads of (∂score/∂A_l ⊙ A_l)⁺ (B, N, N); then, starting from
    R = I, R ← R + Ā_l R for l = 1..L. Returns (B, N, N); row 0 is the class token's relevance.
    """
    stacked_maps = _check_maps(maps, "maps").float()  # (L, B, h, N, N)
    stacked_grads = _check_maps(grads, "grads").float()
    if stacked_maps.shape != stacked_grads.shape:
        raise ValueError(
            f"maps {tuple(stacked_maps.shape)} and grads {tuple(stacked_grads.shape)} (stacked as (L, B, h, N, N)) "
            "must have the same shape: one gradient per attention map"
        )
    weighted = (stacked_grads * stacked_maps).clamp(min=0).mean(dim=2)  # (L, B, N, N)
    N = weighted.shape[-1]
    relevance = torch.eye(N, device=weighted.device).expand_as(weighted[0]).clone()  # (B, N, N)
    for layer in weighted:
        relevance = relevance + layer @ relevance
    return relevance


def attention_gradients(model: nn.Module, images: torch.Tensor, target_class=None):
    """Attention maps and the gradient of one class score with respect to each of them.

    Args:
        model: a vit_lessons model (ViT, DeiT); its parameters get no ``.grad`` from this call.
        images: (B, C, H, W).
        target_class: an int (same class for the batch), a (B,) tensor/list of classes, or None for
            each image's predicted class.

    Returns:
        ``(maps, grads, logits)``: two lists of (B, h, N, N) per layer, and (B, classes); all detached.
        Works inside ``torch.no_grad()`` too (it turns gradients on for this call only).
    """
    _check_images(images)
    images = images.detach().requires_grad_(True)  # keeps the maps in the graph even if the model is frozen
    with torch.enable_grad(), capture_attention(model, keep_graph=True) as captured:
        logits = model(images)  # (B, classes)
        if logits.ndim != 2:
            raise ValueError(f"gradient rollout needs class scores of shape (B, classes), got {tuple(logits.shape)}")
        targets = _targets(target_class, logits)  # (B,)
        maps = [per_layer[0] for per_layer in captured]
        score = logits.gather(1, targets[:, None]).sum()  # one scalar; images do not interact
        grads = torch.autograd.grad(score, maps)
    return [m.detach() for m in maps], [g.detach() for g in grads], logits.detach()


def _targets(target_class, logits: torch.Tensor) -> torch.Tensor:
    B, num_classes = logits.shape
    if target_class is None:
        return logits.argmax(dim=-1)
    targets = torch.as_tensor(target_class, device=logits.device)
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"target_class must be an int or integer class indices, got {targets.dtype}")
    targets = targets.long().reshape(-1)
    if targets.numel() == 1:
        targets = targets.expand(B)
    if targets.numel() != B:
        raise ValueError(f"target_class holds {targets.numel()} classes for a batch of {B} images")
    if (targets < 0).any() or (targets >= num_classes).any():
        raise ValueError(f"target_class must be in [0, {num_classes - 1}], got {targets.tolist()}")
    return targets


def gradient_rollout(model: nn.Module, images: torch.Tensor, target_class=None, return_logits: bool = False):
    """Class-specific relevance of every token (Chefer et al. 2021): gradient-weighted rollout.

    Args:
        model, images, target_class: as for :func:`attention_gradients`.
        return_logits: also return the logits (B, classes), detached.

    Returns:
        (B, N, N) relevance (row 0: the class token); with ``return_logits``, ``(relevance, logits)``.
    """
    maps, grads, logits = attention_gradients(model, images, target_class)
    relevance = gradient_rollout_from(maps, grads)
    return (relevance, logits) if return_logits else relevance


def token_heatmap(
    row: torch.Tensor,
    grid_size: tuple[int, int],
    num_prefix_tokens: int = 1,
    image_size: tuple[int, int] | None = None,
    normalize: bool = True,
) -> torch.Tensor:
    """Turn one row of a map (what one query reads from every token) into a heat map over the image.

    Args:
        row: (N,) or (B, N) with N = num_prefix_tokens + rows·cols (e.g. ``rollout[:, 0]``).
        grid_size: (rows, cols) of the patch grid (``model.patch_embed.grid_size``).
        num_prefix_tokens: tokens before the patches (1 for ViT, 2 for DeiT); they are dropped.
        image_size: (H, W) to upsample to (bilinear); None keeps the patch grid.
        normalize: rescale each map to [0, 1] (min to 0, max to 1).

    Returns:
        (H, W) or (B, H, W), matching ``row``'s batch dimension.
    """
    if not isinstance(row, torch.Tensor):
        raise TypeError(f"row must be a torch.Tensor, got {type(row).__name__}")
    single = row.ndim == 1
    if row.ndim not in (1, 2):
        raise ValueError(f"row must have shape (N,) or (B, N), got {tuple(row.shape)}; pick a row, e.g. rollout[:, 0]")
    rows, cols = grid_size
    expected = num_prefix_tokens + rows * cols
    if row.shape[-1] != expected:
        raise ValueError(
            f"row has {row.shape[-1]} tokens but {num_prefix_tokens} prefix tokens + a {rows}x{cols} grid make "
            f"{expected}; pass the model's num_prefix_tokens and patch_embed.grid_size"
        )
    batch = row.reshape(-1, row.shape[-1]).float()  # (B, N)
    heat = batch[:, num_prefix_tokens:].reshape(-1, 1, rows, cols)  # (B, 1, rows, cols)
    if image_size is not None:
        heat = F.interpolate(heat, size=tuple(image_size), mode="bilinear", align_corners=False)
    heat = heat[:, 0]  # (B, H, W)
    if normalize:
        low = heat.amin(dim=(-2, -1), keepdim=True)
        high = heat.amax(dim=(-2, -1), keepdim=True)
        heat = (heat - low) / (high - low).clamp_min(1e-12)
    return heat[0] if single else heat


def attention_distance(maps, grid_size: tuple[int, int], patch_size: int, num_prefix_tokens: int = 1) -> torch.Tensor:
    """Mean attention distance in pixels per layer and head (Dosovitskiy et al. 2021, Fig. 7).

    For each patch query q: sum over patch keys k of A[q, k]·‖pos(q) − pos(k)‖ (patch centres, in
    pixels), with the weights renormalised over the patch keys (prefix tokens have no position);
    then averaged over queries and images. A head that looks only at its own patch scores 0, one
    spreading evenly over a 14×14 grid of 16 px patches about 114 px.

    Returns:
        (L, h) in pixels.
    """
    stacked = _check_maps(maps).float()  # (L, B, h, N, N)
    rows, cols = grid_size
    N = stacked.shape[-1]
    if N != num_prefix_tokens + rows * cols:
        raise ValueError(
            f"maps have {N} tokens but {num_prefix_tokens} prefix tokens + a {rows}x{cols} grid make "
            f"{num_prefix_tokens + rows * cols}; pass the model's num_prefix_tokens and patch_embed.grid_size"
        )
    if isinstance(patch_size, bool) or not isinstance(patch_size, (int, float)) or patch_size <= 0:
        raise ValueError(f"patch_size must be a positive number of pixels, got {patch_size!r}")
    patch_weights = stacked[..., num_prefix_tokens:, num_prefix_tokens:]  # (L, B, h, Np, Np)
    patch_weights = patch_weights / patch_weights.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    ys, xs = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    centres = torch.stack([ys.flatten(), xs.flatten()], dim=-1).float() * patch_size  # (Np, 2) pixels
    distances = torch.cdist(centres, centres).to(patch_weights.device)  # (Np, Np)
    per_query = (patch_weights * distances).sum(dim=-1)  # (L, B, h, Np)
    return per_query.mean(dim=(1, 3))  # (L, h)
