"""CIFAR-10 on this machine: found under the data root, read (torchvision batches, an ImageFolder tree
or a ``.tar.gz`` of one), cached, and downloaded through torchvision when missing and online.

Taught in lesson 08 (``notebooks/08_training_cifar10.ipynb``); the package's view of where data
comes from is in :mod:`vit_lessons.data`.
"""

from __future__ import annotations

import io
import os
import pickle
import shutil
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from ..settings import data_root
from .loaders import ArrayDataset

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and std of CIFAR-10's training images (pixel values in 0..1).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
# torchvision's CIFAR-10 layout (CIFAR10.base_folder, .filename, its batches), named here so that
# finding the data never imports torchvision; downloading asks torchvision itself.
_TORCHVISION_FOLDER = "cifar-10-batches-py"
_TORCHVISION_ARCHIVE = "cifar-10-python.tar.gz"
_TORCHVISION_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6)) + ("test_batch",)
_OFFLINE_ENV = "VIT_LESSONS_OFFLINE"
_PROBE_TIMEOUT = 2.0  # seconds for the download host to accept a connection before we call it offline
_STALL_TIMEOUT = 60.0  # seconds without a byte before a stalled download is abandoned


# -- CIFAR-10 ------------------------------------------------------------------------------------
def _not_found_message(folder: Path, reason: str | None = None, url: str | None = None) -> str:
    """What was searched, why nothing was downloaded (``reason``) and, step by step, how to get the data."""
    # A data root that names an archive is read, never downloaded into: the data then goes next to it.
    home = folder.parent if folder.name.endswith(_ARCHIVE_SUFFIXES) else folder
    head = "CIFAR-10 was not found" + (f" and was not downloaded: {reason}" if reason else "")
    url = url or "the URL in torchvision.datasets.CIFAR10.url"
    return (
        f"{head}.\n"
        f"Searched: {folder}\n"
        "Get it (about 170 MB, once) one of these ways:\n"
        f"  - online, load_cifar10() downloads it into {home} by itself; or run\n"
        f"    python -c \"import torchvision; torchvision.datasets.CIFAR10(r'{home}', download=True)\";\n"
        f"  - offline: on a machine with internet download {url},\n"
        f"    then put that file in {home} (load_cifar10 unpacks it), or unpack it there yourself:\n"
        f"    tar -xzf {_TORCHVISION_ARCHIVE} -C {home}   (giving {home / _TORCHVISION_FOLDER});\n"
        "  - or set VIT_LESSONS_DATA (or --data-dir) to a folder that holds cifar-10-batches-py/, an ImageFolder\n"
        "    tree train/<class>/*.png and test/<class>/*.png, or a .tar.gz of such a tree (the course's\n"
        "    cifar10-jpeg.tar.gz), or to that .tar.gz itself.\n"
        "Without it, train on the offline digits set: --config digits."
    )


def _imagefolder_root(folder: Path) -> Path | None:
    for candidate in (folder, folder / "cifar10", folder / "cifar10-jpeg", folder / "cifar-10"):
        if (candidate / "train").is_dir() and (candidate / "test").is_dir():
            return candidate
    return None


def _has_batches(folder: Path) -> bool:
    """True when ``folder`` holds all six of torchvision's batches (an interrupted copy does not count)."""
    return all((folder / name).is_file() for name in _TORCHVISION_BATCHES)


def _search(folder: Path) -> tuple[str, Path] | None:
    if folder.is_file() and folder.name.endswith(_ARCHIVE_SUFFIXES) and folder.name != _TORCHVISION_ARCHIVE:
        return "tar", folder
    if not folder.is_dir():
        return None
    for tv in (folder / _TORCHVISION_FOLDER, folder):
        if _has_batches(tv):
            return "torchvision", tv
    tree = _imagefolder_root(folder)
    if tree is not None:
        return "imagefolder", tree
    # torchvision's own archive holds pickled batches, not an ImageFolder tree: load_cifar10 unpacks it instead
    archives = sorted(
        p for p in folder.glob("*.tar.gz") if "cifar" in p.name.lower() and p.name != _TORCHVISION_ARCHIVE
    )
    return ("tar", archives[0]) if archives else None


def find_cifar10(root: str | Path | None = None) -> tuple[str, Path]:
    """Locate CIFAR-10: ``("torchvision" | "imagefolder" | "tar", path)``; FileNotFoundError with help.

    ``root`` may be a folder or a ``.tar.gz``; without it, the data root (which may also be either).
    """
    folder = Path(root).expanduser() if root is not None else data_root()
    found = _search(folder)
    if found is None:
        raise FileNotFoundError(_not_found_message(folder))
    return found


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``<data root>/cache`` if writable, else ``~/.cache/vit_lessons/cache``."""
    for folder in (data_root() / "cache", Path.home() / ".cache" / "vit_lessons" / "cache"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            if os.access(folder, os.W_OK):
                return folder
        except OSError:
            continue
    return Path(tempfile.gettempdir())


def _decode(data: bytes) -> np.ndarray:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1)  # (3, H, W)


def _tar_members(path: Path):
    """(name, read()) for each regular file of a ``.tar.gz``. Decompresses in one C call and walks the
    512-byte tar headers directly: ten times faster than ``tarfile`` on 60,000 small members. Archives
    with headers it does not know (pax, sparse, ...) go through ``tarfile`` instead."""
    import gzip

    try:
        with gzip.open(path) as handle:
            raw = handle.read()
    except OSError as error:
        raise ValueError(f"{path} is not a readable .tar.gz ({error}); re-download or re-create it") from error
    position, members, long_name = 0, [], None
    while position + 512 <= len(raw):
        header = raw[position : position + 512]
        if header[0] == 0:
            break
        kind = header[156:157]
        try:
            size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        except ValueError:
            kind = b"?"
        if kind not in (b"0", b"\0", b"5", b"L"):
            yield from _tar_members_slow(path)
            return
        data_start = position + 512
        position = data_start + (size + 511) // 512 * 512
        if kind == b"L":  # GNU long name: the data is the next member's name
            long_name = raw[data_start : data_start + size].rstrip(b"\0").decode()
            continue
        name = long_name or (
            header[345:500].rstrip(b"\0") + b"/" if header[257:262] == b"ustar" and header[345] else b""
        )
        if not long_name:
            name = (name + header[:100].rstrip(b"\0")).decode()
        long_name = None
        if kind in (b"0", b"\0"):
            members.append((name, data_start, size))
    for name, start, size in members:
        yield name, (lambda start=start, size=size: raw[start : start + size])


def _tar_members_slow(path: Path):
    with tarfile.open(path, "r:*") as archive:
        for member in archive:
            if member.isfile():
                yield member.name, (lambda member=member: archive.extractfile(member).read())


def _read_tar(path: Path, per_class: dict[str, int | None]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode ``split/<class>/*`` members of an ImageFolder ``.tar.gz``, streaming it once.

    ``per_class`` maps a split to how many images per class to keep (None: all). Members are taken
    in archive order, sorted by name within a class, so a subset is the same on every machine.
    """
    found: dict[str, dict[str, list[tuple[str, bytes]]]] = {split: {} for split in per_class}
    for member_name, read in _tar_members(path):
        parts = member_name.lstrip("./").split("/")
        if len(parts) < 3 or parts[-3] not in per_class or not parts[-1].lower().endswith(_IMAGE_SUFFIXES):
            continue
        split, label = parts[-3], parts[-2]
        bucket = found[split].setdefault(label, [])
        limit = per_class[split]
        if limit is None or len(bucket) < limit:
            bucket.append((parts[-1], read()))
    result = {}
    for split, by_class in found.items():
        classes = sorted(by_class)
        if not classes:
            raise ValueError(f"archive {path} has no {split}/<class>/<image> members; expected an ImageFolder tree")
        images, labels = [], []
        for label_index, name in enumerate(classes):
            for _, data in sorted(by_class[name]):
                images.append(_decode(data))
                labels.append(label_index)
        result[split] = (np.stack(images), np.asarray(labels, dtype=np.int64), tuple(classes))
    return result


def _read_imagefolder(tree: Path, split: str, per_class: int | None):
    classes = sorted(p.name for p in (tree / split).iterdir() if p.is_dir())
    images, labels = [], []
    for label_index, name in enumerate(classes):
        files = sorted(p for p in (tree / split / name).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        for file in files[:per_class]:
            images.append(_decode(file.read_bytes()))
            labels.append(label_index)
    return np.stack(images), np.asarray(labels, dtype=np.int64), tuple(classes)


def _read_torchvision(folder: Path):
    def batch(name):
        with open(folder / name, "rb") as handle:
            entry = pickle.load(handle, encoding="bytes")
        # The original batches are Python 2 pickles (bytes keys here); re-packed copies have str keys.
        entry = {key.decode() if isinstance(key, bytes) else key: value for key, value in entry.items()}
        return entry["data"].reshape(-1, 3, 32, 32), np.asarray(entry["labels"], dtype=np.int64)  # (N, 3, 32, 32)

    train = [batch(f"data_batch_{i}") for i in range(1, 6)]
    test = batch("test_batch")
    return {
        "train": (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train]), CIFAR10_CLASSES),
        "test": (test[0], test[1], CIFAR10_CLASSES),
    }


def _save_npz_atomic(path: Path, arrays: dict) -> None:
    handle, temp = tempfile.mkstemp(dir=path.parent, suffix=".tmp.npz")
    os.close(handle)
    try:
        np.savez(temp, **arrays)
        os.replace(temp, path)
    finally:
        if os.path.exists(temp):
            os.remove(temp)


# -- downloading CIFAR-10 ------------------------------------------------------------------------
class DownloadError(OSError):
    """Downloading (or unpacking) CIFAR-10 failed. Nothing half-written was kept: running again starts clean."""


def _torchvision_cifar10():
    # torchvision's class holds the URL, the md5 sums and the folder name; tests point its URL elsewhere.
    from torchvision.datasets import CIFAR10

    return CIFAR10


def _offline_mode() -> bool:
    return os.environ.get(_OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _unreachable(url: str, timeout: float) -> str | None:
    """Why ``url``'s host cannot be reached now, or None when it accepts a connection within ``timeout``.

    Name resolution can block far longer than a socket timeout, so the probe runs in a daemon thread
    and we stop waiting after ``timeout``: offline, the student hears so in seconds."""
    import socket
    import threading
    from urllib.parse import urlparse

    parts = urlparse(url)
    host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    outcome = []

    def probe():
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except Exception as error:  # refused, unreachable, no DNS, ...: all mean "cannot download now"
            outcome.append(f"cannot reach {host}:{port} ({str(error) or type(error).__name__})")

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"{host}:{port} did not answer within {timeout:g} s"


def _why_not_download(folder: Path, url: str, probe: bool) -> str | None:
    """None when a download into ``folder`` can start; else the reason, for the FileNotFoundError."""
    if folder.name.endswith(_ARCHIVE_SUFFIXES):
        return f"{folder} does not exist (an archive is read, never downloaded to: check the path)"
    if folder.exists() and not folder.is_dir():
        return f"{folder} is a file, neither a folder nor a .tar.gz"
    if _offline_mode():
        return f"offline mode is set ({_OFFLINE_ENV}=1)"
    return _unreachable(url, _PROBE_TIMEOUT) if probe else None


def _fetch(cifar10, staging: Path) -> None:
    """torchvision downloads the archive into ``staging``, checks its md5, unpacks it and checks every batch."""
    import http.client
    import socket
    import urllib.error

    def failed(what: str) -> DownloadError:
        return DownloadError(
            f"downloading CIFAR-10 from {cifar10.url} failed: {what}. Nothing was kept; run again to retry."
        )

    # torchvision reads without a timeout: a stalled connection would hang the lesson with a frozen progress bar.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_STALL_TIMEOUT)
    try:
        cifar10(str(staging), train=False, download=True)
    except urllib.error.HTTPError as error:
        raise failed(f"the server answered HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise failed(f"cannot connect ({error.reason})") from error
    except TimeoutError as error:
        raise failed(f"no data arrived for {_STALL_TIMEOUT:g} s") from error
    except RuntimeError as error:  # torchvision's md5 checks, of the archive and of each batch
        raise failed("the file arrived incomplete or corrupted (its md5 checksum does not match)") from error
    except (OSError, EOFError, tarfile.TarError, http.client.HTTPException) as error:
        raise failed(f"{type(error).__name__}: {error}") from error
    finally:
        socket.setdefaulttimeout(previous)


def _move_into_place(unpacked: Path, final: Path) -> None:
    """Rename the verified folder to ``final``: one step, so ``final`` is never half there."""
    if _has_batches(final):
        return  # another process (another torchrun rank, a second notebook) finished first: keep its copy
    try:
        if final.exists():
            # an incomplete copy that find_cifar10 ignores (an interrupted manual unpack): swapped out,
            # and deleted with the staging folder
            os.replace(final, unpacked.parent / "incomplete")
        os.replace(unpacked, final)
    except OSError as error:
        if not _has_batches(final):  # not a lost race with another process: a real failure
            raise DownloadError(
                f"cannot move the downloaded CIFAR-10 to {final} ({error}); run again to retry"
            ) from error


def download_cifar10(root: str | Path | None = None) -> Path:
    """Download torchvision's CIFAR-10 into ``root`` (default: the data root), once; returns its batch folder.

    The archive (about 170 MB, from ``torchvision.datasets.CIFAR10.url``) is downloaded, checked against
    its md5 and unpacked in a temporary folder inside ``root``; only the verified ``cifar-10-batches-py/``
    is moved into place, in one rename. A failed, interrupted or corrupt download therefore leaves nothing
    behind, and raises :class:`DownloadError` naming the URL and what went wrong. An archive already
    saved as ``root/cifar-10-python.tar.gz`` (downloaded by hand) is unpacked instead, without network.
    """
    cifar10 = _torchvision_cifar10()
    folder = Path(root).expanduser() if root is not None else data_root()
    final = folder / cifar10.base_folder
    if _has_batches(final):
        return final
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".cifar10-download-", dir=folder))
    except OSError as error:
        raise DownloadError(
            f"cannot write CIFAR-10 into {folder} ({error}); "
            "point VIT_LESSONS_DATA (or --data-dir) at a writable folder"
        ) from error
    try:
        local = folder / cifar10.filename
        if local.is_file():
            _stage_local_archive(cifar10, local, staging)
            print(f"CIFAR-10: unpacking {local} into {final}", flush=True)
        else:
            print(f"CIFAR-10: downloading {cifar10.url} (about 170 MB, once) into {final}", flush=True)
        _fetch(cifar10, staging)
        _move_into_place(staging / cifar10.base_folder, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def _stage_local_archive(cifar10, archive: Path, staging: Path) -> None:
    """Put a hand-downloaded archive where torchvision looks first, after checking it is the right file."""
    from torchvision.datasets.utils import check_integrity

    if not check_integrity(str(archive), cifar10.tgz_md5):
        # torchvision would silently download over it; say instead that this file is bad
        raise DownloadError(
            f"{archive} is incomplete or corrupted (its md5 is not {cifar10.tgz_md5}): "
            f"delete it and download {cifar10.url} again"
        )
    try:
        os.link(archive, staging / cifar10.filename)  # no copy on the same disk
    except OSError:
        shutil.copyfile(archive, staging / cifar10.filename)


def _find_or_download(root, download) -> tuple[str, Path]:
    """find_cifar10, and when nothing is found, download (``download`` allowing) or say why not and what to do."""
    folder = Path(root).expanduser() if root is not None else data_root()
    if folder.name == _TORCHVISION_ARCHIVE:
        folder = folder.parent  # torchvision's own archive, downloaded by hand: unpacked next to itself
    try:
        return find_cifar10(folder)
    except FileNotFoundError:
        if not download:
            raise
    cifar10 = _torchvision_cifar10()
    if not (folder / cifar10.filename).is_file():  # an archive downloaded by hand is unpacked without network
        reason = _why_not_download(folder, cifar10.url, probe=download == "auto")
        if reason:
            raise FileNotFoundError(_not_found_message(folder, reason, cifar10.url)) from None
    download_cifar10(folder)
    return find_cifar10(folder)


def load_cifar10(
    root: str | Path | None = None,
    per_class_train: int | None = None,
    per_class_test: int | None = None,
    download: bool | str = "auto",
    use_cache: bool = True,
) -> tuple[ArrayDataset, ArrayDataset]:
    """CIFAR-10 as uint8 arrays: train (50,000, 3, 32, 32) and test (10,000, 3, 32, 32).

    ``root`` is a folder or a ``.tar.gz`` (default: the data root, ``VIT_LESSONS_DATA`` or
    ``~/.cache/vit_lessons/data``). ``per_class_train``/``per_class_test`` keep the first k images of each
    class (quick runs; from a ``.tar.gz`` only those are decoded). A whole archive is decoded once and
    cached (``cache_dir()``).

    When CIFAR-10 is not found, ``download`` decides: ``"auto"`` (default) downloads it with
    :func:`download_cifar10` into that folder if the download host answers within a couple of seconds
    and ``VIT_LESSONS_OFFLINE`` is not set; ``True`` downloads without asking the host first; ``False``
    never does. Otherwise FileNotFoundError, raised within seconds, says how to get the data by hand.
    ``VIT_LESSONS_OFFLINE=1`` stops every download. A failed download raises :class:`DownloadError` and
    leaves nothing behind. ``root`` (or the data root) may also be torchvision's archive,
    ``cifar-10-python.tar.gz``, downloaded by hand: it is unpacked next to itself, once.
    """
    if download not in (True, False, "auto"):
        raise ValueError(f"download must be True, False or 'auto', got {download!r}")
    for name, value in (("per_class_train", per_class_train), ("per_class_test", per_class_test)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ValueError(f"{name} must be a positive int or None, got {value!r}")
    kind, path = _find_or_download(root, download)

    subset = per_class_train is not None or per_class_test is not None
    if kind == "torchvision":
        splits = _read_torchvision(path)
    elif kind == "imagefolder":
        splits = {s: _read_imagefolder(path, s, k) for s, k in (("train", per_class_train), ("test", per_class_test))}
    elif subset:
        splits = _read_tar(path, {"train": per_class_train, "test": per_class_test})
    else:
        stat = path.stat()
        cached = cache_dir() / f"{path.name.split('.')[0]}-{stat.st_size}.npz"
        if use_cache and cached.is_file():
            with np.load(cached) as arrays:
                classes = tuple(str(c) for c in arrays["classes"])
                splits = {s: (arrays[f"{s}_images"], arrays[f"{s}_labels"], classes) for s in ("train", "test")}
        else:
            splits = _read_tar(path, {"train": None, "test": None})
            if use_cache:
                arrays = {
                    f"{s}_{k}": v for s, (im, lab, _) in splits.items() for k, v in (("images", im), ("labels", lab))
                }
                _save_npz_atomic(cached, {**arrays, "classes": np.asarray(splits["train"][2])})

    datasets = []
    for split, per_class in (("train", per_class_train), ("test", per_class_test)):
        images, labels, classes = splits[split]
        if len(classes) != 10:
            raise ValueError(f"CIFAR-10 at {path} has {len(classes)} classes in {split}/, expected 10: {classes}")
        dataset = ArrayDataset(images, labels, tuple(classes), CIFAR10_MEAN, CIFAR10_STD, f"{kind}:{path}")
        datasets.append(dataset.subset(per_class) if kind == "torchvision" else dataset)
    return datasets[0], datasets[1]
