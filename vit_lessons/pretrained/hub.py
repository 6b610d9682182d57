"""Where pretrained weights come from: names, Hub repo ids, the local copies, downloads, offline errors.

Taught in lesson 12 (``notebooks/src/12_pretrained_and_transfer.py``). A name is one of

- ours with timm's default weights (``vit_base_patch16_224``, see ``PRETRAINED``);
- timm's own ``model.tag`` (``vit_base_patch16_224.augreg_in21k_ft_in1k``), the Hub repo
  ``timm/<model.tag>``; the part before the dot must be one of our architectures;
- a Hub repo id (``timm/...``, ``google/vit-base-patch16-224``).

It is looked for in :func:`weights_dir` (a copy put there by hand), then in huggingface_hub's
cache, and downloaded with ``hf_hub_download`` (which honours ``HF_ENDPOINT``, ``HF_HOME``,
``HF_HUB_CACHE``) when the Hub answers. Offline it fails within seconds with :class:`OfflineError`
naming the file, its URL and where to put it; a download that breaks raises :class:`DownloadError`
and leaves nothing half-written behind.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "OfflineError",
    "DownloadError",
    "PRETRAINED",
    "weights_dir",
    "hub_endpoint",
    "hub_url",
    "hub_reachable",
    "resolve_name",
]


class OfflineError(ConnectionError):
    """Weights were asked for by name but cannot be downloaded: the message says what to fetch and
    where to put it."""


class DownloadError(OSError):
    """A download from the Hub failed (no such repo or file, a server error, a broken connection):
    the message says why and what to do. Nothing half-written is kept."""


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
    "deit_small_distilled_patch16_224": dict(hub_id="timm/deit_small_distilled_patch16_224.fb_in1k", **_IMAGENET),
    "deit_base_distilled_patch16_224": dict(hub_id="timm/deit_base_distilled_patch16_224.fb_in1k", **_IMAGENET),
    "swin_tiny_patch4_window7_224": dict(hub_id="timm/swin_tiny_patch4_window7_224.ms_in1k", **_IMAGENET),
    "swin_small_patch4_window7_224": dict(hub_id="timm/swin_small_patch4_window7_224.ms_in22k_ft_in1k", **_IMAGENET),
    "swin_base_patch4_window7_224": dict(hub_id="timm/swin_base_patch4_window7_224.ms_in22k_ft_in1k", **_IMAGENET),
}
_HF_DEFAULT = dict(mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), crop_pct=1.0, interpolation="bilinear")
_CHECKPOINT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
_DEFAULT_ENDPOINT = "https://huggingface.co"
# The weights of a Hub repo, preferred first (older repos have only the pickle), and the small files
# read beside them: timm's config.json (architecture, preprocessing) or Hugging Face's (heads, eps,
# labels) and its preprocessor_config.json.
WEIGHTS_FILES = ("model.safetensors", "pytorch_model.bin")
_EXTRA_FILES = ("config.json", "preprocessor_config.json")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIT_LESSONS_OFFLINE")
_PROBE_TIMEOUT = 2.0


def weights_dir() -> Path:
    """Where weights put there by hand are looked for: ``VIT_LESSONS_WEIGHTS`` or ``~/.cache/vit_lessons/weights``."""
    root = os.environ.get("VIT_LESSONS_WEIGHTS")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "vit_lessons" / "weights"


# -- names ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WeightsRef:
    """What a name stands for: its Hub repo, our architecture when the name says it, and where a copy
    made by hand is looked for (the first is where the offline message says to put it)."""

    name: str
    repo_id: str
    model_name: str | None
    local_files: tuple[Path, ...]


def _architectures() -> list[str]:
    from .. import list_models

    return list_models()


def _did_you_mean(name: str, choices) -> str:
    import difflib

    close = difflib.get_close_matches(name, choices, n=3)
    return f" Did you mean {', '.join(close)}?" if close else ""


def _timm_ref(name: str, model_tag: str) -> WeightsRef:
    """``model.tag`` as timm names weights; its repo is ``timm/<model.tag>``."""
    architecture = model_tag.split(".", 1)[0]
    ours = _architectures()
    if architecture not in ours:
        raise ValueError(
            f"{name!r}: timm's {architecture!r} is not one of our architectures.{_did_you_mean(architecture, ours)} "
            f"The weights' architecture (the part before the dot) must be one of: {', '.join(ours)}"
        )
    folder = weights_dir() / f"timm--{model_tag}"
    return WeightsRef(name, f"timm/{model_tag}", architecture, tuple(folder / f for f in WEIGHTS_FILES))


def resolve_name(name: str) -> WeightsRef:
    """The Hub repo and architecture a name stands for; ValueError, listing the choices, if none."""
    if name in PRETRAINED:
        return WeightsRef(name, PRETRAINED[name]["hub_id"], name, (weights_dir() / f"{name}.safetensors",))
    if "/" not in name and "." in name:
        return _timm_ref(name, name)
    if _REPO_ID.match(name):
        owner, repo = name.split("/")
        if owner == "timm":  # timm/vit_base_patch16_224 means timm's default tag, as the bare name does
            return replace(resolve_name(repo), name=name) if repo in PRETRAINED else _timm_ref(name, repo)
        folder = weights_dir() / f"{owner}--{repo}"
        return WeightsRef(name, name, None, tuple(folder / f for f in WEIGHTS_FILES))
    if name in _architectures():
        raise ValueError(
            f"{name!r} is one of our models but has no published weights (train it, or load a checkpoint file); "
            f"the models with timm weights are: {', '.join(sorted(PRETRAINED))}"
        )
    raise ValueError(
        f"{name!r} is neither a checkpoint file nor a name of weights.{_did_you_mean(name, PRETRAINED)} Use a path to "
        "a .safetensors/.pt file, timm's model.tag (vit_base_patch16_224.augreg_in21k_ft_in1k), a Hub repo id "
        f"(google/vit-base-patch16-224), or one of: {', '.join(sorted(PRETRAINED))}"
    )


# -- the Hub's address, the cache, offline mode ------------------------------------------------------
def _hub_constants():
    """huggingface_hub's settings, read from the environment when it was imported; None if not imported."""
    return sys.modules.get("huggingface_hub.constants")


def hub_endpoint() -> str:
    """The Hub that names are downloaded from: ``HF_ENDPOINT`` as it is now (huggingface_hub reads it
    once, at import, and a notebook may set it later), else huggingface_hub's setting, else huggingface.co."""
    endpoint = os.environ.get("HF_ENDPOINT", "").strip() or getattr(_hub_constants(), "ENDPOINT", _DEFAULT_ENDPOINT)
    return endpoint.rstrip("/")


def hub_url(repo_id: str, filename: str, endpoint: str | None = None) -> str:
    """The address of a file of a Hub repo (its main branch), as ``hf_hub_download`` builds it."""
    return f"{endpoint or hub_endpoint()}/{repo_id}/resolve/main/{filename}"


def _hf_cache_dir() -> str | None:
    """``HF_HUB_CACHE`` or ``HF_HOME`` as they are now; None lets huggingface_hub use what it read at import."""
    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return os.path.expanduser(os.path.expandvars(os.environ[variable]))
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.path.expandvars(os.environ["HF_HOME"])), "hub")
    return None


def _offline_setting() -> str | None:
    """Which setting asks for offline mode, if any."""
    for variable in _OFFLINE_VARIABLES:
        if os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}:
            return f"{variable}={os.environ[variable]}"
    if getattr(_hub_constants(), "HF_HUB_OFFLINE", False):  # set when huggingface_hub was imported
        return "huggingface_hub's offline mode (HF_HUB_OFFLINE was set when it was imported)"
    return None


def _probe_address(endpoint: str) -> tuple[str, int]:
    """Where a connection to ``endpoint`` goes first: its host and port, or those of the proxy that
    huggingface_hub would go through (``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``, less ``NO_PROXY``)."""
    import urllib.request

    parts = urlsplit(endpoint)
    host = parts.hostname or "huggingface.co"
    address = (host, parts.port or (80 if parts.scheme == "http" else 443))
    proxies = urllib.request.getproxies_environment()
    proxy = proxies.get(parts.scheme or "https") or proxies.get("all")
    if proxy and not urllib.request.proxy_bypass_environment(host):
        proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if proxied.hostname:
            return proxied.hostname, proxied.port or (443 if proxied.scheme == "https" else 80)
    return address


def _reachable(host: str, port: int, timeout: float) -> bool:
    """Whether a TCP connection to ``host:port`` opens within ``timeout`` seconds.

    Name resolution can block far longer than a socket timeout, so the probe runs in a daemon
    thread and we stop waiting after ``timeout``."""
    import socket

    result = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except Exception:  # refused, unreachable, no DNS, or anything else: treat as offline
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def hub_reachable(timeout: float = _PROBE_TIMEOUT) -> bool:
    """Whether a download from the Hub can start now: no offline setting, and the endpoint (or its proxy)
    answers within ``timeout`` seconds. Lessons ask before calling other libraries' downloaders, which
    retry for a minute or more when offline."""
    return _network_available(timeout=timeout)


def _network_available(endpoint: str | None = None, timeout: float = _PROBE_TIMEOUT) -> bool:
    """False when offline mode is set, or the Hub at ``endpoint`` (default: :func:`hub_endpoint`), or the
    proxy in front of it, does not accept a connection within ``timeout`` seconds."""
    if _offline_setting():
        return False
    return _reachable(*_probe_address(endpoint or hub_endpoint()), timeout)


def _offline_message(ref: WeightsRef, endpoint: str, filename: str = WEIGHTS_FILES[0]) -> str:
    host, port = _probe_address(endpoint)
    reason = _offline_setting() or f"cannot connect to {host}:{port} within {_PROBE_TIMEOUT:g} s"
    target = ref.local_files[0]
    beside = ""
    if target.name in WEIGHTS_FILES:  # a repo's folder: its config says the architecture and preprocessing
        extras = _EXTRA_FILES[:1] if ref.repo_id.startswith("timm/") else _EXTRA_FILES
        beside = f", with {' and '.join(extras)} from the same folder beside it"
    model_name = f", model_name={ref.model_name!r}" if ref.model_name else ""
    return (
        f"cannot download the weights of {ref.name!r}: no network ({reason}). On a machine with internet download "
        f"{hub_url(ref.repo_id, filename, endpoint)} and put it at {target}{beside} (or anywhere, then "
        f"from_pretrained('path/to/{filename}'{model_name})). A download made online with huggingface_hub "
        "is cached and found offline too."
    )


# -- downloads -------------------------------------------------------------------------------------------
def _hub_download(repo_id: str, filename: str, endpoint: str) -> Path:
    """``hf_hub_download`` into huggingface_hub's cache, from ``endpoint`` and into the cache the
    environment names now (huggingface_hub read both once, at import, and a notebook may set them
    later). The path is the snapshot's, not the blob's, so the files of one repo sit side by side."""
    from huggingface_hub import hf_hub_download

    return Path(hf_hub_download(repo_id, filename, cache_dir=_hf_cache_dir(), endpoint=endpoint))


def _cached(repo_id: str, filename: str) -> Path | None:
    """A file of a repo's main branch in huggingface_hub's cache, else None. It only reads the disk:
    ``hf_hub_download(local_files_only=True)`` may first ask the Hub who is calling (huggingface_hub 2)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, filename, cache_dir=_hf_cache_dir())
    return Path(path) if isinstance(path, str) else None  # not a str: not cached, or cached as missing


def _from_cache(ref: WeightsRef) -> Path | None:
    """The weights in huggingface_hub's cache (a download completes before it is moved there)."""
    try:
        import huggingface_hub  # noqa: F401
    except ImportError:
        return None
    return next(filter(None, (_cached(ref.repo_id, filename) for filename in WEIGHTS_FILES)), None)


def _failure_kind(error: Exception) -> str:
    """What went wrong, from huggingface_hub's error classes, by name: their modules moved between versions."""
    names = {cls.__name__ for cls in type(error).__mro__}
    if "RepositoryNotFoundError" in names:  # also gated and private repos
        return "no repo"
    if "EntryNotFoundError" in names and "LocalEntryNotFoundError" not in names:
        return "no file"
    return "failed"


def _failure_message(ref: WeightsRef, endpoint: str, filename: str, error: Exception) -> str:
    kind = _failure_kind(error)
    if kind == "no repo":
        return (
            f"{endpoint} has no model repository {ref.repo_id!r} (or it is private or gated: accept its terms on "
            "the Hub and log in with `hf auth login`). Check the name; timm's weights are named model.tag, "
            "e.g. vit_base_patch16_224.augreg_in21k_ft_in1k (timm.list_pretrained('vit_*') lists them)"
        )
    if kind == "no file":
        return f"{endpoint}/{ref.repo_id} has no {' or '.join(WEIGHTS_FILES)}: is it a repository of PyTorch weights?"
    detail = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return (
        f"downloading {hub_url(ref.repo_id, filename, endpoint)} failed ({type(error).__name__}: {detail[:300]}). "
        "No half-written file is used: huggingface_hub downloads into a temporary .incomplete file and moves "
        "it into its cache only when complete. Run the same call again to retry, or download the file yourself "
        f"and put it at {ref.local_files[0]}"
    )


def _download_weights(ref: WeightsRef, endpoint: str) -> Path:
    failure = None
    for filename in WEIGHTS_FILES:
        try:
            return _hub_download(ref.repo_id, filename, endpoint)
        except Exception as error:
            failure = (filename, error)
            if _failure_kind(error) != "no file":
                break  # else an older repo, with only pytorch_model.bin: try that
    raise DownloadError(_failure_message(ref, endpoint, *failure)) from failure[1]


def _download(ref: WeightsRef, endpoint: str) -> Path:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as error:
        raise ImportError(
            "downloading weights needs huggingface_hub (pip install huggingface_hub), or download "
            f"{hub_url(ref.repo_id, WEIGHTS_FILES[0], endpoint)} yourself and pass its path"
        ) from error
    path = _download_weights(ref, endpoint)
    for extra in _EXTRA_FILES:
        try:
            _hub_download(ref.repo_id, extra, endpoint)
        except Exception:  # optional files: a repo may lack them, and the weights load without them
            pass
    return path


def _fetch_by_name(name: str) -> tuple[Path, str, str | None]:
    """The weights a name stands for: a copy in :func:`weights_dir`, else huggingface_hub's cache, else a
    download. Returns the file, where it came from, and our architecture when the name says it."""
    ref = resolve_name(name)
    for local in ref.local_files:
        if local.is_file():
            return local, f"{local} (weights of {ref.repo_id})", ref.model_name
    endpoint = hub_endpoint()
    cached = _from_cache(ref)
    if cached is not None:
        return cached, f"{ref.repo_id} (huggingface_hub cache: {cached})", ref.model_name
    if not _network_available(endpoint):
        raise OfflineError(_offline_message(ref, endpoint))
    return _download(ref, endpoint), f"{endpoint}/{ref.repo_id}", ref.model_name
