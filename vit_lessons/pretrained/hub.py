"""Where pretrained weights come from: the known weights, Hub repo ids, the local cache, downloads.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``). A name is one of ours with
timm weights (``PRETRAINED``) or a Hugging Face repo id (``owner/name``); it is looked up in
:func:`weights_dir` first and downloaded from the Hub when online. Offline it fails fast with
:class:`OfflineError`, saying which file to download and where to put it.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["OfflineError", "PRETRAINED", "weights_dir"]


class OfflineError(ConnectionError):
    """Weights were asked for by name but cannot be downloaded: the message says what to fetch and
    where to put it."""


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
