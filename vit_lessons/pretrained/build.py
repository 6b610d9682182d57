"""``from_pretrained``: a ``vit_lessons`` model built around a checkpoint file or a named set of weights.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``). The steps, each a small
function below: find the file (:mod:`.hub` for names), read it safely, tell timm's layout from
Hugging Face's, build the architecture (a model name, else inferred from the tensors), load the
weights (:mod:`.convert`), record the preprocessing, then adapt the head and the input size.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .convert import (
    HF_LAYER_NORM_EPS,
    CheckpointMismatchError,
    _looks_like,
    _unwrap,
    convert_hf_state_dict,
    load_hf_state_dict,
    load_timm_state_dict,
)
from .hub import _AUGREG, _CHECKPOINT_SUFFIXES, _HF_DEFAULT, PRETRAINED, _fetch_by_name
from .transfer import _reset_head

__all__ = ["from_pretrained"]

# The files ``save_pretrained`` (Hugging Face) or a training run leave in a model directory, preferred first.
_DIRECTORY_FILES = ("model.safetensors", "pytorch_model.bin", "model.pt")


# -- reading checkpoints -----------------------------------------------------------------------------
def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a file: safetensors, or ``torch.load(weights_only=True)`` (no pickled code)."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(
            f"{path} is not a readable PyTorch checkpoint ({type(error).__name__}: {str(error)[:200]}); it may be "
            "truncated, an HTML error page, or a pickle holding more than tensors (only state dicts "
            "load with weights_only=True): download it again or save model.state_dict()"
        ) from error
    return _unwrap(loaded, str(path))


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
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


def _read_json(path: Path) -> dict:
    """A config file beside the weights; {} if there is none."""
    import json

    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as error:
        raise ValueError(f"{path} is not valid JSON ({error}): download it again, or delete it") from error


def _locate(name_or_path, model_name: str | None) -> tuple[Path, str | None, str | None]:
    """The checkpoint file, where it came from (None: the local file itself), and the model name:
    ``model_name``, else the architecture the name of the weights says (``vit_base_patch16_224.augreg...``)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        files = [path / f for f in _DIRECTORY_FILES if (path / f).is_file()]
        if not files:
            raise FileNotFoundError(f"{path} holds no model.safetensors, pytorch_model.bin or model.pt")
        path = files[0]
    if path.is_file():
        return path, None, model_name
    text = str(name_or_path)
    if text.endswith(_CHECKPOINT_SUFFIXES):
        raise FileNotFoundError(f"no checkpoint at {path}: check the path (current directory: {Path.cwd()})")
    path, source, named_model = _fetch_by_name(text)
    return path, source, model_name or named_model


# -- the architecture ----------------------------------------------------------------------------------
def _registry_names() -> list[str]:
    from .. import list_models

    return list_models()


def _architecture_named(path: Path, layout: str, config: dict) -> str | None:
    """Our architecture when the file says it: timm's config.json beside it (``architecture``), or the
    file's own name (``vit_base_patch16_224.safetensors``); None: infer it from the tensors."""
    ours = _registry_names()
    if layout == "timm" and config.get("architecture") in ours:
        return config["architecture"]
    return path.stem if path.stem in ours else None


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


def _build(model_name: str | None, state_dict: dict, num_heads: int | None, device) -> nn.Module:
    from .. import VisionTransformer, create_model

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


# -- after loading: preprocessing, labels, head and input size ---------------------------------------
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


def _timm_preprocessing(config: dict) -> dict:
    """The preprocessing in timm's config.json (``pretrained_cfg``): it differs between tags of one architecture."""
    pretrained_cfg = config.get("pretrained_cfg") or {}
    keys = ("mean", "std", "crop_pct", "interpolation")
    return {
        k: tuple(pretrained_cfg[k]) if isinstance(pretrained_cfg[k], list) else pretrained_cfg[k]
        for k in keys
        if k in pretrained_cfg
    }


def _pretrained_cfg(model_name: str | None, layout: str, path: Path, source: str | None, config: dict) -> dict:
    """The preprocessing the weights were trained with, and where they came from."""
    cfg = dict(PRETRAINED.get(model_name, _HF_DEFAULT if layout == "hf" else _AUGREG))
    cfg.pop("hub_id", None)
    if layout == "hf":
        cfg.update(_hf_preprocessing(path.with_name("preprocessor_config.json")))
    else:
        cfg.update(_timm_preprocessing(config))
    cfg["source"] = source or str(path)
    return cfg


def _set_class_names(model: nn.Module, hf_config: dict) -> None:
    """Hugging Face's ``id2label`` (keys are strings in config.json) as ``model.class_names``."""
    labels = hf_config.get("id2label")
    if labels and len(labels) == getattr(model, "num_classes", -1):
        model.class_names = [labels[str(i)] if str(i) in labels else labels[i] for i in range(len(labels))]


def _adapt(model: nn.Module, num_classes: int | None, img_size) -> None:
    """A new head for another number of classes; the position embedding resampled for another input size."""
    if num_classes is not None and num_classes != getattr(model, "num_classes", None):
        _reset_head(model, num_classes)
    if img_size is not None:
        if not hasattr(model, "set_img_size"):
            raise ValueError(f"{type(model).__name__} cannot change its input size; create it at img_size={img_size}")
        model.set_img_size(img_size)
    if hasattr(model, "patch_embed"):
        model.pretrained_cfg["input_size"] = (model.patch_embed.in_chans, *model.patch_embed.img_size)


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
    - a model name with timm weights (``vit_base_patch16_224``, timm's default tag: see ``PRETRAINED``);
    - timm's ``model.tag`` name (``vit_base_patch16_224.augreg_in21k_ft_in1k``, the Hub repo
      ``timm/<model.tag>``) for any of our architectures (``vit_lessons.list_models()``);
    - a Hub repo id: ``timm/...`` or Hugging Face's layout (``google/vit-base-patch16-224``).

    A name is looked up in :func:`weights_dir` first, then in huggingface_hub's cache (offline too),
    and downloaded with ``hf_hub_download`` (``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE`` apply) when
    the Hub answers.

    ``num_classes`` replaces the head with a new one (transfer learning); ``img_size`` resamples the
    position embedding to a new resolution. Offline and not cached, a name fails fast with
    :class:`OfflineError` saying which file to download, from where, and where to put it; a download
    that fails raises :class:`DownloadError` and keeps nothing half-written.
    """
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(f"name_or_path must be a model name or a file path, got {type(name_or_path).__name__}")
    path, source, model_name = _locate(name_or_path, model_name)
    state_dict = _read_checkpoint(path)
    layout = _looks_like(state_dict)
    config = _read_json(path.with_name("config.json"))  # Hugging Face's, or timm's (with pretrained_cfg)
    converted = convert_hf_state_dict(state_dict) if layout == "hf" else state_dict
    if layout == "hf":
        num_heads = num_heads or config.get("num_attention_heads")
    model_name = model_name or _architecture_named(path, layout, config)
    model = _build(model_name, converted, num_heads, device)
    if layout == "hf":
        load_hf_state_dict(model, state_dict, config.get("layer_norm_eps", HF_LAYER_NORM_EPS))
        _set_class_names(model, config)
    else:
        load_timm_state_dict(model, state_dict)
    model.pretrained_cfg = _pretrained_cfg(model_name, layout, path, source, config)
    _adapt(model, num_classes, img_size)
    return model.eval()
