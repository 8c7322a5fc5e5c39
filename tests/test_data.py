"""Datasets, splits, augmentation and the CIFAR-10 zip/cache path."""
import io
import os
import zipfile

import numpy as np
import pytest
import torch
from PIL import Image

from wsscl_fast.data import (
    augment_batch,
    class_forget_split,
    dataset_labels,
    index_forget_split,
    load_cifar10_bundle,
    make_scenario,
    random_forget_split,
)


def test_random_split_is_seeded_disjoint_and_complete():
    f1, r1 = random_forget_split(100, 0.1, seed=3)
    f2, _ = random_forget_split(100, 0.1, seed=3)
    f3, _ = random_forget_split(100, 0.1, seed=4)
    assert torch.equal(f1, f2) and not torch.equal(f1, f3)
    assert len(f1) == 10 and sorted(torch.cat([f1, r1]).tolist()) == list(range(100))


def test_class_split():
    labels = torch.tensor([0, 1, 2, 1, 0])
    forget, retain = class_forget_split(labels, 1)
    assert forget.tolist() == [1, 3] and retain.tolist() == [0, 2, 4]
    with pytest.raises(ValueError, match="forget class 7 has no samples"):
        class_forget_split(labels, 7)


@pytest.mark.parametrize("ids, message", [([], "empty"), ([1, 1], "duplicates"), ([0, 10], r"out of range \[0, 10\): \[10\]"),
                                          ([-1], "out of range")])
def test_index_split_refuses_bad_ids(ids, message):
    with pytest.raises(ValueError, match=message):
        index_forget_split(10, ids)


def test_scenarios_on_digits(digits, tmp_path):
    classwise = make_scenario(digits, "class:3")
    assert set(digits.train.labels[classwise.forget_indices].tolist()) == {3}
    assert 3 not in dataset_labels(classwise.retain).tolist()
    assert set(dataset_labels(classwise.forgotten_test).tolist()) == {3}
    assert 3 not in dataset_labels(classwise.test).tolist()
    ids = tmp_path / "ids.txt"
    ids.write_text("5\n7\n")
    assert make_scenario(digits, f"indices:{ids}").forget_indices.tolist() == [5, 7]
    with pytest.raises(ValueError, match="forget spec must be"):
        make_scenario(digits, "everything")


def test_augment_crops_are_shifted_windows_and_flips_mirror():
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, pad=1, flip=False, generator=g)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1))
    for b in range(2):
        windows = [padded[b, :, i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(out[b], w) for w in windows)
    flipped = augment_batch(x, pad=0, flip=True, generator=torch.Generator().manual_seed(1))
    assert all(torch.equal(flipped[b], x[b]) or torch.equal(flipped[b], x[b].flip(2)) for b in range(2))
    assert torch.equal(augment_batch(x, 0, False), x)


def _write_tiny_imagefolder_zip(path, per_class=3):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as zf:
        for name in ("airplane", "automobile"):
            for i in range(per_class):
                buffer = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buffer, format="PNG")
                zf.writestr(f"{name}/{i:04d}.png", buffer.getvalue())


def test_zip_imagefolder_loading_and_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    _write_tiny_imagefolder_zip(tmp_path / "train.zip")
    _write_tiny_imagefolder_zip(tmp_path / "test.zip", per_class=2)
    bundle = load_cifar10_bundle(tmp_path)
    assert bundle.train.images.shape == (6, 3, 32, 32) and bundle.test.labels.tolist() == [0, 0, 1, 1]
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 2
    again = load_cifar10_bundle(tmp_path)  # from the cache
    assert torch.equal(again.train.images, bundle.train.images)


def test_corrupt_zip_and_missing_root(tmp_path):
    (tmp_path / "train.zip").write_bytes(b"not a zip")
    (tmp_path / "test.zip").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable zip archive"):
        load_cifar10_bundle(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar10_bundle(tmp_path / "nowhere")


def _png(size=(32, 32)):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((*size, 3), dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("entries, message", [
    ({"cat/0.png": _png(), "cat/1.png": b"\x89PNG broken"}, r"image cat/1.png cannot be decoded"),
    ({"cat/0.png": _png(), "dog/0.png": _png()[:60]}, r"image dog/0.png cannot be decoded"),
    ({"cat/0.png": _png(), "dog/0.png": _png((16, 16))}, r"image dog/0.png is 16x16, the others 32x32"),
    ({"cat/0.png": _png(), "dog/": b""}, r"class folder\(s\) \['dog'\] hold no images"),
    ({"README.txt": b"hello"}, "no .jpg/.jpeg/.png images"),
])
def test_hostile_zips_are_refused_by_name(tmp_path, monkeypatch, entries, message):
    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    for split in ("train", "test"):
        with zipfile.ZipFile(tmp_path / f"{split}.zip", "w") as zf:
            for name, data in entries.items():
                zf.writestr(name, data)
    with pytest.raises(ValueError, match=message):
        load_cifar10_bundle(tmp_path)


def test_truncated_zip_empty_class_folder_and_damaged_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    _write_tiny_imagefolder_zip(tmp_path / "whole.zip")
    data = (tmp_path / "whole.zip").read_bytes()
    (tmp_path / "train.zip").write_bytes(data[: len(data) // 2])
    (tmp_path / "test.zip").write_bytes(data)
    with pytest.raises(ValueError, match="train.zip is not a readable zip archive"):
        load_cifar10_bundle(tmp_path)
    folder = tmp_path / "folder"
    for split in ("train", "test"):
        (folder / split / "cat").mkdir(parents=True)
        (folder / split / "cat" / "0.png").write_bytes(_png())
        (folder / split / "dog").mkdir()
    with pytest.raises(ValueError, match=r"class folder\(s\) \['dog'\] hold no images"):
        load_cifar10_bundle(folder)
    (tmp_path / "train.zip").write_bytes(data)
    first = load_cifar10_bundle(tmp_path)
    for cached in (tmp_path / "cache").glob("*.pt"):
        cached.write_bytes(b"damaged")
    assert torch.equal(load_cifar10_bundle(tmp_path).train.images, first.train.images)


@pytest.mark.real_data
def test_real_cifar10_subset(cifar10_root, tmp_path, monkeypatch):
    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    bundle = load_cifar10_bundle(cifar10_root, train_size=500, test_size=200, seed=0)
    assert bundle.train.images.shape == (500, 3, 32, 32) and len(bundle.test) == 200
    assert bundle.train.classes[0] == "airplane" and bundle.num_classes == 10
    x, y = bundle.train[0]
    assert x.shape == (3, 32, 32) and abs(float(x.mean())) < 2


def _write_torchvision_cifar(folder, per_batch=4, seed=0):
    """torchvision's cifar-10-batches-py layout, written here with small batches."""
    import pickle
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({b"batch_label": name.encode(), b"labels": labels, b"data": data}, fh)
        written[name] = (data, labels)
    return written


@pytest.mark.parametrize("nested", [True, False])
def test_torchvision_cifar_batches(tmp_path, nested):
    folder = tmp_path / "cifar-10-batches-py" if nested else tmp_path
    written = _write_torchvision_cifar(folder)
    bundle = load_cifar10_bundle(tmp_path)
    assert bundle.train.images.shape == (20, 3, 32, 32) and bundle.test.images.shape == (4, 3, 32, 32)
    first, labels = written["data_batch_1"]
    assert torch.equal(bundle.train.images[:4], torch.from_numpy(first.reshape(4, 3, 32, 32)))
    assert bundle.train.labels[:4].tolist() == labels and bundle.test.labels.tolist() == written["test_batch"][1]
    assert bundle.train.classes[0] == "airplane"


def test_torchvision_cifar_batches_refuse_code_and_bad_shapes(tmp_path):
    import pickle
    folder = tmp_path / "cifar-10-batches-py"
    _write_torchvision_cifar(folder)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"labels": [0], b"data": Evil()}, fh)
    with pytest.raises(ValueError, match="test_batch is not a CIFAR-10 batch.*not allowed"):
        load_cifar10_bundle(tmp_path)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({b"labels": [0], b"data": np.zeros((1, 100), np.uint8)}, fh)
    with pytest.raises(ValueError, match=r"expected \(N, 3072\)"):
        load_cifar10_bundle(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        load_cifar10_bundle(tmp_path)


def test_download_is_only_attempted_when_asked(tmp_path, monkeypatch):
    from wsscl_fast.data import formats
    calls = []
    monkeypatch.setattr(formats, "_download_cifar10", lambda root: (calls.append(root), _write_torchvision_cifar(
        root / "cifar-10-batches-py")))
    with pytest.raises(FileNotFoundError, match="--download"):
        load_cifar10_bundle(tmp_path / "c10")
    assert calls == []
    bundle = load_cifar10_bundle(tmp_path / "c10", download=True)
    assert calls == [tmp_path / "c10"] and len(bundle.train) == 20
    load_cifar10_bundle(tmp_path / "c10", download=True)  # already there: no second download
    assert len(calls) == 1


def test_forget_by_the_samples_own_names(tmp_path, monkeypatch):
    from wsscl_fast.data import write_sample_ids
    monkeypatch.setenv("WSSCL_CACHE", str(tmp_path / "cache"))
    _write_tiny_imagefolder_zip(tmp_path / "train.zip")
    _write_tiny_imagefolder_zip(tmp_path / "test.zip", per_class=2)
    bundle = load_cifar10_bundle(tmp_path)
    assert bundle.train.names == ("airplane/0000.png", "airplane/0001.png", "airplane/0002.png",
                                  "automobile/0000.png", "automobile/0001.png", "automobile/0002.png")
    assert load_cifar10_bundle(tmp_path).train.names == bundle.train.names  # through the decode cache
    ids = tmp_path / "ids.txt"
    ids.write_text("automobile/0001.png\n0\n")
    scenario = make_scenario(bundle, f"indices:{ids}")
    assert scenario.forget_indices.tolist() == [0, 4]
    ids.write_text("automobile/0009.png\n")
    with pytest.raises(ValueError, match="line 1: expected an integer position or a sample name.*0009"):
        make_scenario(bundle, f"indices:{ids}")
    table = write_sample_ids(bundle.train, tmp_path / "sample_ids.tsv").read_text().splitlines()
    assert table[0] == "position\tname\tlabel" and table[5] == "4\tautomobile/0001.png\tautomobile"
    subset = load_cifar10_bundle(tmp_path, train_size=3, seed=1)
    assert all(name in bundle.train.names for name in subset.train.names)
    for i, name in enumerate(subset.train.names):  # a subset keeps each image with its name
        assert torch.equal(subset.train.images[i], bundle.train.images[bundle.train.names.index(name)])
