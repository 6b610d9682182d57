"""Fine-tuning helpers: a new head for another number of classes, layer-wise learning-rate decay.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``): keep the pretrained body,
put a new head on it, and let the early layers, which hold general features, change least.
"""

from __future__ import annotations

from torch import nn

__all__ = ["layer_decay_param_groups"]

# Parameters before the first block: the patch projection and the tokens added to its output.
_EMBEDDING_PREFIXES = ("cls_token", "pos_embed", "patch_embed", "dist_token", "reg_token")


def _reset_head(model: nn.Module, num_classes: int) -> None:
    """New, zero-initialised linear head(s) for ``num_classes`` classes (transfer learning)."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 0:
        raise ValueError(f"num_classes must be a non-negative int, got {num_classes!r}")
    owner, attribute = (model.head, "fc") if hasattr(model.head, "fc") else (model, "head")
    names = [attribute] + (["head_dist"] if owner is model and hasattr(model, "head_dist") else [])
    old = getattr(owner, attribute)
    features = getattr(old, "in_features", None) or getattr(model, "num_features", None) or model.embed_dim
    for name in names:
        new_head = nn.Linear(features, num_classes) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            nn.init.zeros_(new_head.weight)
            nn.init.zeros_(new_head.bias)
        setattr(owner, name, new_head.to(next(model.parameters()).device))
    model.num_classes = num_classes
    if hasattr(model, "class_names"):
        del model.class_names


def _layer_index(name: str, depth: int) -> int:
    """0 for the embeddings, ``i + 1`` for block ``i``, ``depth + 1`` for the final norm and the head."""
    if name.startswith(_EMBEDDING_PREFIXES):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1  # final norm and head


def layer_decay_param_groups(
    model: nn.Module, lr: float, decay: float = 0.75, weight_decay: float = 0.05
) -> list[dict]:
    """Optimizer parameter groups with layer-wise learning-rate decay (BEiT, Bao et al. 2022; MAE).

    The head gets ``lr``; block ``i`` of ``L`` gets ``lr · decay^(L - i)``; the embeddings (patch
    projection, class token, positions) get ``lr · decay^(L + 1)``: early layers, which hold general
    features, change least. Biases, norms and tokens get no weight decay.
    """
    if not 0 < decay <= 1:
        raise ValueError(f"decay must be in (0, 1], got {decay}")
    blocks = getattr(model, "blocks", None)
    if blocks is None:
        raise ValueError(f"{type(model).__name__} has no .blocks; layer decay needs a ViT-style model")
    depth = len(blocks)
    groups: dict[tuple[int, bool], dict] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        layer = _layer_index(name, depth)
        no_decay = parameter.ndim <= 1 or name in ("cls_token", "pos_embed", "dist_token")
        key = (layer, no_decay)
        if key not in groups:
            scale = decay ** (depth + 1 - layer)
            groups[key] = dict(
                params=[], lr=lr * scale, lr_scale=scale, weight_decay=0.0 if no_decay else weight_decay, layer=layer
            )
        groups[key]["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]
