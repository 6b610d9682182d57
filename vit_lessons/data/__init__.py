"""Datasets and loaders for training: CIFAR-10, the 8×8 digits, and any ImageFolder tree.

Taught in lesson 08 (``notebooks/08_training_cifar10.ipynb``).

Small datasets are held as uint8 arrays, (N, C, H, W), and trained from a :class:`DeviceLoader`
that keeps the whole set on the device: per-sample random crop (with zero padding) and horizontal
flip, then normalisation, all done on the device in one gather. CIFAR-10's 50,000 images are
150 MB as uint8, so this fits any GPU and removes the CPU data pipeline, which is what limits a
small ViT on a fast GPU. Larger or custom data goes through a standard ``DataLoader``
(:class:`StreamingLoader`) with the same augmentation applied on the device.

Where CIFAR-10 comes from (:func:`find_cifar10`, searched in this order under the data root,
``VIT_LESSONS_DATA`` or ``~/.cache/vit_lessons/data``; the data root may also be a ``.tar.gz``):

1. torchvision's format, ``cifar-10-batches-py/`` (what ``torchvision.datasets.CIFAR10`` downloads);
2. an ImageFolder tree, ``train/<class>/*.png|jpg`` and ``test/<class>/...``;
3. a ``.tar.gz`` of such a tree (e.g. the course's ``cifar10-jpeg.tar.gz``). It is decoded once and
   cached as a ``.npz`` of uint8 arrays; a subset (``per_class``) is read straight from the archive.

When none is there, :func:`load_cifar10` downloads torchvision's copy into the data root
(:func:`download_cifar10`) if the download host answers; offline (or with ``VIT_LESSONS_OFFLINE=1``)
it says at once how to get the file by hand.
"""

from .cifar10 import (
    CIFAR10_CLASSES,
    CIFAR10_MEAN,
    CIFAR10_STD,
    DownloadError,
    cache_dir,
    download_cifar10,
    find_cifar10,
    load_cifar10,
)
from .loaders import (
    ArrayDataset,
    DeviceLoader,
    StreamingLoader,
    augment_batch,
    imagefolder_dataset,
    load_digits,
    normalize,
    random_augment_params,
)

__all__ = [
    "ArrayDataset",
    "CIFAR10_CLASSES",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DeviceLoader",
    "StreamingLoader",
    "augment_batch",
    "random_augment_params",
    "find_cifar10",
    "load_cifar10",
    "download_cifar10",
    "DownloadError",
    "load_digits",
    "imagefolder_dataset",
    "normalize",
    "cache_dir",
]
