"""Lesson 08 on a simulated online machine: no CIFAR-10 on disk, the download host answers (a local HTTP
server standing in for it, reached through torchvision's real client), so the lesson downloads CIFAR-10
and trains on it, not on the digits fallback."""

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from helpers.cifar_release import cifar_release

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1]
BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
PER_BATCH = 200  # enough for the quick recipe's batches of 128


def _release() -> tuple[bytes, dict]:
    rng = np.random.default_rng(0)
    return cifar_release(lambda batch: rng.integers(0, 256, (PER_BATCH, 3072), dtype=np.uint8))


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.server.archive)))
        self.end_headers()
        self.wfile.write(self.server.archive)

    def log_message(self, *args):
        pass


@pytest.mark.slow
def test_lesson_08_online_downloads_cifar10_and_trains_on_it(tmp_path):
    archive, md5 = _release()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.archive, server.hits = archive, []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/cifar-10-python.tar.gz"
    # The kernel's torchvision is pointed at the local host the way the real one is configured: its
    # CIFAR10 class attributes (URL and checksums), set by a sitecustomize on the kernel's path.
    patch = {"url": url, "tgz_md5": hashlib.md5(archive).hexdigest(), "md5": md5}
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import json\nfrom torchvision.datasets import CIFAR10\n"
        f"patch = json.loads({json.dumps(json.dumps(patch))})\n"
        "CIFAR10.url, CIFAR10.tgz_md5 = patch['url'], patch['tgz_md5']\n"
        "CIFAR10.train_list = [[f'data_batch_{i}', patch['md5'][f'data_batch_{i}']] for i in range(1, 6)]\n"
        "CIFAR10.test_list = [['test_batch', patch['md5']['test_batch']]]\n"
        "CIFAR10.meta = {**CIFAR10.meta, 'md5': patch['md5']['batches.meta']}\n"
    )
    data = tmp_path / "data"
    env = {
        "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)]),
        "VIT_LESSONS_DATA": str(data),
        "VIT_LESSONS_QUICK": "1",
    }
    saved = {key: os.environ.get(key) for key in (*env, "VIT_LESSONS_OFFLINE")}
    os.environ.update(env)
    os.environ.pop("VIT_LESSONS_OFFLINE", None)
    try:
        notebook = nbformat.read(ROOT / "notebooks" / "08_training_cifar10.ipynb", as_version=4)
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        client = nbclient.NotebookClient(notebook, timeout=600, kernel_name="python3",
                                         resources={"metadata": {"path": str(run_dir)}})  # fmt: skip
        client.execute()
    finally:
        server.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    printed = "\n".join(
        o.get("text", "")
        for c in notebook.cells
        if c.cell_type == "code"
        for o in c.outputs
        if o.output_type == "stream"
    )
    assert server.hits, "the lesson never asked the download host"
    assert "config 'cifar10-cpu'" in printed and "falling back" not in printed, printed[:2000]
    assert "torchvision cifar-10-batches-py" in printed
    assert (data / "cifar-10-batches-py" / "test_batch").is_file()
