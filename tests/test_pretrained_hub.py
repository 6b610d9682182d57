"""Weights by name, through huggingface_hub, against a Hub-shaped HTTP server on 127.0.0.1.

Pretrained weights cannot be fetched here, so the repos hold randomly initialised models written in
their real layouts: timm's (``model.safetensors`` + ``config.json`` with ``pretrained_cfg``, written by
``timm.models.save_for_hf``) and Hugging Face's (``save_pretrained``). The server answers
``/{repo}/resolve/{revision}/{file}`` as huggingface.co does (HEAD with ``X-Repo-Commit``, ``ETag``
and ``Content-Length``; GET with the bytes, ranges included; 404 with ``X-Error-Code``) and can
break a download mid-body. ``HF_ENDPOINT`` points at it; ``HF_HOME``/``HF_HUB_CACHE`` and
``VIT_LESSONS_WEIGHTS`` point at a fresh folder per test.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
import torch
from torch import nn

import vit_lessons.pretrained as pretrained
from vit_lessons.pretrained import DownloadError, OfflineError, from_pretrained
from vit_lessons.pretrained.hub import _fetch_by_name, _network_available, _probe_address, resolve_name

hf_hub = pytest.importorskip("huggingface_hub")
hf_constants = pytest.importorskip("huggingface_hub.constants")
pytestmark = pytest.mark.usefixtures("one_thread")  # a machine shared with other jobs: see conftest.py

TINY = "vit_tiny_patch16_224.augreg_in21k_ft_in1k"  # also the default tag of the bare name vit_tiny_patch16_224
BASE = "vit_base_patch16_224.augreg_in21k_ft_in1k"
HF_REPO = "google/vit-small-test"
OLD_REPO = "someone/old-timm-vit"  # only pytorch_model.bin, as older repos have
EMPTY_REPO = "someone/no-weights"  # only a README
OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VIT_LESSONS_OFFLINE")


# -- the server ----------------------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    """``/{owner}/{name}/resolve/{revision}/{file}`` as huggingface.co answers it; anything else 404."""

    def log_message(self, *args):  # keep the test output clean
        pass

    def do_HEAD(self):
        self._answer(body=False)

    def do_GET(self):
        self._answer(body=True)

    def _answer(self, body: bool):
        hub = self.server.hub
        match = re.match(r"^/([^/]+/[^/]+)/resolve/([^/]+)/(.+)$", unquote(urlsplit(self.path).path))
        hub.log.append((self.command, match.group(1, 3) if match else self.path, self.headers.get("Range")))
        if not match or match.group(1) not in hub.repos:
            return self._error(404, "RepoNotFound")
        repo, filename = match.group(1, 3)
        data = hub.repos[repo].get(filename)
        if data is None:
            return self._error(404, "EntryNotFound", repo)
        fault, resuming = (hub.faults.get((repo, filename)) if body else None), "Range" in self.headers
        if fault == "500" or (fault == "truncated" and resuming):
            return self._error(500, None, repo)  # the server fell over: the client's resume fails too
        first = int(re.match(r"bytes=(\d+)-", self.headers["Range"]).group(1)) if body and resuming else 0
        self._headers(repo, filename, first)
        if body:
            # "truncated", "truncated once": half the promised bytes, then the connection closes (as HTTP/1.0
            # does after each answer); "truncated once" then serves the client's resume (a Range request).
            cut = fault in ("truncated", "truncated once") and not resuming
            self.wfile.write(data[first : len(data) // 2] if cut else data[first:])

    def _headers(self, repo: str, filename: str, first: int):
        data = self.server.hub.repos[repo][filename]
        self.send_response(206 if first else 200)
        self.send_header("X-Repo-Commit", self.server.hub.commits[repo])
        self.send_header("ETag", f'"{self.server.hub.etags[repo, filename]}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - first))
        if first:
            self.send_header("Content-Range", f"bytes {first}-{len(data) - 1}/{len(data)}")
        self.end_headers()

    def _error(self, status: int, code: str | None, repo: str | None = None):
        self.send_response(status)
        if code:
            self.send_header("X-Error-Code", code)
        if repo:
            self.send_header("X-Repo-Commit", self.server.hub.commits[repo])
        self.send_header("Content-Length", "0")
        self.end_headers()


class FakeHub:
    """A Hub on 127.0.0.1 in a thread: ``repos`` {repo id: {file: bytes}}, a ``log`` of requests, ``faults``."""

    def __init__(self):
        self.repos, self.commits, self.etags, self.faults, self.log = {}, {}, {}, {}, []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.hub = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, repo_id: str, folder: Path):
        self.repos[repo_id] = {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}
        self.commits[repo_id] = hashlib.sha1(repo_id.encode()).hexdigest()  # 40 hex digits, as a git commit
        # The Hub's ETag of a weights file (an LFS file) is its sha256; computed once, it takes a while for 350 MB.
        self.etags.update({(repo_id, f): hashlib.sha256(data).hexdigest() for f, data in self.repos[repo_id].items()})

    def count(self, method: str, repo_id: str, filename: str) -> int:
        return sum(1 for m, target, _ in self.log if m == method and target == (repo_id, filename))

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# -- the repos -----------------------------------------------------------------------------------------
def _perturbed(model: nn.Module) -> nn.Module:
    """Every tensor moved a little off its initial value: LayerNorm = identity and zero biases would hide
    a swapped or dropped tensor."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def _timm_repo(folder: Path, name: str, **export) -> nn.Module:
    """A random timm model saved as timm pushes to the Hub: model.safetensors + config.json."""
    timm = pytest.importorskip("timm")
    model = _perturbed(timm.create_model(name, pretrained=False))
    timm.models.save_for_hf(model, str(folder), safe_serialization=True, **export)
    return model


@pytest.fixture(scope="module")
def hub():
    server = FakeHub()
    yield server
    server.close()


@pytest.fixture(scope="module")
def tiny(hub, tmp_path_factory):
    """timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k, its config exported with a crop of 0.95 (timm's
    default for the architecture is 0.9: the loaded preprocessing must come from the file)."""
    folder = tmp_path_factory.mktemp("tiny")
    model = _timm_repo(folder, TINY, data_config={"crop_pct": 0.95})
    hub.add(f"timm/{TINY}", folder)
    old = tmp_path_factory.mktemp("old")
    torch.save(model.state_dict(), old / "pytorch_model.bin")
    (old / "config.json").write_text((folder / "config.json").read_text())
    hub.add(OLD_REPO, old)
    empty = tmp_path_factory.mktemp("empty")
    (empty / "README.md").write_text("no weights here")
    hub.add(EMPTY_REPO, empty)
    return model


@pytest.fixture(scope="module")
def hf_vit(hub, tmp_path_factory):
    """A small google/vit-base-patch16-224-like repo: save_pretrained of a ViTForImageClassification
    and of its image processor."""
    transformers = pytest.importorskip("transformers")
    config = transformers.ViTConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        image_size=32,
        patch_size=8,
        num_labels=10,
        id2label={i: f"class {i}" for i in range(10)},
    )
    torch.manual_seed(0)
    model = _perturbed(transformers.ViTForImageClassification(config))
    folder = tmp_path_factory.mktemp("hf")
    model.save_pretrained(folder)
    processor = transformers.ViTImageProcessor(
        size={"height": 32, "width": 32}, image_mean=[0.4] * 3, image_std=[0.3] * 3, resample=3
    )
    processor.save_pretrained(folder)
    hub.add(HF_REPO, folder)
    return model


def _as_if_imported_with(monkeypatch, endpoint: str):
    """huggingface_hub's constants as its import makes them from HF_ENDPOINT: the endpoint, and the URL
    template built from it (``hf_hub_url`` swaps an ``endpoint=`` in only where the two agree)."""
    monkeypatch.setattr(hf_constants, "ENDPOINT", endpoint)
    template = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    monkeypatch.setattr(hf_constants, "HUGGINGFACE_CO_URL_TEMPLATE", template)


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    """HF_ENDPOINT at the server, a fresh huggingface_hub cache and weights folder, online. huggingface_hub
    reads these once, at import: its constants are set too, as they are when set before Python starts."""
    cache, weights = tmp_path / "hf" / "hub", tmp_path / "weights"
    for variable in (*OFFLINE_VARIABLES, "HUGGINGFACE_HUB_CACHE", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    for variable, value in {
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf"),
        "HF_HUB_CACHE": str(cache),
        "VIT_LESSONS_WEIGHTS": str(weights),
    }.items():
        monkeypatch.setenv(variable, value)
    _as_if_imported_with(monkeypatch, hub.url)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    hub.log.clear()
    hub.faults.clear()
    return type("Env", (), {"cache": cache, "weights": weights})


def _images(size=224):
    return torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(3))


def _assert_same_logits(ours: nn.Module, reference: nn.Module, size=224):
    with torch.no_grad():
        expected = reference(_images(size))
        expected = getattr(expected, "logits", expected)  # transformers returns an output object
        torch.testing.assert_close(ours(_images(size)), expected, atol=1e-4, rtol=0)


def _repo_files(cache: Path, repo_id: str) -> list[str]:
    """Every file of a repo in huggingface_hub's cache, relative to the repo's folder."""
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _dead_endpoint() -> str:
    """An address on 127.0.0.1 where nothing listens: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# -- downloads ---------------------------------------------------------------------------------------------
def test_timm_tag_downloads_from_the_hub_then_loads_from_the_cache(env, hub, tiny):
    repo = f"timm/{TINY}"
    model = from_pretrained(TINY)
    assert hub.count("GET", repo, "model.safetensors") == 1
    _assert_same_logits(model, tiny)  # strict keys: load_timm_state_dict refuses any missing or extra key
    assert model.pretrained_cfg["source"] == f"{hub.url}/{repo}"
    assert model.pretrained_cfg["crop_pct"] == 0.95  # timm's config.json beside the weights, not the default
    snapshot = Path(hf_hub.try_to_load_from_cache(repo, "model.safetensors", cache_dir=str(env.cache))).parent
    assert sorted(p.name for p in snapshot.iterdir()) == ["config.json", "model.safetensors"]
    assert not env.weights.exists()  # downloads go to huggingface_hub's cache only

    # Again: from the cache, no request at all; the other names of the same weights find the same file.
    requests = len(hub.log)
    again = from_pretrained(TINY)
    assert "huggingface_hub cache" in again.pretrained_cfg["source"]
    _assert_same_logits(again, tiny)
    for name in (repo, "vit_tiny_patch16_224", "timm/vit_tiny_patch16_224"):
        assert _fetch_by_name(name)[0] == snapshot / "model.safetensors"
    assert len(hub.log) == requests


@pytest.mark.parametrize("variable", OFFLINE_VARIABLES)
def test_offline_loads_what_the_cache_holds_without_connecting(env, hub, tiny, monkeypatch, variable):
    from_pretrained(TINY)
    monkeypatch.setenv(variable, "1")
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("offline mode must not connect"))
    requests = len(hub.log)
    _assert_same_logits(from_pretrained(TINY), tiny)
    assert len(hub.log) == requests


def test_hugging_face_repo_downloads_with_its_config_and_preprocessing(env, hub, hf_vit):
    model = from_pretrained(HF_REPO)
    assert {hub.count("GET", HF_REPO, f) for f in ("model.safetensors", "config.json")} == {1}
    _assert_same_logits(model, hf_vit, size=32)
    assert model.blocks[0].attn.num_heads == 2 and model.class_names[3] == "class 3"  # from config.json
    cfg = model.pretrained_cfg
    assert (cfg["mean"], cfg["std"], cfg["interpolation"]) == ((0.4,) * 3, (0.3,) * 3, "bicubic")
    requests = len(hub.log)
    _assert_same_logits(from_pretrained(HF_REPO), hf_vit, size=32)
    assert len(hub.log) == requests


def test_an_older_repo_with_only_pytorch_model_bin_loads(env, hub, tiny):
    model = from_pretrained(OLD_REPO)
    assert (
        hub.count("HEAD", OLD_REPO, "model.safetensors") == 1 and hub.count("GET", OLD_REPO, "pytorch_model.bin") == 1
    )
    assert model.pretrained_cfg["crop_pct"] == 0.95  # the architecture too comes from timm's config.json
    _assert_same_logits(model, tiny)


def test_endpoint_set_after_huggingface_hub_was_imported_is_used(env, hub, tiny, monkeypatch):
    # huggingface_hub still points at its import-time endpoint (here: nothing listens there).
    _as_if_imported_with(monkeypatch, _dead_endpoint())
    _assert_same_logits(from_pretrained(TINY), tiny)
    assert hub.count("GET", f"timm/{TINY}", "model.safetensors") == 1


# -- failures -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["truncated", "500"])
def test_a_broken_download_leaves_nothing_and_a_retry_succeeds(env, hub, tiny, fault):
    repo = f"timm/{TINY}"
    hub.faults[(repo, "model.safetensors")] = fault
    start = time.perf_counter()
    with pytest.raises(DownloadError) as info:
        from_pretrained(TINY)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert f"{hub.url}/{repo}/resolve/main/model.safetensors" in message and "Run the same call again" in message
    # No blob, no .incomplete file, no snapshot entry: nothing that a later call could take for the weights.
    assert not any(f.startswith(("blobs/", "snapshots/")) for f in _repo_files(env.cache, repo)), _repo_files(
        env.cache, repo
    )
    assert hf_hub.try_to_load_from_cache(repo, "model.safetensors", cache_dir=str(env.cache)) is None
    assert not env.weights.exists()
    if fault == "truncated":  # the client tried to resume the broken body, and the server failed that too
        assert any(method == "GET" and resume for method, _, resume in hub.log)

    del hub.faults[(repo, "model.safetensors")]  # the server is fixed
    _assert_same_logits(from_pretrained(TINY), tiny)
    assert "snapshots/" + hub.commits[repo] + "/model.safetensors" in _repo_files(env.cache, repo)


def test_a_connection_broken_mid_download_resumes(env, hub, tiny):
    repo = f"timm/{TINY}"
    hub.faults[(repo, "model.safetensors")] = "truncated once"
    _assert_same_logits(from_pretrained(TINY), tiny)
    # Resumed from what had arrived (whole chunks of it), not restarted: one plain GET, then a Range.
    ranges = [resume for method, target, resume in hub.log if (method, target) == ("GET", (repo, "model.safetensors"))]
    assert ranges[0] is None and len(ranges) == 2
    assert 0 < int(re.match(r"bytes=(\d+)-$", ranges[1]).group(1)) <= len(hub.repos[repo]["model.safetensors"]) // 2


def test_missing_repo_or_weights_say_so(env, hub, tiny):
    with pytest.raises(DownloadError, match="has no model repository 'timm/vit_tiny_patch16_224.no_such_tag'"):
        from_pretrained("vit_tiny_patch16_224.no_such_tag")
    with pytest.raises(DownloadError, match="has no model.safetensors or pytorch_model.bin"):
        from_pretrained(EMPTY_REPO)


def _assert_offline_error(error: OfflineError, url: str, target: Path):
    message = str(error)
    assert url in message, message
    assert f"put it at {target}" in message, message


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE=1", "unreachable"])
def test_offline_without_cache_fails_fast_naming_file_url_and_place(env, hub, monkeypatch, how):
    endpoint = hub.url
    if how == "unreachable":
        endpoint = _dead_endpoint()
        monkeypatch.setenv("HF_ENDPOINT", endpoint)
    else:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(OfflineError) as info:
        from_pretrained(BASE)
    assert time.perf_counter() - start < 5
    target = env.weights / f"timm--{BASE}" / "model.safetensors"
    _assert_offline_error(info.value, f"{endpoint}/timm/{BASE}/resolve/main/model.safetensors", target)
    assert "with config.json from the same folder beside it" in str(info.value)
    reason = f"cannot connect to {endpoint[len('http://') :]}" if how == "unreachable" else "HF_HUB_OFFLINE=1"
    assert f"no network ({reason}" in str(info.value)
    assert hub.log == []


def test_a_copy_put_where_the_offline_message_says_loads(env, hub, tiny, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError) as info:
        from_pretrained(TINY)
    target = Path(re.search(r"put it at (\S+model\.safetensors)", str(info.value)).group(1))
    target.parent.mkdir(parents=True)
    for filename in ("model.safetensors", "config.json"):
        (target.parent / filename).write_bytes(hub.repos[f"timm/{TINY}"][filename])
    model = from_pretrained(TINY)
    _assert_same_logits(model, tiny)
    assert model.pretrained_cfg["crop_pct"] == 0.95 and hub.log == []


@pytest.mark.slow
def test_vit_base_tag_downloads_and_loads_strictly(env, hub, tmp_path):
    """The name from timm's docs, ViT-B/16 (86M parameters, 350 MB): the weights are random, the path real."""
    folder = tmp_path / "base"
    try:
        reference = _timm_repo(folder, BASE)
        hub.add(f"timm/{BASE}", folder)
        model = from_pretrained(BASE)
        assert hub.count("GET", f"timm/{BASE}", "model.safetensors") == 1
        assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in reference.parameters()) > 86e6
        _assert_same_logits(model, reference)
        assert model.pretrained_cfg["source"] == f"{hub.url}/timm/{BASE}"
    finally:  # 350 MB in memory and twice on disk (pytest keeps the folders of recent runs): let them go
        hub.repos.pop(f"timm/{BASE}", None)
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(env.cache, ignore_errors=True)


# -- names and the network check (no server) -------------------------------------------------------------
def _repo_and_architecture(name):
    ref = resolve_name(name)
    return ref.repo_id, ref.model_name


def test_names_resolve_to_hub_repos_and_our_architectures():
    deit = "deit_small_patch16_224.fb_in1k"
    assert _repo_and_architecture(deit) == (f"timm/{deit}", "deit_small_patch16_224")
    assert _repo_and_architecture(f"timm/{BASE}") == (f"timm/{BASE}", "vit_base_patch16_224")
    default = pretrained.PRETRAINED["vit_base_patch16_224"]["hub_id"]
    assert _repo_and_architecture("vit_base_patch16_224") == (default, "vit_base_patch16_224")
    assert _repo_and_architecture("google/vit-base-patch16-224") == ("google/vit-base-patch16-224", None)
    with pytest.raises(ValueError, match="'resnet50' is not one of our architectures.*vit_base_patch16_224"):
        resolve_name("resnet50.a1_in1k")
    with pytest.raises(ValueError, match="Did you mean vit_base_patch16_224"):
        resolve_name("timm/vit_bse_patch16_224.augreg_in21k")
    with pytest.raises(ValueError, match="neither a checkpoint file nor a name"):
        resolve_name("runs/exp1/best")
    with pytest.raises(ValueError, match="'vit_cifar_patch4_32' is one of our models but has no published weights"):
        resolve_name("vit_cifar_patch4_32")
    assert resolve_name("timm/vit_tiny_patch16_224").name == "timm/vit_tiny_patch16_224"


def test_the_probe_goes_to_the_endpoints_host_and_port_or_its_proxy(monkeypatch):
    for variable in (*OFFLINE_VARIABLES, "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(variable, raising=False)
        monkeypatch.delenv(variable.lower(), raising=False)
    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    assert _probe_address("https://huggingface.co") == ("huggingface.co", 443)
    assert _probe_address("http://127.0.0.1:8765/") == ("127.0.0.1", 8765)
    assert _probe_address("https://mirror.example") == ("mirror.example", 443)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    assert _probe_address("https://huggingface.co") == ("proxy.example", 3128)
    monkeypatch.setenv("NO_PROXY", "huggingface.co")
    assert _probe_address("https://huggingface.co") == ("huggingface.co", 443)

    monkeypatch.delenv("HTTPS_PROXY")
    calls = []

    def connect(address, timeout=None, **kwargs):
        calls.append(address)
        raise OSError("refused")

    monkeypatch.setattr(socket, "create_connection", connect)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:8765")
    assert _network_available() is False and calls == [("127.0.0.1", 8765)]


def test_without_huggingface_hub_names_still_say_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # `import huggingface_hub` now fails
    monkeypatch.setenv("VIT_LESSONS_WEIGHTS", str(tmp_path))
    monkeypatch.setenv("HF_ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(pretrained.hub, "_network_available", lambda *a, **k: True)
    with pytest.raises(ImportError, match=rf"pip install huggingface_hub.*https://huggingface.co/timm/{TINY}/resolve"):
        from_pretrained(TINY)
    monkeypatch.setattr(pretrained.hub, "_network_available", lambda *a, **k: False)
    with pytest.raises(OfflineError, match=f"put it at {re.escape(str(tmp_path))}"):
        from_pretrained(TINY)


def test_lesson_12_hugging_face_side_by_side_runs_against_the_hub(env, hub, hf_vit):
    # The lesson's own function, read from its source: transformers' AutoImageProcessor and
    # ViTForImageClassification (eager attention, attention maps) beside our from_pretrained.
    from helpers.lessons import lesson_functions

    names = {"hugging_face_side_by_side"}
    namespace = lesson_functions(
        "12_pretrained_and_transfer", names, {"torch": torch, "from_pretrained": from_pretrained}
    )
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3), dtype=np.uint8)  # (H, W, C) photo
    result = namespace["hugging_face_side_by_side"](HF_REPO, image)
    assert result["max_logit_difference"] < 1e-4, result
    assert result["attention_maps"] == (2, (1, 2, 17, 17)) and result["label"].startswith("class ")
