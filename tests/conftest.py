"""Fixtures shared by the test modules."""

import pickle

import numpy as np
import pytest
import torch


@pytest.fixture
def one_thread():
    """Run a test on one torch thread (a module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``).

    Small models gain little from a second thread, and on a machine shared with other jobs two OpenMP
    threads wait for each other at every operation: one thread keeps the timings meaningful."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def fake_cifar(tmp_path_factory):
    """A tiny CIFAR-10 in torchvision's format (``<root>/cifar-10-batches-py``): five training batches and a
    test batch of 20 random images each, labels 0-9 twice. Returns the root; tests only read it."""
    folder = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        entry = {b"data": rng.integers(0, 256, (20, 3072), dtype=np.uint8), b"labels": list(range(10)) * 2}
        (folder / name).write_bytes(pickle.dumps(entry))
    return folder.parent
