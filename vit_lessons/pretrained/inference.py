"""Inference with a pretrained model: preprocessing from its config, then the top-k labels of each image.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``): :func:`predict` takes file
paths, PIL or numpy images (or a preprocessed tensor), resizes, centre-crops and normalises them as
the weights were trained (:func:`preprocess_config`), and returns ``(label, probability)`` pairs;
:func:`imagenet_class_names` gives the labels of a 1000-class model.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .hub import _AUGREG

__all__ = ["predict", "imagenet_class_names", "preprocess_config"]


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


def _label_names(model: nn.Module, class_names, num_classes: int) -> list[str] | None:
    """``class_names``, else ``model.class_names``, else ImageNet's for 1000 classes; None: use indices."""
    names = class_names if class_names is not None else getattr(model, "class_names", None)
    if names is None and num_classes == 1000:
        names = imagenet_class_names()
    if names is not None:
        names = list(names)
        if len(names) != num_classes:
            raise ValueError(f"{len(names)} class names for a model with {num_classes} classes; give one per class")
    return names


def _batch(images_or_paths, config: dict) -> torch.Tensor:
    """A (B, C, H, W) batch: a tensor as it is (a batch of one for (C, H, W)), images preprocessed."""
    if isinstance(images_or_paths, torch.Tensor):
        return images_or_paths.unsqueeze(0) if images_or_paths.ndim == 3 else images_or_paths  # (B, C, H, W)
    items = images_or_paths if isinstance(images_or_paths, (list, tuple)) else [images_or_paths]
    if not items:
        raise ValueError("no images given")
    transform = _transform(config)
    mode = "L" if config["input_size"][0] == 1 else "RGB"
    return torch.stack([transform(_to_pil(item, i).convert(mode)) for i, item in enumerate(items)])  # (B, C, H, W)


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
    names = _label_names(model, class_names, num_classes)
    parameter = next(model.parameters())
    batch = _batch(images_or_paths, preprocess_config(model))
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
