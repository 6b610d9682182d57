"""In-memory datasets and the loaders that train from them: uint8 arrays on the device, augmented there.

Taught in lesson 08 (``notebooks/08_training_cifar10.ipynb``). :class:`DeviceLoader` keeps a whole
small dataset on the device and does per-sample random crop, flip and normalisation in one gather;
:class:`StreamingLoader` gives any ``Dataset`` (a folder of your own images) the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class ArrayDataset:
    """A labelled image set held in memory: uint8 ``images`` (N, C, H, W), int64 ``labels`` (N,)."""

    images: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        if not isinstance(self.images, np.ndarray) or self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise TypeError(
                "images must be a uint8 numpy array of shape (N, C, H, W); got "
                f"{type(self.images).__name__} {getattr(self.images, 'dtype', '')} "
                f"{getattr(self.images, 'shape', '')}"
            )
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.labels.shape != (len(self.images),):
            raise ValueError(f"labels have shape {self.labels.shape}; expected ({len(self.images)},), one per image")
        if len(self.mean) != self.images.shape[1] or len(self.std) != self.images.shape[1]:
            raise ValueError(f"mean/std need one value per channel ({self.images.shape[1]})")

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def subset(self, per_class: int | None) -> ArrayDataset:
        """The first ``per_class`` images of each class, in dataset order (deterministic)."""
        if per_class is None:
            return self
        keep = np.concatenate([np.flatnonzero(self.labels == c)[:per_class] for c in range(len(self.classes))])
        keep.sort()
        return ArrayDataset(
            self.images[keep],
            self.labels[keep],
            self.classes,
            self.mean,
            self.std,
            self.source,
            {**self.info, "per_class": per_class},
        )

    def select_classes(self, names) -> ArrayDataset:
        """Only the images of the classes ``names``, relabelled 0..k-1 in the order given.

        ``cifar.select_classes(["cat", "dog"])`` is a 2-class set with cat = 0, dog = 1. The
        normalisation ``mean``/``std`` stay those of the whole dataset.
        """
        if names is None:
            return self
        names = list(names)
        unknown = [name for name in names if name not in self.classes]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"classes must be distinct names from {list(self.classes)}, got {names!r}"
                + (f" (unknown: {unknown})" if unknown else "")
            )
        old = [self.classes.index(name) for name in names]
        keep = np.flatnonzero(np.isin(self.labels, old))
        relabel = np.full(len(self.classes), -1, dtype=np.int64)
        relabel[old] = np.arange(len(old))
        return ArrayDataset(
            self.images[keep],
            relabel[self.labels[keep]],
            tuple(names),
            self.mean,
            self.std,
            self.source,
            {**self.info, "classes": names},
        )


# -- normalisation and augmentation (device side) ------------------------------------------------
def normalize(images: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (B, C, H, W) in 0..255 → float (B, C, H, W), ``(x / 255 - mean) / std`` per channel."""
    mean_t = torch.as_tensor(mean, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32, device=images.device).view(1, -1, 1, 1)
    return (images.float() / 255.0 - mean_t) / std_t


def random_augment_params(count: int, padding: int, flip: bool, generator: torch.Generator):
    """Per-sample crop offsets in 0..2·padding (y, x) and flip flags, each (count,), drawn on the CPU."""
    offsets = torch.randint(0, 2 * padding + 1, (2, count), generator=generator)
    flips = torch.rand(count, generator=generator) < 0.5 if flip else torch.zeros(count, dtype=torch.bool)
    return offsets[0], offsets[1], flips


def augment_batch(
    images: torch.Tensor, padding: int, offsets_y: torch.Tensor, offsets_x: torch.Tensor, flips: torch.Tensor
) -> torch.Tensor:
    """Random crop with zero padding and horizontal flip, per sample, in one gather on the device.

    images: (B, C, H, W), any dtype. Each sample is padded by ``padding`` pixels of zeros, cropped
    back to H×W at offset (offsets_y[b], offsets_x[b]) in 0..2·padding, and mirrored left-right where
    ``flips[b]``. Returns (B, C, H, W), same dtype: the output only ever holds input pixels or zeros.
    """
    if images.ndim != 4:
        raise ValueError(f"images must be a (B, C, H, W) batch, got shape {tuple(images.shape)}")
    batch, _, height, width = images.shape
    if not (len(offsets_y) == len(offsets_x) == len(flips) == batch):
        raise ValueError(f"need one crop offset pair and flip flag per image ({batch})")
    device = images.device
    offsets_y, offsets_x, flips = offsets_y.to(device), offsets_x.to(device), flips.to(device)
    if padding > 0:
        images = torch.nn.functional.pad(images, (padding, padding, padding, padding))  # (B, C, H+2p, W+2p)
    rows = torch.arange(height, device=device).view(1, height) + offsets_y.view(batch, 1)  # (B, H)
    cols = torch.arange(width, device=device).view(1, width)  # (1, W)
    cols = torch.where(flips.view(batch, 1), width - 1 - cols, cols) + offsets_x.view(batch, 1)  # (B, W)
    batch_index = torch.arange(batch, device=device).view(batch, 1, 1)
    # Advanced indexing over dims 0, 2, 3 moves the channel dimension last: (B, H, W, C).
    cropped = images.permute(0, 2, 3, 1)[batch_index, rows.view(batch, height, 1), cols.view(batch, 1, width)]
    return cropped.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


def _shard(indices: torch.Tensor, rank: int, world_size: int, pad: bool) -> torch.Tensor:
    """This rank's share of ``indices``: every world_size-th, like ``DistributedSampler``.

    ``pad`` repeats the first indices so that every rank gets the same count (training); without it
    the shards are exact and together hold each index once (evaluation).
    """
    if world_size == 1:
        return indices
    if pad and len(indices) % world_size:
        extra = world_size - len(indices) % world_size
        indices = torch.cat([indices, indices[:extra]])
    return indices[rank::world_size]


def _epoch_generator(seed: int, epoch: int, rank: int) -> torch.Generator:
    # The data order and augmentation of an epoch depend only on (seed, epoch, rank), never on the
    # global RNG: an interrupted run resumes with exactly the batches it would have seen.
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch * 1_009 + rank)


class DeviceLoader:
    """Batches of a whole uint8 :class:`ArrayDataset` held on ``device``.

    Yields ``(images, labels)``: float (B, C, H, W) normalised, int64 (B,), both on ``device``.
    ``train=True`` shuffles, augments (``crop_padding``, ``flip``) and drops the last partial batch;
    call :meth:`set_epoch` before each epoch. Under ``torchrun`` pass ``rank``/``world_size``: each
    rank gets its shard (padded for training, exact for evaluation) and ``batch_size`` is per rank.
    """

    def __init__(
        self,
        dataset: ArrayDataset,
        batch_size: int,
        *,
        train: bool,
        device: torch.device | str = "cpu",
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ):
        if not isinstance(dataset, ArrayDataset):
            raise TypeError(
                f"DeviceLoader needs an ArrayDataset, got {type(dataset).__name__}; "
                "use StreamingLoader for a torch Dataset"
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if crop_padding < 0:
            raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside 0..world_size-1 (world_size={world_size})")
        self.device = torch.device(device)
        self.images = torch.from_numpy(dataset.images).to(self.device)  # (N, C, H, W) uint8, on the device
        self.labels = torch.from_numpy(dataset.labels).to(self.device)  # (N,)
        self.mean, self.std = dataset.mean, dataset.std
        # on the device once (normalize() then copies nothing per batch)
        self._mean_t = torch.as_tensor(self.mean, dtype=torch.float32, device=self.device)
        self._std_t = torch.as_tensor(self.std, dtype=torch.float32, device=self.device)
        self.batch_size, self.train = batch_size, train
        self.crop_padding, self.flip = crop_padding if train else 0, flip and train
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.epoch = 0
        self.num_samples = len(_shard(torch.arange(len(dataset)), rank, world_size, pad=train))
        if train and self.num_samples < batch_size:
            raise ValueError(
                f"batch_size {batch_size} is larger than this rank's {self.num_samples} training images; "
                "use a smaller --batch-size"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        if self.train:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def __iter__(self):
        generator = _epoch_generator(self.seed, self.epoch, 0)
        if self.train:
            order = torch.randperm(len(self.images), generator=generator)
        else:
            order = torch.arange(len(self.images))
        order = _shard(order, self.rank, self.world_size, pad=self.train)
        if self.train:
            rank_generator = _epoch_generator(self.seed, self.epoch, 1 + self.rank)
            offsets_y, offsets_x, flips = random_augment_params(
                len(order), self.crop_padding, self.flip, rank_generator
            )
            # (to the device once per epoch, not once per batch)
            offsets_y, offsets_x, flips = offsets_y.to(self.device), offsets_x.to(self.device), flips.to(self.device)
        order = order.to(self.device)
        for batch in range(len(self)):
            window = slice(batch * self.batch_size, (batch + 1) * self.batch_size)
            index = order[window]
            images = self.images[index]  # (B, C, H, W) uint8
            if self.train and (self.crop_padding or self.flip):
                images = augment_batch(images, self.crop_padding, offsets_y[window], offsets_x[window], flips[window])
            yield normalize(images, self._mean_t, self._std_t), self.labels[index]


class StreamingLoader:
    """The standard path: a ``torch.utils.data.DataLoader`` over any dataset of (uint8 (C, H, W), label),
    e.g. :func:`imagefolder_dataset`, with the same device-side augmentation and normalisation as
    :class:`DeviceLoader` and the same interface (``set_epoch``, ``len``, iterate).

    ``num_workers=0`` by default: worker processes hang in Jupyter on Windows (pytorch/pytorch#51344).
    """

    def __init__(
        self,
        dataset,
        batch_size: int,
        *,
        train: bool,
        mean,
        std,
        device="cpu",
        crop_padding: int = 0,
        flip: bool = False,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        num_workers: int = 0,
    ):
        from torch.utils.data import DataLoader, DistributedSampler

        self.device = torch.device(device)
        self.mean, self.std, self.train = mean, std, train
        self.crop_padding, self.flip = crop_padding if train else 0, flip and train
        self.seed, self.rank, self.epoch = seed, rank, 0
        self.sampler = (
            DistributedSampler(dataset, world_size, rank, shuffle=train, seed=seed, drop_last=False)
            if world_size > 1
            else None
        )
        self.generator = torch.Generator()
        self.loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=train and self.sampler is None,
            sampler=self.sampler,
            drop_last=train,
            num_workers=num_workers,
            generator=self.generator,
            pin_memory=self.device.type == "cuda",
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        self.generator.manual_seed(self.seed * 1_000_003 + self.epoch * 1_009)
        augment_generator = _epoch_generator(self.seed, self.epoch, 1 + self.rank)
        for images, labels in self.loader:
            images = images.to(self.device, non_blocking=True)  # (B, C, H, W) uint8
            if self.crop_padding or self.flip:
                params = random_augment_params(len(images), self.crop_padding, self.flip, augment_generator)
                images = augment_batch(images, self.crop_padding, *params)
            yield normalize(images, self.mean, self.std), labels.to(self.device, non_blocking=True)


def imagefolder_dataset(root: str | Path, img_size: int | None = None):
    """A torchvision ``ImageFolder`` yielding (uint8 (3, H, W), label), resized to ``img_size`` if given."""
    from torchvision import datasets, transforms

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"ImageFolder root {root} does not exist; it needs one sub-folder per class")
    steps = [transforms.Resize((img_size, img_size))] if img_size else []
    steps.append(transforms.PILToTensor())
    return datasets.ImageFolder(str(root), transform=transforms.Compose([lambda im: im.convert("RGB"), *steps]))


# -- the 8×8 digits ------------------------------------------------------------------------------
def load_digits(test_fraction: float = 0.25, seed: int = 0) -> tuple[ArrayDataset, ArrayDataset]:
    """scikit-learn's 1,797 handwritten digits (8×8, 17 grey levels), offline, as uint8 (N, 1, 8, 8).

    A stratified split: 1,347 training and 450 test images with the defaults.
    """
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    bunch = sklearn_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (1797, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=labels
    )
    train_idx.sort()
    test_idx.sort()
    pixels = images[train_idx].astype(np.float64) / 255.0
    mean, std = (float(pixels.mean()),), (float(pixels.std()),)
    classes = tuple(str(d) for d in range(10))
    return (
        ArrayDataset(images[train_idx], labels[train_idx], classes, mean, std, "sklearn digits"),
        ArrayDataset(images[test_idx], labels[test_idx], classes, mean, std, "sklearn digits"),
    )
