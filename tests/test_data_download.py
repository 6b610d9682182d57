"""CIFAR-10 online: load_cifar10 downloads it through torchvision's real client, from a local HTTP server
standing in for the download host, into the data root, once; offline it fails fast with instructions, and
a broken or corrupt download raises a clear error and leaves nothing behind."""

import hashlib
import shutil
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers.cifar_release import cifar_release

from vit_lessons.data import CIFAR10_CLASSES, DownloadError, cifar10, find_cifar10, load_cifar10

CIFAR10 = pytest.importorskip("torchvision.datasets").CIFAR10
PER_BATCH = 10  # images in each of the six batches: labels 0..9 once
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def _pixels(batch_index: int) -> np.ndarray:
    # image i of batch b is filled with b * 20 + i: which file a loaded image came from can be read off it
    values = batch_index * 20 + np.arange(PER_BATCH, dtype=np.uint8)
    return np.repeat(values[:, None], 3 * 32 * 32, axis=1)  # (PER_BATCH, 3072)


@pytest.fixture(scope="module")
def release():
    """Built once: a torchvision-format cifar-10-python.tar.gz and the md5 sums torchvision checks."""
    archive, md5 = cifar_release(_pixels)
    return {"archive": archive, "md5": md5}


class _Host(ThreadingHTTPServer):
    """Serves the archive at any path. ``mode``: "ok"; "500"; "truncate" (a Content-Length the body never
    reaches, then the connection closes); "stall" (half the body, then silence until the test ends)."""

    daemon_threads = True

    def __init__(self, archive: bytes):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.archive, self.mode, self.hits, self.release_stall = archive, "ok", [], threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/cifar-10-python.tar.gz"


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        host = self.server
        host.hits.append(self.path)
        if host.mode == "500":
            self.send_error(500, "Internal Server Error")
            return
        body = host.archive
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if host.mode == "ok":
            self.wfile.write(body)
            return
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        if host.mode == "stall":
            host.release_stall.wait(10)
        self.close_connection = True

    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture
def host(release, monkeypatch):
    """The stand-in download host, running for one test; torchvision's CIFAR10 points at it."""
    server = _Host(release["archive"])
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    md5 = release["md5"]
    monkeypatch.setattr(CIFAR10, "url", server.url)
    monkeypatch.setattr(CIFAR10, "tgz_md5", hashlib.md5(release["archive"]).hexdigest())
    monkeypatch.setattr(CIFAR10, "train_list", [[name, md5[name]] for name in BATCHES[:5]])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": md5["batches.meta"]})
    yield server
    server.release_stall.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def root(tmp_path, monkeypatch):
    """An empty data root (VIT_LESSONS_DATA), not yet created; online unless a test says otherwise."""
    monkeypatch.setenv("VIT_LESSONS_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("VIT_LESSONS_OFFLINE", raising=False)
    return tmp_path / "data"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _left_in(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# -- online ----------------------------------------------------------------------------------------
def test_first_call_downloads_into_the_data_root_and_says_where(host, root, capsys):
    train, test = load_cifar10()
    folder = root / "cifar-10-batches-py"
    assert train.images.shape == (5 * PER_BATCH, 3, 32, 32) and test.images.shape == (PER_BATCH, 3, 32, 32)
    # image 3 of data_batch_2 (index 1) and of test_batch (index 5) carry their batch's values
    assert int(train.images[PER_BATCH + 3, 0, 0, 0]) == 23 and int(test.images[3, 2, 31, 31]) == 103
    assert train.labels.tolist()[:PER_BATCH] == list(range(PER_BATCH)) and train.classes == CIFAR10_CLASSES
    assert str(folder) in train.source and find_cifar10() == ("torchvision", folder)
    # only the verified folder is kept: no archive, no temporary folder
    assert _left_in(root) == ["cifar-10-batches-py"] + [
        f"cifar-10-batches-py/{n}" for n in sorted(BATCHES + ["batches.meta"])
    ]
    said = capsys.readouterr().out
    assert host.url in said and str(folder) in said and len(said.strip().splitlines()) == 1
    assert host.hits, "the download must have gone through the local host"


def test_second_call_is_served_from_disk(host, root, capsys):
    first, _ = load_cifar10(per_class_train=2)
    hits = len(host.hits)
    capsys.readouterr()
    second, _ = load_cifar10(per_class_train=2)
    assert len(host.hits) == hits and capsys.readouterr().out == ""
    assert np.array_equal(first.images, second.images) and len(second) == 20


def test_download_true_skips_the_probe(host, root, monkeypatch):
    monkeypatch.setattr(cifar10, "_unreachable", lambda *args: pytest.fail("download=True must not probe"))
    train, _ = load_cifar10(download=True)
    assert len(train) == 5 * PER_BATCH and host.hits


# -- offline ---------------------------------------------------------------------------------------
def test_offline_with_data_present_needs_no_network(host, root, monkeypatch):
    load_cifar10()  # downloaded while online
    hits = len(host.hits)
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{_closed_port()}/cifar-10-python.tar.gz")
    train, test = load_cifar10()
    assert len(train) == 5 * PER_BATCH and len(test) == PER_BATCH and len(host.hits) == hits


def _assert_fast_instructions(error, elapsed, root, why):
    text = str(error.value)
    assert elapsed < 5, f"offline must fail fast, took {elapsed:.1f} s"
    first = text.splitlines()[0]
    assert first.startswith("CIFAR-10 was not found and was not downloaded: ") and why in first
    # what to do: the URL, where to put the file, the unpack command, the environment variable
    assert CIFAR10.url in text and f"put that file in {root}" in text
    assert f"tar -xzf cifar-10-python.tar.gz -C {root}" in text and "VIT_LESSONS_DATA" in text
    assert not root.exists(), "an offline attempt must not create the data root"


def test_offline_mode_fails_fast_with_instructions(host, root, monkeypatch):
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as error:
        load_cifar10()
    _assert_fast_instructions(error, time.perf_counter() - start, root, "offline mode is set (VIT_LESSONS_OFFLINE=1)")
    assert host.hits == []


def test_unreachable_host_fails_fast_with_instructions(root, monkeypatch):
    port = _closed_port()
    monkeypatch.setattr(CIFAR10, "url", f"http://127.0.0.1:{port}/cifar-10-python.tar.gz")
    start = time.perf_counter()
    with pytest.raises(FileNotFoundError) as error:
        load_cifar10()
    _assert_fast_instructions(error, time.perf_counter() - start, root, f"cannot reach 127.0.0.1:{port}")


def test_a_host_that_never_answers_is_given_up_on_after_the_probe_timeout(root, monkeypatch):
    # name resolution or a dropped SYN can block far longer than any socket timeout
    unblock = threading.Event()
    monkeypatch.setattr(socket, "create_connection", lambda *args, **kwargs: unblock.wait(30))
    monkeypatch.setattr(cifar10, "_PROBE_TIMEOUT", 0.5)
    start = time.perf_counter()
    try:
        with pytest.raises(FileNotFoundError, match=r"did not answer within 0.5 s"):
            load_cifar10()
    finally:
        unblock.set()
    assert time.perf_counter() - start < 3


def test_an_archive_downloaded_by_hand_is_unpacked_offline(host, release, root, monkeypatch):
    root.mkdir()
    (root / "cifar-10-python.tar.gz").write_bytes(release["archive"])
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    train, _ = load_cifar10(per_class_train=1)
    assert len(train) == 10 and host.hits == []
    assert _left_in(root)[:2] == ["cifar-10-batches-py", "cifar-10-batches-py/batches.meta"]
    assert (root / "cifar-10-python.tar.gz").is_file(), "the student's own file stays"


def test_the_data_root_may_name_that_archive_itself(host, release, tmp_path, monkeypatch):
    archive = tmp_path / "downloads" / "cifar-10-python.tar.gz"
    archive.parent.mkdir()
    archive.write_bytes(release["archive"])
    monkeypatch.setenv("VIT_LESSONS_DATA", str(archive))
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    assert len(load_cifar10(per_class_train=1)[0]) == 10 and host.hits == []
    assert (archive.parent / "cifar-10-batches-py" / "test_batch").is_file()  # unpacked next to it


def test_download_false_never_downloads(host, root):
    with pytest.raises(FileNotFoundError, match="CIFAR-10 was not found"):
        load_cifar10(download=False)
    with pytest.raises(ValueError, match="download must be True, False or 'auto'"):
        load_cifar10(download="yes")
    assert host.hits == [] and not root.exists()


def test_a_missing_archive_path_is_not_downloaded_to(host, tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_LESSONS_DATA", str(tmp_path / "typo.tar.gz"))
    with pytest.raises(FileNotFoundError, match=r"typo.tar.gz does not exist .*check the path"):
        load_cifar10()
    assert host.hits == [] and _left_in(tmp_path) == []


# -- failed downloads leave nothing ------------------------------------------------------------------
@pytest.mark.parametrize(
    "mode, what",
    [
        ("500", "the server answered HTTP 500"),
        ("truncate", "the file arrived incomplete or corrupted"),
        ("stall", "no data arrived for 0.5 s"),
    ],
)
def test_a_broken_download_raises_and_leaves_nothing(host, root, monkeypatch, mode, what):
    host.mode = mode
    monkeypatch.setattr(cifar10, "_STALL_TIMEOUT", 0.5)
    start = time.perf_counter()
    with pytest.raises(DownloadError) as error:
        load_cifar10()
    assert time.perf_counter() - start < 8
    assert isinstance(error.value, OSError)
    text = str(error.value)
    assert host.url in text and what in text and "run again to retry" in text
    assert _left_in(root) == [], "no partial archive, no half-unpacked folder"
    with pytest.raises(FileNotFoundError):
        find_cifar10()
    host.mode = "ok"  # and running again does retry, cleanly
    assert len(load_cifar10()[0]) == 5 * PER_BATCH


def test_an_interrupted_unpack_leaves_nothing(host, root, monkeypatch):
    # Ctrl-C (Jupyter's stop button) after the archive arrived, while torchvision unpacks it
    import torchvision.datasets.cifar as cifar_module

    real = cifar_module.download_and_extract_archive

    def interrupted(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(cifar_module, "download_and_extract_archive", interrupted)
    with pytest.raises(KeyboardInterrupt):
        load_cifar10()
    assert _left_in(root) == [] and host.hits


def test_a_wrong_checksum_raises_and_leaves_nothing(host, root, monkeypatch):
    monkeypatch.setattr(CIFAR10, "tgz_md5", "0" * 32)
    with pytest.raises(DownloadError, match=r"incomplete or corrupted \(its md5 checksum does not match"):
        load_cifar10()
    assert _left_in(root) == [] and host.hits


def test_an_incomplete_folder_from_an_interrupted_unpack_is_replaced(host, root):
    partial = root / "cifar-10-batches-py"
    partial.mkdir(parents=True)
    shutil.copyfile(__file__, partial / "data_batch_1")  # e.g. a copy cut short: no test_batch
    with pytest.raises(FileNotFoundError):
        find_cifar10()
    train, _ = load_cifar10()
    assert len(train) == 5 * PER_BATCH and int(train.images[0, 0, 0, 0]) == 0
    assert [p.name for p in root.iterdir()] == ["cifar-10-batches-py"]
