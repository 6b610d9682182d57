"""Pretrained weights in the course's own models: timm and Hugging Face checkpoints, inference.

The ViT paper's point (Dosovitskiy et al. 2021, Sec. 4) is that a ViT pretrained on a large data
set transfers well to small ones. This module puts real weights into the models of ``vit_lessons``:

- :func:`load_timm_state_dict`: timm's ViT, DeiT and Swin checkpoints (our names are timm's; old
  checkpoints' extra buffers are dropped and a position embedding of another grid is resampled);
- :func:`load_hf_state_dict`: Hugging Face ``transformers`` ViT checkpoints
  (``ViTForImageClassification`` and ``ViTModel``), in the key layout of the files on the Hub and in
  that of current ``transformers`` releases; separate q/k/v are fused into our ``qkv``, and
  LayerNorm's eps becomes Hugging Face's 1e-12;
- :func:`from_pretrained`: a local ``.pt``/``.pth``/``.bin``/``.safetensors`` file or a Hub name; offline
  it fails fast and says which file to download and where to put it;
- :func:`predict`: preprocessing from the model's config, top-k ``(label, probability)`` pairs;
- :func:`layer_decay_param_groups`: layer-wise learning-rate decay for fine-tuning.

Neither timm nor ``transformers`` is needed: checkpoints are plain state dicts.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

import torch
from torch import nn

from .position import resample_position_embedding

__all__ = [
    "load_timm_state_dict",
    "load_hf_state_dict",
    "convert_hf_state_dict",
    "from_pretrained",
    "predict",
    "imagenet_class_names",
    "layer_decay_param_groups",
    "preprocess_config",
    "CheckpointMismatchError",
    "OfflineError",
    "PRETRAINED",
    "HF_LAYER_NORM_EPS",
    "weights_dir",
]

HF_LAYER_NORM_EPS = 1e-12  # Hugging Face ViTConfig.layer_norm_eps; timm and the ViT reference code use 1e-6


class CheckpointMismatchError(ValueError):
    """A checkpoint's tensors do not fit the model: the message names the missing, unexpected and
    mis-shaped keys."""


class OfflineError(ConnectionError):
    """Weights were asked for by name but cannot be downloaded: the message says what to fetch and
    where to put it."""


# -- where weights come from ------------------------------------------------------------------------
# Our model name -> timm's default pretrained weights on the Hugging Face Hub and their preprocessing
# (copied from timm 1.0's pretrained configs: ``timm.models.get_pretrained_cfg(name)``).
_AUGREG = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=0.9, interpolation="bicubic")
_IMAGENET = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), crop_pct=0.9, interpolation="bicubic")
PRETRAINED: dict[str, dict] = {
    "vit_tiny_patch16_224": dict(hub_id="timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k", **_AUGREG),
    "vit_small_patch16_224": dict(hub_id="timm/vit_small_patch16_224.augreg_in21k_ft_in1k", **_AUGREG),
    "vit_base_patch16_224": dict(hub_id="timm/vit_base_patch16_224.augreg2_in21k_ft_in1k", **_AUGREG),
    "vit_base_patch32_224": dict(hub_id="timm/vit_base_patch32_224.augreg_in21k_ft_in1k", **_AUGREG),
    "vit_large_patch16_224": dict(hub_id="timm/vit_large_patch16_224.augreg_in21k_ft_in1k", **_AUGREG),
    "vit_huge_patch14_224": dict(hub_id="timm/vit_huge_patch14_224.orig_in21k", **_AUGREG),
    "deit_tiny_patch16_224": dict(hub_id="timm/deit_tiny_patch16_224.fb_in1k", **_IMAGENET),
    "deit_small_patch16_224": dict(hub_id="timm/deit_small_patch16_224.fb_in1k", **_IMAGENET),
    "deit_base_patch16_224": dict(hub_id="timm/deit_base_patch16_224.fb_in1k", **_IMAGENET),
    "deit_tiny_distilled_patch16_224": dict(hub_id="timm/deit_tiny_distilled_patch16_224.fb_in1k", **_IMAGENET),
    "swin_tiny_patch4_window7_224": dict(hub_id="timm/swin_tiny_patch4_window7_224.ms_in1k", **_IMAGENET),
}
_HF_DEFAULT = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0, interpolation="bilinear")
_HUB_URL = "https://huggingface.co/{repo}/resolve/main/{file}"
_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")


def weights_dir() -> Path:
    """Where downloaded weights are looked for: ``VIT_LESSONS_WEIGHTS`` or ``~/.cache/vit_lessons/weights``."""
    root = os.environ.get("VIT_LESSONS_WEIGHTS")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "vit_lessons" / "weights"


# -- reading checkpoints -----------------------------------------------------------------------------
def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: safetensors, or ``torch.load(weights_only=True)`` (no pickled code)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError as error:
            raise ImportError(
                f"{path.name} is a safetensors file: pip install safetensors to read it "
                "(or convert it once to a .pt state dict)"
            ) from error
        try:
            return load_file(str(path))
        except Exception as error:
            raise ValueError(
                f"{path} is not a readable safetensors file ({type(error).__name__}: {error}); it may be "
                "truncated or an HTML error page: download it again"
            ) from error
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}); it may be "
            "truncated, an HTML error page, or a pickle holding more than tensors (only state dicts "
            "load with weights_only=True): download it again or save model.state_dict()"
        ) from error
    return _unwrap(loaded, str(path))


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


# -- from_pretrained ---------------------------------------------------------------------------------
def _network_available(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    """False when offline mode is set or ``host`` cannot be reached within ``timeout`` seconds.

    Name resolution can block far longer than a socket timeout, so the probe runs in a daemon
    thread and we stop waiting after ``timeout``."""
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIT_LESSONS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            return False
    import socket

    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except Exception:  # refused, unreachable, no DNS, or anything else: treat as offline
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _offline_message(name: str, hub_id: str, filename: str, target: Path) -> str:
    return (
        f"cannot download the weights of {name!r}: no network (offline mode set, or huggingface.co unreachable). "
        f"On a machine with internet download {_HUB_URL.format(repo=hub_id, file=filename)} and put it at "
        f"{target} (or anywhere, then from_pretrained('path/to/{filename}', model_name={name!r}))"
    )


def _download(hub_id: str, filename: str) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as error:
        raise ImportError(
            "downloading weights needs huggingface_hub (pip install huggingface_hub), "
            f"or download {_HUB_URL.format(repo=hub_id, file=filename)} yourself and pass its path"
        ) from error
    return Path(hf_hub_download(hub_id, filename))


def _read_json(path: Path) -> dict:
    import json

    return json.loads(path.read_text()) if path.is_file() else {}


def _infer_vit_config(state_dict: dict, num_heads: int | None) -> dict:
    """A VisionTransformer config from a timm-layout ViT state dict (heads cannot be read off weights:
    the standard sizes' head counts, else 64-wide heads)."""
    if "patch_embed.proj.weight" not in state_dict:
        raise CheckpointMismatchError(
            "cannot infer the architecture: no patch_embed.proj.weight; pass model_name= "
            "(one of vit_lessons.list_models())"
        )
    embed_dim, in_chans, patch, _ = state_dict["patch_embed.proj.weight"].shape
    depth = len({k.split(".")[1] for k in state_dict if k.startswith("blocks.")})
    class_token = "cls_token" in state_dict
    num_positions = state_dict["pos_embed"].shape[1] - int(class_token) if "pos_embed" in state_dict else 196
    side = int(round(num_positions**0.5))
    head = state_dict.get("head.weight")
    config = dict(
        img_size=side * patch,
        patch_size=patch,
        in_chans=in_chans,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=num_heads or _guess_heads(embed_dim),
        mlp_ratio=state_dict["blocks.0.mlp.fc1.weight"].shape[0] / embed_dim if depth else 4.0,
        qkv_bias=depth == 0 or "blocks.0.attn.qkv.bias" in state_dict,
        num_classes=0 if head is None else head.shape[0],
        class_token=class_token,
        global_pool="avg" if "fc_norm.weight" in state_dict else "token",
    )
    if not class_token:
        config["global_pool"] = "avg"
    return config


def _guess_heads(embed_dim: int) -> int:
    standard = {192: 3, 384: 6, 768: 12, 1024: 16, 1280: 16}  # ViT-Ti/S/B/L/H
    if embed_dim in standard:
        return standard[embed_dim]
    guess = max(1, embed_dim // 64)
    while embed_dim % guess:
        guess -= 1
    import warnings

    warnings.warn(
        f"the number of attention heads cannot be read from the weights; guessed num_heads={guess} for width "
        f"{embed_dim}: pass num_heads= (or model_name=) if the checkpoint used another, or the outputs will be wrong",
        stacklevel=3,
    )
    return guess


def preprocess_config(model: nn.Module) -> dict:
    """The model's preprocessing: ``input_size`` (C, H, W), ``mean``, ``std``, ``crop_pct``,
    ``interpolation``; from ``model.pretrained_cfg`` (set by :func:`from_pretrained`), else defaults
    (ImageNet-21k ViT: mean = std = 0.5, crop 0.9, bicubic)."""
    config = dict(_AUGREG)
    config.update(getattr(model, "pretrained_cfg", None) or {})
    embed = getattr(model, "patch_embed", None)
    if "input_size" not in config:
        height, width = getattr(embed, "img_size", (224, 224))
        config["input_size"] = (getattr(embed, "in_chans", 3), height, width)
    return config


def from_pretrained(
    name_or_path,
    model_name: str | None = None,
    num_classes: int | None = None,
    img_size=None,
    num_heads: int | None = None,
    device=None,
) -> nn.Module:
    """A ``vit_lessons`` model with pretrained weights, in eval mode.

    ``name_or_path`` is one of:

    - a local checkpoint file (``.safetensors``, or ``.pt``/``.pth``/``.bin`` read with
      ``weights_only=True``) in timm's or Hugging Face's layout; the architecture is ``model_name``,
      else the file's name when it is a model name, else inferred from the tensors (``num_heads``
      for non-standard widths); a ``config.json`` next to a Hugging Face file gives heads and eps;
    - a directory holding ``model.safetensors`` or ``pytorch_model.bin`` (+ ``config.json``);
    - a model name with timm weights (``vit_base_patch16_224``, see ``PRETRAINED``), looked up in
      :func:`weights_dir` first, downloaded from the Hugging Face Hub when online;
    - a Hugging Face repo id (``google/vit-base-patch16-224``), downloaded when online.

    ``num_classes`` replaces the head with a new one (transfer learning); ``img_size`` resamples the
    position embedding to a new resolution. Offline, a name fails fast with :class:`OfflineError`
    saying which file to download, from where, and where to put it.
    """
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a model name or a file path, got {type(name_or_path).__name__}")
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        files = [path / f for f in ("model.safetensors", "pytorch_model.bin", "model.pt") if (path / f).is_file()]
        if not files:
            raise FileNotFoundError(f"{path} holds no model.safetensors, pytorch_model.bin or model.pt")
        path = files[0]
    source = None
    if not path.is_file():
        text = str(name_or_path)
        if text.endswith(_CHECKPOINT_SUFFIXES):
            raise FileNotFoundError(f"no checkpoint at {path}: check the path (current directory: {Path.cwd()})")
        path, source = _fetch_by_name(text)
        model_name = model_name or (text if text in PRETRAINED else None)
    state_dict = _read_checkpoint(path)
    layout = _looks_like(state_dict)
    hf_config = _read_json(path.with_name("config.json")) if layout == "hf" else {}
    if layout == "hf":
        converted = convert_hf_state_dict(state_dict)
        num_heads = num_heads or hf_config.get("num_attention_heads")
    else:
        converted = state_dict
    if model_name is None and path.stem in _registry_names():
        model_name = path.stem
    model = _build(model_name, converted, num_heads, device)
    if layout == "hf":
        load_hf_state_dict(model, state_dict, hf_config.get("layer_norm_eps", HF_LAYER_NORM_EPS))
    else:
        load_timm_state_dict(model, state_dict)
    cfg = dict(PRETRAINED.get(model_name, _HF_DEFAULT if layout == "hf" else _AUGREG))
    cfg.pop("hub_id", None)
    if layout == "hf":
        cfg.update(_hf_preprocessing(path.with_name("preprocessor_config.json")))
        labels = hf_config.get("id2label")
        if labels and len(labels) == getattr(model, "num_classes", -1):
            model.class_names = [labels[str(i)] if str(i) in labels else labels[i] for i in range(len(labels))]
    cfg["source"] = source or str(path)
    model.pretrained_cfg = cfg
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        _reset_head(model, num_classes)
    if img_size is not None:
        if not hasattr(model, "set_img_size"):
            raise ValueError(f"{type(model).__name__} cannot change its input size; create it at img_size={img_size}")
        model.set_img_size(img_size)
    if hasattr(model, "patch_embed"):
        model.pretrained_cfg["input_size"] = (model.patch_embed.in_chans, *model.patch_embed.img_size)
    return model.eval()


def _registry_names() -> list[str]:
    from . import list_models

    return list_models()


def _fetch_by_name(name: str) -> tuple[Path, str]:
    """A local copy of the weights named ``name`` (a model name or an HF repo id), else a download."""
    if name in PRETRAINED:
        hub_id, filename = PRETRAINED[name]["hub_id"], "model.safetensors"
        local = weights_dir() / f"{name}.safetensors"
    elif "/" in name and not name.startswith((".", "/", "~")):
        hub_id, filename = name, "model.safetensors"
        local = weights_dir() / name.replace("/", "--") / filename
    else:
        known = ", ".join(sorted(PRETRAINED))
        raise ValueError(
            f"{name!r} is neither a checkpoint file nor a model with known weights; use a path to a "
            f".safetensors/.pt file, a Hugging Face repo id (owner/name), or one of: {known}"
        )
    if local.is_file():
        return local, f"{local} (weights of {hub_id})"
    if not _network_available():
        raise OfflineError(_offline_message(name, hub_id, filename, local))
    downloaded = _download(hub_id, filename)
    if "/" in name and name not in PRETRAINED:
        for extra in ("config.json", "preprocessor_config.json"):
            try:
                _download(hub_id, extra)
            except Exception:  # optional files
                pass
    return downloaded, f"https://huggingface.co/{hub_id}"


def _build(model_name: str | None, state_dict: dict, num_heads: int | None, device) -> nn.Module:
    from . import VisionTransformer, create_model

    if model_name is not None:
        head = state_dict.get("head.weight", state_dict.get("head.fc.weight"))
        overrides = {"num_classes": 0 if head is None else head.shape[0]}
        if num_heads:
            overrides["num_heads"] = num_heads
        return create_model(model_name, device=device, **overrides)
    config = _infer_vit_config(state_dict, num_heads)
    if device is None:
        return VisionTransformer(**config)
    with torch.device(device):
        return VisionTransformer(**config)


def _hf_preprocessing(path: Path) -> dict:
    config = _read_json(path)
    result = {}
    if "image_mean" in config:
        result["mean"], result["std"] = tuple(config["image_mean"]), tuple(config["image_std"])
    if "resample" in config:  # PIL codes: 2 bilinear, 3 bicubic
        result["interpolation"] = {2: "bilinear", 3: "bicubic"}.get(config["resample"], "bilinear")
    if config.get("do_center_crop") is False or "crop_size" not in config:
        result["crop_pct"] = 1.0
    return result


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


# -- inference ---------------------------------------------------------------------------------------
def imagenet_class_names() -> list[str]:
    """The 1000 ImageNet-1k class names, in the order of the classifier's outputs.

    ``assets/imagenet_classes.txt`` was made once from timm 1.0.31's ``timm/data/_info``: for each
    synset of ``imagenet_synsets.txt`` (the standard class order), the first name of its lemma in
    ``imagenet_synset_to_lemma.txt`` ("n01440764 → tench"). Two names repeat ("crane" the bird and
    the machine, "maillot" twice), as in WordNet."""
    from importlib import resources

    text = resources.files("vit_lessons").joinpath("assets", "imagenet_classes.txt").read_text(encoding="utf-8")
    names = text.splitlines()
    if len(names) != 1000:
        raise RuntimeError(f"imagenet_classes.txt has {len(names)} lines, expected 1000: reinstall vit_lessons")
    return names


def _to_pil(item, index: int):
    from PIL import Image

    if isinstance(item, (str, Path)):
        path = Path(item).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"image {index}: no file at {path}")
        try:
            with Image.open(path) as image:
                return image.copy()
        except Exception as error:
            raise ValueError(f"image {index}: {path} is not an image PIL can read ({error})") from error
    if isinstance(item, Image.Image):
        return item
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if np is not None and isinstance(item, np.ndarray):
        if item.ndim not in (2, 3):
            raise ValueError(f"image {index}: a numpy image must be (H, W) or (H, W, C), got shape {item.shape}")
        if item.dtype != np.uint8:
            if item.max() <= 1.0:
                item = item * 255
            item = item.clip(0, 255).astype(np.uint8)
        return Image.fromarray(item)
    raise TypeError(
        f"image {index} is a {type(item).__name__}; pass file paths, PIL images, (H, W, C) uint8 numpy "
        "arrays, or an already preprocessed (B, C, H, W) float tensor"
    )


def _transform(config: dict):
    from torchvision import transforms

    channels, height, width = config["input_size"]
    modes = {"bicubic": transforms.InterpolationMode.BICUBIC, "bilinear": transforms.InterpolationMode.BILINEAR}
    interpolation = modes.get(config.get("interpolation", "bicubic"), transforms.InterpolationMode.BICUBIC)
    crop_pct = config.get("crop_pct", 1.0)
    resize = (
        int(height / crop_pct) if height == width else (int(height / crop_pct), int(width / crop_pct))
    )  # resize the short side, then crop the centre
    mean, std = config["mean"], config["std"]
    if channels == 1:
        mean, std = mean[:1], std[:1]
    return transforms.Compose(
        [
            transforms.Resize(resize, interpolation=interpolation),
            transforms.CenterCrop((height, width)),
            transforms.ToTensor(),
            transforms.Normalize(mean, std),
        ]
    )


def predict(model: nn.Module, images_or_paths, top_k: int = 5, class_names=None) -> list[list[tuple[str, float]]]:
    """Classify images: for each, the ``top_k`` most probable ``(label, probability)`` pairs, most
    probable first.

    ``images_or_paths``: a file path, PIL image or numpy (H, W, C) image, a list of those, or a
    preprocessed (B, C, H, W) / (C, H, W) float tensor. Images are preprocessed with the model's
    config (:func:`preprocess_config`: resize, centre crop, normalise). Labels come from
    ``class_names``, else ``model.class_names``, else the ImageNet names for a 1000-class model,
    else the class index as a string.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    num_classes = getattr(model, "num_classes", None)
    if not num_classes:
        raise ValueError("the model has no classifier head (num_classes=0); predict needs class scores")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= num_classes:
        raise ValueError(f"top_k must be an int between 1 and the number of classes ({num_classes}), got {top_k!r}")
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    if names is None and num_classes == 1000:
        names = imagenet_class_names()
    if names is not None:
        names = list(names)
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for a model with {num_classes} classes; give one per class")
    config = preprocess_config(model)
    parameter = next(model.parameters())
    if isinstance(images_or_paths, torch.Tensor):
        batch = images_or_paths.unsqueeze(0) if images_or_paths.ndim == 3 else images_or_paths
    else:
        items = images_or_paths if isinstance(images_or_paths, (list, tuple)) else [images_or_paths]
        if not items:
            raise ValueError("no images given")
        transform = _transform(config)
        mode = "L" if config["input_size"][0] == 1 else "RGB"
        batch = torch.stack([transform(_to_pil(item, i).convert(mode)) for i, item in enumerate(items)])
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            probabilities = model(batch.to(device=parameter.device, dtype=parameter.dtype)).float().softmax(dim=-1)
    finally:
        model.train(was_training)
    values, indices = probabilities.topk(top_k, dim=-1)  # (B, k), sorted, most probable first
    return [
        [(names[i] if names is not None else str(i), p) for p, i in zip(row_p.tolist(), row_i.tolist())]
        for row_p, row_i in zip(values, indices)
    ]


# -- fine-tuning ---------------------------------------------------------------------------------------
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
        if name.startswith(("cls_token", "pos_embed", "patch_embed", "dist_token", "reg_token")):
            layer = 0
        elif name.startswith("blocks."):
            layer = int(name.split(".")[1]) + 1
        else:
            layer = depth + 1  # final norm and head
        no_decay = parameter.ndim <= 1 or name in ("cls_token", "pos_embed", "dist_token")
        key = (layer, no_decay)
        if key not in groups:
            scale = decay ** (depth + 1 - layer)
            groups[key] = dict(
                params=[], lr=lr * scale, lr_scale=scale, weight_decay=0.0 if no_decay else weight_decay, layer=layer
            )
        groups[key]["params"].append(parameter)
    return [groups[key] for key in sorted(groups)]
