"""A small CIFAR-10 in torchvision's download format, for tests that stand in for the download host."""

import hashlib
import io
import pickle
import tarfile

import numpy as np

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def cifar_release(pixels) -> tuple[bytes, dict]:
    """``cifar-10-python.tar.gz`` bytes and the md5 of each member torchvision checks.

    ``pixels(batch_index)`` gives a batch's images as uint8 (count, 3072); labels cycle through 0..9.
    """
    files = {}
    for index, name in enumerate(BATCHES):
        images = np.asarray(pixels(index), dtype=np.uint8)
        files[name] = pickle.dumps({"data": images, "labels": [i % 10 for i in range(len(images))]})
    files["batches.meta"] = pickle.dumps({"label_names": CLASSES})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, content in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue(), {name: hashlib.md5(content).hexdigest() for name, content in files.items()}
