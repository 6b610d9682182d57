"""State dicts of timm and Hugging Face into our models: key conversion, and what to say when they do not fit.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``). timm's keys are ours already,
up to old checkpoints' extra buffers, the original Swin layout and a position embedding of another
grid (:func:`load_timm_state_dict`). Hugging Face names every tensor differently, in two layouts
(the Hub's files and current ``transformers``: ``HF_VIT_KEYS``), keeps q, k and v apart where we
fuse them into ``qkv``, and uses LayerNorm eps 1e-12 (:func:`load_hf_state_dict`). A checkpoint
that does not fit raises :class:`CheckpointMismatchError` naming the missing, unexpected and
mis-shaped keys, and the fix.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from ..position import resample_position_embedding

__all__ = [
    "load_timm_state_dict",
    "load_hf_state_dict",
    "convert_hf_state_dict",
    "CheckpointMismatchError",
    "HF_LAYER_NORM_EPS",
    "HF_VIT_KEYS",
    "HF_IGNORED",
]

HF_LAYER_NORM_EPS = 1e-12  # Hugging Face ViTConfig.layer_norm_eps; timm and the ViT reference code use 1e-6


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit the model: the message names the missing, unexpected and
    mis-shaped keys."""


def _unwrap(loaded, what: str) -> dict[str, torch.Tensor]:
    """Accept a state dict or a training checkpoint holding one (``model``, ``state_dict``, ``model_ema``);
    strip the ``module.`` prefix that DataParallel and DDP add."""
    if not isinstance(loaded, dict):
        raise TypeError(f"{what} holds a {type(loaded).__name__}, not a state dict (a dict of tensors)")
    for key in ("state_dict", "model", "model_ema", "module"):
        if key in loaded and isinstance(loaded[key], dict):
            loaded = loaded[key]
            break
    tensors = {k: v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ValueError(f"{what} holds no tensors; expected a state dict such as model.state_dict()")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


# -- loading into a model ----------------------------------------------------------------------------
def _looks_like(state_dict) -> str:
    keys = list(state_dict)
    if any("embeddings.patch_embeddings" in k for k in keys):
        return "hf"
    return "timm"


def _describe_mismatch(model: nn.Module, state_dict: dict, source: str) -> str | None:
    """None when ``state_dict`` fits ``model`` exactly; else a message naming what differs."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    shapes = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or shapes):
        return None

    def show(items):
        # Whole blocks missing or extra (a depth mismatch) read better as one entry per block.
        grouped, seen = [], {}
        for item in items:
            match = re.match(r"((?:blocks|layers)\.\d+\.)", item)
            block_count = sum(1 for other in items if match and other.startswith(match.group(1)))
            if match and block_count > 3:
                if match.group(1) not in seen:
                    seen[match.group(1)] = True
                    grouped.append(f"{match.group(1)}* ({block_count} tensors)")
            else:
                grouped.append(item)
        return ", ".join(grouped[:8]) + (f" and {len(grouped) - 8} more" if len(grouped) > 8 else "")

    parts = [f"the {source} checkpoint does not fit {type(model).__name__}"]
    if missing:
        parts.append(f"missing keys ({len(missing)}): {show(missing)}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {show(unexpected)}")
    if shapes:
        parts.append(f"shape mismatches ({len(shapes)}): {show(shapes)}")
    hint = ""
    if source == "timm" and _looks_like(state_dict) == "hf":
        hint = "it looks like a Hugging Face checkpoint: use load_hf_state_dict"
    elif any(k.startswith("head") for k in shapes) or ("head.weight" in missing and "head.weight" not in unexpected):
        hint = "for a different number of classes create the model with that num_classes, or pass skip_head=True"
    elif missing or unexpected:
        hint = "build the model that matches the checkpoint (depth, embed_dim, patch size, class token)"
    return "; ".join(parts) + (f". Fix: {hint}" if hint else "")


def _load_exact(model: nn.Module, state_dict: dict, source: str, skip_head: bool) -> nn.Module:
    state_dict = dict(state_dict)
    if skip_head:  # keep the model's own (new) head, e.g. for transfer to another number of classes
        for key in [k for k in state_dict if k.startswith(("head.", "head_dist.", "classifier."))]:
            del state_dict[key]
        for key, value in model.state_dict().items():
            if key.startswith(("head.", "head_dist.")):
                state_dict[key] = value
    message = _describe_mismatch(model, state_dict, source)
    if message:
        raise CheckpointMismatchError(message)
    model.load_state_dict(state_dict, strict=True)
    return model


def _fit_position_embedding(model: nn.Module, state_dict: dict) -> None:
    """A checkpoint trained at another resolution: resample its ``pos_embed`` to the model's grid."""
    if "pos_embed" not in state_dict or not isinstance(getattr(model, "pos_embed", None), torch.Tensor):
        return
    ours, theirs = model.pos_embed, state_dict["pos_embed"]
    if theirs.ndim != 3 or ours.shape == theirs.shape or ours.shape[-1] != theirs.shape[-1]:
        return  # nothing to do, or a width mismatch the error message will report
    prefix = getattr(model, "num_prefix_tokens", 1)
    grid = getattr(model.patch_embed, "grid_size", None)
    if grid is None or theirs.shape[1] - prefix <= 0:
        return
    # (1, prefix + h·w, D) -> (1, prefix + H·W, D)
    state_dict["pos_embed"] = resample_position_embedding(theirs, tuple(grid), num_prefix_tokens=prefix)


def _convert_timm_keys(model: nn.Module, state_dict: dict) -> dict:
    """timm checkpoints use our names already; older ones need small fixes (as timm's own filters do)."""
    expected = model.state_dict()
    converted = {}
    for key, value in state_dict.items():
        # Buffers that timm ≥ 1.0 no longer saves (Swin's relative_position_index and attn_mask).
        if key not in expected and key.rsplit(".", 1)[-1] in ("relative_position_index", "attn_mask"):
            continue
        # timm's Swin names the classifier head.fc; the original Swin release names it head.
        if key.startswith("head.") and key not in expected and f"head.fc.{key[5:]}" in expected:
            key = f"head.fc.{key[5:]}"
        converted[key] = value
    # The original Swin release puts PatchMerging at the end of stage i; timm at the start of i + 1.
    if any(re.match(r"layers\.\d+\.downsample\.", k) for k in converted) and not any(
        k in expected for k in converted if k.startswith("layers.") and ".downsample." in k
    ):
        converted = {
            re.sub(r"^layers\.(\d+)\.downsample", lambda m: f"layers.{int(m.group(1)) + 1}.downsample", k): v
            for k, v in converted.items()
        }
    return converted


def load_timm_state_dict(model: nn.Module, state_dict: dict, skip_head: bool = False) -> nn.Module:
    """Load a timm ViT, DeiT or Swin state dict into the matching ``vit_lessons`` model, in place.

    Our parameter names are timm's, so most keys load as they are. Also handled: a training
    checkpoint wrapping the state dict (``model``/``state_dict``), DDP's ``module.`` prefix, old
    checkpoints' non-persistent buffers, the original Swin layout, and a ``pos_embed`` trained at
    another resolution (resampled bicubically to the model's grid, as timm does).

    ``skip_head=True`` keeps the model's own head (transfer to another number of classes).
    Raises :class:`CheckpointMismatchError` naming the missing, unexpected and mis-shaped keys.
    Returns the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    state_dict = _unwrap(state_dict, "the state dict")
    state_dict = _convert_timm_keys(model, state_dict)
    _fit_position_embedding(model, state_dict)
    return _load_exact(model, state_dict, "timm", skip_head)


# -- Hugging Face ------------------------------------------------------------------------------------
# One row per tensor of a Hugging Face ViT: our name, then the name in the files on the Hub (and in
# transformers ≤ 4.x), then the module name of current transformers releases (5.x). "{i}" is the
# block index, "{p}" weight or bias. q, k and v are loaded separately, then fused into our qkv.
# A ViTForImageClassification prefixes the encoder's names with "vit."; a ViTModel does not.
HF_VIT_KEYS = [
    # ours                  Hub files / transformers 4                         transformers 5
    ("cls_token", "embeddings.cls_token", "embeddings.cls_token"),
    ("pos_embed", "embeddings.position_embeddings", "embeddings.position_embeddings"),
    (
        "patch_embed.proj.{p}",
        "embeddings.patch_embeddings.projection.{p}",
        "embeddings.patch_embeddings.projection.{p}",
    ),
    ("blocks.{i}.norm1.{p}", "encoder.layer.{i}.layernorm_before.{p}", "layers.{i}.layernorm_before.{p}"),
    ("blocks.{i}.attn.q.{p}", "encoder.layer.{i}.attention.attention.query.{p}", "layers.{i}.attention.q_proj.{p}"),
    ("blocks.{i}.attn.k.{p}", "encoder.layer.{i}.attention.attention.key.{p}", "layers.{i}.attention.k_proj.{p}"),
    ("blocks.{i}.attn.v.{p}", "encoder.layer.{i}.attention.attention.value.{p}", "layers.{i}.attention.v_proj.{p}"),
    ("blocks.{i}.attn.proj.{p}", "encoder.layer.{i}.attention.output.dense.{p}", "layers.{i}.attention.o_proj.{p}"),
    ("blocks.{i}.norm2.{p}", "encoder.layer.{i}.layernorm_after.{p}", "layers.{i}.layernorm_after.{p}"),
    ("blocks.{i}.mlp.fc1.{p}", "encoder.layer.{i}.intermediate.dense.{p}", "layers.{i}.mlp.fc1.{p}"),
    ("blocks.{i}.mlp.fc2.{p}", "encoder.layer.{i}.output.dense.{p}", "layers.{i}.mlp.fc2.{p}"),
    ("norm.{p}", "layernorm.{p}", "layernorm.{p}"),
    ("head.{p}", "classifier.{p}", "classifier.{p}"),
]
# Tensors with no counterpart in our ViT: the ViTModel pooler (dense + tanh, unused for
# classification) and the masked-image-modelling token.
HF_IGNORED = ("pooler.dense.weight", "pooler.dense.bias", "embeddings.mask_token")


def _template_regex(template: str) -> re.Pattern:
    pattern = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(pattern + "$")


_HF_RULES = [(ours, _template_regex(hub), _template_regex(current)) for ours, hub, current in HF_VIT_KEYS]


def convert_hf_state_dict(state_dict: dict) -> dict[str, torch.Tensor]:
    """Rename a Hugging Face ViT state dict (either key layout) to ours and fuse q, k, v into qkv.

    Raises ValueError naming any key it does not know.
    """
    state_dict = _unwrap(state_dict, "the Hugging Face state dict")
    renamed, unknown = {}, []
    for key, value in state_dict.items():
        name = key[len("vit.") :] if key.startswith("vit.") else key
        if name in HF_IGNORED:
            continue
        for ours, hub, current in _HF_RULES:
            match = hub.match(name) or current.match(name)
            if match:
                renamed[ours.format(**match.groupdict())] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointMismatchError(
            f"keys that are not part of a Hugging Face ViT: {', '.join(unknown[:8])}"
            + (f" and {len(unknown) - 8} more" if len(unknown) > 8 else "")
            + "; is this a ViT checkpoint (not DeiT, BEiT, Swin...)? timm checkpoints load with load_timm_state_dict"
        )
    fused = {}
    for key, value in renamed.items():
        match = re.match(r"blocks\.(\d+)\.attn\.([qkv])\.(weight|bias)$", key)
        if not match:
            fused[key] = value
            continue
        index, part, kind = match.groups()
        if part != "q":
            continue
        parts = [renamed.get(f"blocks.{index}.attn.{p}.{kind}") for p in "qkv"]
        if any(p is None for p in parts):
            raise CheckpointMismatchError(f"block {index} has a query {kind} but not all of key and value")
        fused[f"blocks.{index}.attn.qkv.{kind}"] = torch.cat(parts, dim=0)  # (3D, D) or (3D,): [q | k | v]
    return fused


def load_hf_state_dict(
    model: nn.Module, state_dict: dict, layer_norm_eps: float = HF_LAYER_NORM_EPS, skip_head: bool = False
) -> nn.Module:
    """Load a Hugging Face ``ViTForImageClassification`` or ``ViTModel`` state dict into our ViT.

    Both key layouts load (see ``HF_VIT_KEYS``). Every LayerNorm of the model gets ``layer_norm_eps``
    (Hugging Face's ViT uses 1e-12 where timm uses 1e-6; keeping 1e-6 makes the logits drift).
    A ``ViTModel`` has no classifier: create our model with ``num_classes=0`` (its output is then the
    class token's final features, ``last_hidden_state[:, 0]``) or pass ``skip_head=True``.
    Returns the model.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    converted = convert_hf_state_dict(state_dict)
    if not skip_head and "head.weight" not in converted and isinstance(getattr(model, "head", None), nn.Linear):
        raise CheckpointMismatchError(
            "the checkpoint has no classifier (a ViTModel): create the model with num_classes=0 to get its "
            "features, or pass skip_head=True to keep the model's new head for fine-tuning"
        )
    _fit_position_embedding(model, converted)
    _load_exact(model, converted, "Hugging Face", skip_head)
    for module in model.modules():
        if isinstance(module, nn.LayerNorm):
            module.eps = layer_norm_eps
    return model
