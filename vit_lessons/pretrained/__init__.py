"""Pretrained weights in the course's own models: timm and Hugging Face checkpoints, inference.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``). The ViT paper's point
(Dosovitskiy et al. 2021, Sec. 4) is that a ViT pretrained on a large data set transfers well to
small ones. This package puts real weights into the models of ``vit_lessons``:

- :func:`load_timm_state_dict`: timm's ViT, DeiT and Swin checkpoints (our names are timm's; old
  checkpoints' extra buffers are dropped and a position embedding of another grid is resampled);
- :func:`load_hf_state_dict`: Hugging Face ``transformers`` ViT checkpoints
  (``ViTForImageClassification`` and ``ViTModel``), in the key layout of the files on the Hub and in
  that of current ``transformers`` releases; separate q/k/v are fused into our ``qkv``, and
  LayerNorm's eps becomes Hugging Face's 1e-12;
- :func:`from_pretrained`: a local ``.pt``/``.pth``/``.bin``/``.safetensors`` file, one of our model
  names, timm's ``model.tag`` (``vit_base_patch16_224.augreg_in21k_ft_in1k``) or a Hub repo id
  (``google/vit-base-patch16-224``), downloaded with huggingface_hub; offline and not cached it fails
  fast and says which file to download and where to put it;
- :func:`predict`: preprocessing from the model's config, top-k ``(label, probability)`` pairs;
- :func:`layer_decay_param_groups`: layer-wise learning-rate decay for fine-tuning.

Neither timm nor ``transformers`` is needed: checkpoints are plain state dicts.

The modules, lowest first (each imports only those above it):

- ``hub``: known weights (``PRETRAINED``), names and Hub repo ids, :func:`weights_dir`, downloads, the
  network check, :class:`OfflineError`, :class:`DownloadError`;
- ``convert``: timm and Hugging Face key conversion, :class:`CheckpointMismatchError`;
- ``transfer``: a new head, layer-wise learning-rate decay;
- ``inference``: :func:`preprocess_config`, :func:`predict`, :func:`imagenet_class_names`;
- ``build``: :func:`from_pretrained`.
"""

from __future__ import annotations

# Each "X as X" marks a name importable here, as before the split, though not in __all__: the key
# table lesson 12 shows. Stub the network check where it is called: vit_lessons.pretrained.hub.
from .build import from_pretrained
from .convert import HF_IGNORED as HF_IGNORED
from .convert import (
    HF_LAYER_NORM_EPS,
    CheckpointMismatchError,
    convert_hf_state_dict,
    load_hf_state_dict,
    load_timm_state_dict,
)
from .convert import HF_VIT_KEYS as HF_VIT_KEYS
from .hub import PRETRAINED, DownloadError, OfflineError, hub_reachable, weights_dir
from .inference import imagenet_class_names, predict, preprocess_config
from .transfer import layer_decay_param_groups

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
    "DownloadError",
    "PRETRAINED",
    "HF_LAYER_NORM_EPS",
    "weights_dir",
    "hub_reachable",
]
