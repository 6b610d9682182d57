"""Datasets and loaders: the digits split, CIFAR-10 from each format, device-side augmentation."""

import io
import tarfile

import numpy as np
import pytest
import torch

from vit_lessons.data import (
    CIFAR10_CLASSES,
    ArrayDataset,
    DeviceLoader,
    StreamingLoader,
    augment_batch,
    find_cifar10,
    imagefolder_dataset,
    load_cifar10,
    load_digits,
    normalize,
)


def _batch(batch=6, channels=3, size=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (batch, channels, size, size), generator=generator, dtype=torch.int64).to(torch.uint8)


# -- augmentation --------------------------------------------------------------------------------
def test_augment_identity_when_centred_and_not_flipped():
    images = _batch()
    centre = torch.full((6,), 2)
    out = augment_batch(images, 2, centre, centre, torch.zeros(6, dtype=torch.bool))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    assert torch.equal(out, images)


def test_augment_flip_matches_torch_flip():
    images = _batch()
    flips = torch.tensor([True, False, True, False, False, True])
    out = augment_batch(images, 0, torch.zeros(6, dtype=torch.long), torch.zeros(6, dtype=torch.long), flips)
    assert torch.equal(out[flips], images[flips].flip(-1))
    assert torch.equal(out[~flips], images[~flips])


def test_augment_crop_shifts_per_sample_with_zero_border():
    images = _batch(batch=2)
    offsets_y, offsets_x = torch.tensor([0, 4]), torch.tensor([4, 1])
    out = augment_batch(images, 2, offsets_y, offsets_x, torch.zeros(2, dtype=torch.bool))
    # sample 0: offset (0, 4) in the padded image = shift down by 2, left by 2
    assert torch.equal(out[0, :, 2:, :6], images[0, :, :6, 2:])
    assert (out[0, :, :2] == 0).all() and (out[0, :, :, 6:] == 0).all()
    # sample 1: offset (4, 1) = shift up by 2, right by 1
    assert torch.equal(out[1, :, :6, 1:], images[1, :, 2:, :7])
    assert (out[1, :, 6:] == 0).all() and (out[1, :, :, :1] == 0).all()


def test_augment_rejects_mismatched_parameters():
    with pytest.raises(ValueError, match="one crop offset pair and flip flag per image"):
        augment_batch(
            _batch(),
            1,
            torch.zeros(3, dtype=torch.long),
            torch.zeros(6, dtype=torch.long),
            torch.zeros(6, dtype=torch.bool),
        )


def _dataset(count=40, channels=3, size=8):
    images = _batch(count, channels, size, seed=1).numpy()
    labels = np.arange(count) % 10
    mean, std = (0.5,) * channels, (0.25,) * channels
    return ArrayDataset(images, labels, tuple(CIFAR10_CLASSES), mean, std)


def test_device_loader_shapes_ranges_and_determinism():
    dataset = _dataset()
    loader = DeviceLoader(dataset, 16, train=True, crop_padding=2, flip=True, seed=3)
    assert len(loader) == 2  # 40 // 16, last partial batch dropped
    loader.set_epoch(0)
    first = list(loader)
    images, labels = first[0]
    assert images.shape == (16, 3, 8, 8) and images.dtype == torch.float32
    assert labels.shape == (16,) and labels.dtype == torch.int64
    assert images.min() >= (0 - 0.5) / 0.25 and images.max() <= (1 - 0.5) / 0.25
    # the padding shows up as normalised zeros somewhere in an augmented epoch
    assert (torch.cat([b[0] for b in first]) == (0 - 0.5) / 0.25).any()
    again = list(loader)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    loader.set_epoch(1)
    assert not torch.equal(list(loader)[0][1], first[0][1]), "a new epoch must reshuffle"


def test_device_loader_eval_is_ordered_unaugmented_and_complete():
    dataset = _dataset(count=37)
    loader = DeviceLoader(dataset, 16, train=False, crop_padding=4, flip=True)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [16, 16, 5]
    images = torch.cat([b[0] for b in batches])
    assert torch.allclose(images, normalize(torch.from_numpy(dataset.images), dataset.mean, dataset.std))


def test_device_loader_shards_for_distributed_training():
    dataset = _dataset(count=37)
    train_shards = [DeviceLoader(dataset, 4, train=True, rank=r, world_size=2) for r in range(2)]
    assert train_shards[0].num_samples == train_shards[1].num_samples == 19  # padded to 38
    eval_labels = []
    for rank in range(2):
        loader = DeviceLoader(dataset, 8, train=False, rank=rank, world_size=2)
        eval_labels.append(torch.cat([b[1] for b in loader]))
    assert len(eval_labels[0]) + len(eval_labels[1]) == 37  # each test image exactly once
    with pytest.raises(ValueError, match="rank 2 is outside"):
        DeviceLoader(dataset, 4, train=True, rank=2, world_size=2)


def test_bad_inputs_are_named():
    with pytest.raises(TypeError, match="uint8 numpy array"):
        ArrayDataset(np.zeros((2, 3, 8, 8), dtype=np.float32), np.zeros(2), ("a",), (0.5,) * 3, (0.2,) * 3)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        DeviceLoader(_dataset(), 0, train=True)
    with pytest.raises(ValueError, match="larger than this rank's 40 training images"):
        DeviceLoader(_dataset(), 64, train=True)
    with pytest.raises(ValueError, match="per_class_train must be a positive int"):
        load_cifar10("/nonexistent", per_class_train=0)


# -- digits --------------------------------------------------------------------------------------
def test_digits_split_is_stratified_uint8():
    train, test = load_digits()
    assert (len(train), len(test)) == (1347, 450)
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (1, 8, 8)
    assert train.images.max() == 255 and train.images.min() == 0
    per_class = np.bincount(train.labels) + np.bincount(test.labels)
    assert np.abs(np.bincount(test.labels) - per_class / 4).max() <= 1  # stratified: a quarter of each class
    assert 0.2 < train.mean[0] < 0.4


# -- CIFAR-10 sources ----------------------------------------------------------------------------
def _png(value: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), value, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_tree_tar(path, per_class=3):
    with tarfile.open(path, "w:gz") as archive:
        for split in ("train", "test"):
            for label, name in enumerate(CIFAR10_CLASSES):
                for index in range(per_class):
                    data = _png(label * 20 + index)
                    info = tarfile.TarInfo(f"{split}/{name}/{index:04d}.png")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))


def test_cifar10_absent_gives_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_LESSONS_DATA", str(tmp_path))
    empty = tmp_path / "empty"
    with pytest.raises(FileNotFoundError) as error:
        load_cifar10(empty, download=False)  # downloading: tests/test_data_download.py
    text = str(error.value)
    assert f"Searched: {empty}" in text and f"torchvision.datasets.CIFAR10(r'{empty}', download=True)" in text
    assert "VIT_LESSONS_DATA" in text and text.rstrip().endswith("--config digits.")
    assert not empty.exists()


def test_cifar10_data_root_may_be_an_archive(tmp_path, monkeypatch):
    # how `make test` hands the course's cifar10-jpeg.tar.gz to every test and lesson
    archive = tmp_path / "cifar10-tiny.tar.gz"
    _write_tree_tar(archive, per_class=2)
    monkeypatch.setenv("VIT_LESSONS_DATA", str(archive))
    monkeypatch.setenv("VIT_LESSONS_OFFLINE", "1")
    assert find_cifar10() == ("tar", archive)
    train, test = load_cifar10(per_class_train=1, per_class_test=2)
    assert (len(train), len(test)) == (10, 20) and train.source == f"tar:{archive}"


def test_cifar10_from_tar_subset_full_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VIT_LESSONS_DATA", str(tmp_path / "root"))
    archive = tmp_path / "cifar10-tiny.tar.gz"
    _write_tree_tar(archive)
    assert find_cifar10(archive) == ("tar", archive)
    train, test = load_cifar10(archive, per_class_train=2, per_class_test=1)
    assert train.images.shape == (20, 3, 32, 32) and test.images.shape == (10, 3, 32, 32)
    assert train.classes == CIFAR10_CLASSES
    # the first two images of each class, in name order: value label*20 + index
    assert [int(train.images[i, 0, 0, 0]) for i in range(4)] == [0, 1, 20, 21]
    assert train.labels.tolist()[:4] == [0, 0, 1, 1]
    full_train, full_test = load_cifar10(archive)
    cached = list((tmp_path / "root" / "cache").glob("*.npz"))
    assert len(cached) == 1 and len(full_train) == 30 and len(full_test) == 30
    again, _ = load_cifar10(archive)  # from the cache now
    assert np.array_equal(again.images, full_train.images) and np.array_equal(again.labels, full_train.labels)


def test_cifar10_from_imagefolder_tree_matches_tar(tmp_path):
    archive = tmp_path / "tree.tar.gz"
    _write_tree_tar(archive, per_class=2)
    with tarfile.open(archive) as handle:
        handle.extractall(tmp_path / "tree")
    assert find_cifar10(tmp_path / "tree")[0] == "imagefolder"
    from_tree, _ = load_cifar10(tmp_path / "tree")
    from_tar, _ = load_cifar10(archive, per_class_train=2, per_class_test=2)
    assert np.array_equal(from_tree.images, from_tar.images) and np.array_equal(from_tree.labels, from_tar.labels)
    # and the standard DataLoader path over the same tree gives the same normalised pixels
    dataset = imagefolder_dataset(tmp_path / "tree" / "test")
    loader = StreamingLoader(dataset, 8, train=False, mean=from_tree.mean, std=from_tree.std)
    images, labels = next(iter(loader))
    assert images.shape == (8, 3, 32, 32) and labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    expected = normalize(torch.from_numpy(from_tree.images[:8]), from_tree.mean, from_tree.std)
    assert torch.allclose(images, expected)


def test_cifar10_from_torchvision_format(fake_cifar):
    train, test = load_cifar10(fake_cifar, per_class_train=3)
    assert find_cifar10(fake_cifar)[0] == "torchvision"
    assert train.images.shape == (30, 3, 32, 32) and test.images.shape == (20, 3, 32, 32)
    assert np.bincount(train.labels).tolist() == [3] * 10
