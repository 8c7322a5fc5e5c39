"""Dataset formats: the in-memory image dataset, the built-in sources and their decode cache.

Every built-in dataset is an :class:`ImageTensorDataset`: uint8 images (N, C, H, W) kept in
memory, returned with the eval transform (scale to [0, 1], normalise). A :class:`DataBundle`
holds a dataset's train, validation and test splits. Image files are decoded once into a
uint8 cache (``$WSSCL_CACHE``).
"""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..checkpoint import atomic_save, atomic_write_bytes
from ..seeding import stream_seed

DATASETS = ("digits", "cifar10", "fashion-mnist")  #: what load_bundle() loads
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"


class ImageTensorDataset(Dataset):
    """uint8 images (N, C, H, W) and int64 labels (N,); items are (normalised float image, label).
    ``names`` are the samples' own ids in their source (the ImageFolder-relative file name,
    ``data_batch_2:17`` for torchvision's CIFAR batches, ...); by default the positions."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean, std, classes=None, names=None):
        if images.dim() != 4 or images.dtype != torch.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}")
        self.images, self.labels = images, labels.long()
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(-1, 1, 1)
        self.classes = tuple(classes) if classes is not None else tuple(str(c) for c in range(int(labels.max()) + 1))
        self.names = tuple(names) if names is not None else tuple(str(i) for i in range(images.shape[0]))
        if len(self.names) != images.shape[0]:
            raise ValueError(f"names must have one entry per image ({images.shape[0]}), got {len(self.names)}")

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int):
        return (self.images[index].float() / 255 - self.mean) / self.std, self.labels[index]


@dataclass
class DataBundle:
    """A train and a test split of one dataset, how to augment it, and optionally a validation
    split: images of the training pool that the original model does not train on, which methods
    may calibrate on (the test split is for metrics only)."""

    name: str
    train: ImageTensorDataset
    test: ImageTensorDataset
    aug_pad: int
    aug_flip: bool
    validation: ImageTensorDataset | None = None

    @property
    def num_classes(self) -> int:
        return len(self.train.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])


def _channel_stats(images: torch.Tensor):
    x = images.float() / 255
    return x.mean(dim=(0, 2, 3)).tolist(), x.std(dim=(0, 2, 3)).clamp_min(1e-3).tolist()


def load_digits_bundle(seed: int = 0, test_fraction: float = 0.2, validation_fraction: float = 0.1) -> DataBundle:
    """scikit-learn's embedded 8x8 digits (1,797 images), split train/validation/test by class,
    seeded; the fractions are of the whole set."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = torch.from_numpy(np.round(digits.images * (255 / 16)).astype(np.uint8))[:, None]
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    validation_idx = np.array([], dtype=np.int64)
    if validation_fraction > 0:
        train_idx, validation_idx = train_test_split(
            train_idx, test_size=validation_fraction / (1 - test_fraction), random_state=seed,
            stratify=digits.target[train_idx])
    train_idx, validation_idx, test_idx = np.sort(train_idx), np.sort(validation_idx), np.sort(test_idx)
    mean, std = _channel_stats(images[train_idx])
    classes = tuple(str(d) for d in range(10))
    make = lambda idx: ImageTensorDataset(images[idx], labels[idx], mean, std, classes,  # noqa: E731
                                          names=[f"digits:{i}" for i in idx])
    return DataBundle("digits", make(train_idx), make(test_idx), aug_pad=1, aug_flip=False,
                      validation=make(validation_idx) if len(validation_idx) else None)


def _decode_image_files(source: Path, named_bytes, classes) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Decode (class_name, file name, bytes) triples to uint8 (N, 3, H, W), labels and the file
    names. A file that does not decode, or whose size differs from the first, is named in the
    error."""
    from PIL import Image

    images, labels, names = [], [], []
    index = {c: i for i, c in enumerate(classes)}
    for class_name, name, data in named_bytes:
        try:
            with Image.open(io.BytesIO(data)) as img:
                image = np.asarray(img.convert("RGB"), dtype=np.uint8)
        except Exception as exc:  # PIL raises UnidentifiedImageError, OSError (truncated), ...
            raise ValueError(f"{source}: image {name} cannot be decoded ({type(exc).__name__}: {exc})") from None
        if images and image.shape != images[0].shape:
            raise ValueError(f"{source}: image {name} is {image.shape[1]}x{image.shape[0]}, "
                             f"the others {images[0].shape[1]}x{images[0].shape[0]}")
        images.append(image)
        labels.append(index[class_name])
        names.append(name)
    if not images:
        raise ValueError(f"{source}: no .jpg/.jpeg/.png images in class folders (expected CLASS/IMAGE files)")
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous(), torch.tensor(labels), names


def _image_folder_entries(source: Path, names):
    """Sorted (class, path) pairs and the class list of an ImageFolder listing
    (``[prefix/]class/file.ext``). A class folder without images is refused: it would shift
    the labels of the classes after it."""
    is_image = lambda parts: len(parts) >= 2 and parts[-1].lower().endswith((".jpg", ".jpeg", ".png"))  # noqa: E731
    listing = [[p for p in name.split("/") if p] for name in names]
    entries = [(parts[-2], name) for parts, name in zip(listing, names) if is_image(parts)]
    classes = sorted({c for c, _ in entries})
    roots = {tuple(parts[:-2]) for parts in listing if is_image(parts)}
    folders = {parts[len(root)] for parts, name in zip(listing, names) for root in roots
               if len(parts) > len(root) and tuple(parts[:len(root)]) == root
               and (len(parts) > len(root) + 1 or name.endswith("/"))}
    empty = sorted(folders - set(classes))
    if empty:
        raise ValueError(f"{source}: class folder(s) {empty} hold no images")
    return sorted(entries), classes


def write_sample_ids(dataset: ImageTensorDataset, path) -> Path:
    """The position -> name -> label map of a split as a TSV file (what ``indices:FILE`` and
    a record's ids refer to), written atomically."""
    lines = ["position\tname\tlabel"] + [f"{i}\t{name}\t{dataset.classes[int(label)]}"
                                          for i, (name, label) in enumerate(zip(dataset.names, dataset.labels))]
    return atomic_write_bytes(("\n".join(lines) + "\n").encode(), path)


def _read_zip(path: Path):
    try:
        with zipfile.ZipFile(path) as zf:
            entries, classes = _image_folder_entries(path, zf.namelist())
            return classes, _decode_image_files(path, ((c, n, zf.read(n)) for c, n in entries), classes)
    except (zipfile.BadZipFile, EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable zip archive ({type(exc).__name__}: {exc})") from None


def _read_folder(path: Path):
    names = [str(p.relative_to(path)) + ("/" if p.is_dir() else "") for p in path.rglob("*")]
    entries, classes = _image_folder_entries(path, names)
    return classes, _decode_image_files(path, ((c, n, (path / n).read_bytes()) for c, n in entries), classes)


def _cache_dir() -> Path:
    return Path(os.environ.get("WSSCL_CACHE", Path.home() / ".cache" / "wsscl_fast"))


def _cached_decode(source: Path, reader):
    """Decode ``source`` once into a uint8 tensor file in the cache, reused later."""
    stat = source.stat()
    key = hashlib.sha256(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    cache = _cache_dir() / f"{source.stem}-{key}.pt"
    if cache.exists():
        try:
            blob = torch.load(cache, weights_only=True)
            return blob["classes"], (blob["images"], blob["labels"], blob["names"])
        except Exception:  # a damaged (or older, nameless) cache entry is decoded again and replaced
            pass
    classes, (images, labels, names) = reader()
    try:
        atomic_save({"classes": classes, "images": images, "labels": labels, "names": list(names)}, cache)
    except OSError:
        pass  # a read-only cache only costs the decode next time
    return classes, (images, labels, names)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles torchvision's CIFAR batches (dicts of bytes, lists and numpy arrays) and
    refuses every other global, so a hostile file cannot run code."""
    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR-10 batch")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, list[int]]:
    try:
        with open(path, "rb") as fh:
            batch = _ArrayUnpickler(fh, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"], dtype=np.uint8), [int(y) for y in batch[b"labels"]]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"{path} is not a CIFAR-10 batch ({type(exc).__name__}: {exc})") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise ValueError(f"{path}: expected (N, 3072) uint8 data and N labels, got {data.shape} and {len(labels)}")
    return data, labels


def _read_torchvision_cifar(folder: Path, train: bool):
    """torchvision's ``cifar-10-batches-py`` layout: data_batch_1..5 (train) or test_batch."""
    names = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {missing} (torchvision's cifar-10-batches-py layout)")
    batches = [_read_cifar_batch(folder / n) for n in names]
    images = torch.from_numpy(np.concatenate([d for d, _ in batches]).reshape(-1, 3, 32, 32).copy())
    labels = torch.tensor([y for _, ys in batches for y in ys], dtype=torch.int64)
    if labels.numel() and not bool(((labels >= 0) & (labels < 10)).all()):
        raise ValueError(f"{folder}: labels must lie in [0, 10)")
    sample_names = [f"{n}:{row}" for n, (data, _) in zip(names, batches) for row in range(len(data))]
    return CIFAR10_CLASSES, (images, labels, sample_names)


def _download_cifar10(root: Path) -> None:
    """torchvision's download into ``root`` (needs a network; the tests never call it)."""
    from torchvision.datasets import CIFAR10

    for train in (True, False):
        CIFAR10(str(root), train=train, download=True)


def _cifar_split(root: Path, split: str):
    if (root / f"{split}.zip").is_file():
        path = root / f"{split}.zip"
        return _cached_decode(path, lambda: _read_zip(path))
    if (root / split).is_dir():
        return _read_folder(root / split)
    tv = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    if (tv / "test_batch").is_file():
        return _read_torchvision_cifar(tv, split == "train")
    raise FileNotFoundError(
        f"no CIFAR-10 {split} split under {root}: expected {split}.zip, an ImageFolder directory "
        f"{split}/, or torchvision's cifar-10-batches-py/ (download=True / --download fetches it)"
    )


def _seeded_subset(images, labels, names, count: int | None, seed: int):
    if count is None or count >= len(labels):
        return images, labels, names
    idx = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    return images[idx], labels[idx], [names[i] for i in idx.tolist()]


def _seeded_train_validation(images, labels, names, train_size: int | None, validation_size: int, seed: int):
    """A seeded train subset and, from the rest of the pool, a disjoint validation subset.
    The train rows are those of :func:`_seeded_subset` with the same seed (the first
    ``train_size`` of one permutation); validation takes the next ``validation_size``."""
    n = len(labels)
    if not 0 <= validation_size < n:
        raise ValueError(f"validation_size must be in [0, {n}) (the training images), got {validation_size}")
    train_size = min(n if train_size is None else train_size, n - validation_size)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if train_size == n:
        order = torch.arange(n)
    pick = lambda idx: (images[idx], labels[idx], [names[i] for i in idx.tolist()])  # noqa: E731
    return (pick(order[:train_size].sort().values),
            pick(order[train_size:train_size + validation_size].sort().values) if validation_size else None)


def load_cifar10_bundle(root: str | os.PathLike, train_size: int | None = None, test_size: int | None = None,
                        seed: int = 0, download: bool = False, validation_size: int = 0) -> DataBundle:
    """CIFAR-10 from ``root`` holding train.zip/test.zip, train/ and test/ ImageFolders, or
    torchvision's cifar-10-batches-py; optional seeded subsets of each split, and
    ``validation_size`` images of the training pool outside the train subset as the validation
    split. ``download`` fetches torchvision's copy into ``root`` when none of these is there."""
    root = Path(root)
    if download and not any((root / p).exists() for p in ("train.zip", "train", "cifar-10-batches-py", "test_batch")):
        root.mkdir(parents=True, exist_ok=True)
        _download_cifar10(root)
    if not root.exists():
        raise FileNotFoundError(f"CIFAR-10 root {root} does not exist (download=True / --download fetches it)")
    classes, train = _cifar_split(root, "train")
    _, test = _cifar_split(root, "test")
    train_split, validation_split = _seeded_train_validation(*train, train_size, validation_size, seed)
    test_split = _seeded_subset(*test, test_size, stream_seed(seed, "test_subset"))
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    make = lambda xyn: ImageTensorDataset(*xyn[:2], mean, std, classes, xyn[2])  # noqa: E731
    return DataBundle("cifar10", make(train_split), make(test_split), aug_pad=4, aug_flip=True,
                      validation=make(validation_split) if validation_split else None)


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        data = fh.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    shape = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{stem}[.gz] not found under {root} (install Debian's dataset-fashion-mnist)")


def load_fashion_mnist_bundle(root: str | os.PathLike = FASHION_MNIST_ROOT, train_size: int | None = None,
                              test_size: int | None = None, seed: int = 0, validation_size: int = 0) -> DataBundle:
    """Fashion-MNIST from IDX files (Debian's ``dataset-fashion-mnist``); the validation split
    is ``validation_size`` training images outside the train subset."""
    root = Path(root)
    split = {}
    for name, prefix in (("train", "train"), ("test", "t10k")):
        images = torch.from_numpy(_read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte")).copy())[:, None]
        labels = torch.from_numpy(_read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte")).copy()).long()
        split[name] = (images, labels, [f"{prefix}:{i}" for i in range(len(labels))])
    train, validation = _seeded_train_validation(*split["train"], train_size, validation_size, seed)
    test = _seeded_subset(*split["test"], test_size, seed)
    classes = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
    make = lambda xyn: ImageTensorDataset(*xyn[:2], (0.2860,), (0.3530,), classes, xyn[2])  # noqa: E731
    return DataBundle("fashion-mnist", make(train), make(test), aug_pad=2, aug_flip=True,
                      validation=make(validation) if validation else None)


def default_data_root(name: str) -> Path:
    """Where a dataset lives when no root is given: ``$WSSCL_DATA/<name>``, by default
    ``~/.cache/wsscl_fast/data/<name>`` (torchvision's download layout goes there)."""
    return Path(os.environ.get("WSSCL_DATA", Path.home() / ".cache" / "wsscl_fast" / "data")) / name


DEFAULT_VALIDATION_SIZE = 1000  #: CIFAR-10 and Fashion-MNIST: training-pool images kept out of training


def load_bundle(name: str, root: str | None = None, train_size: int | None = None, test_size: int | None = None,
                seed: int = 0, download: bool = False, validation_size: int | None = None) -> DataBundle:
    """Load ``digits`` (embedded; 10% validation), ``cifar10`` (``root``, else
    :func:`default_data_root`; ``download`` fetches torchvision's copy there) or
    ``fashion-mnist``, with ``validation_size`` (default :data:`DEFAULT_VALIDATION_SIZE`)
    training-pool images outside the train split as the validation split. Digits has a fixed
    split: sizes given for it are refused, not ignored."""
    if name == "digits":
        given = {k: v for k, v in (("train_size", train_size), ("test_size", test_size),
                                   ("validation_size", validation_size)) if v is not None}
        if given:
            raise ValueError(f"digits has a fixed split (1,257 train / 180 validation / 360 test images); "
                             f"{', '.join(f'{k}={v}' for k, v in given.items())} applies to cifar10 and fashion-mnist "
                             "only")
        return load_digits_bundle(seed)
    if validation_size is None:
        validation_size = DEFAULT_VALIDATION_SIZE
    if name == "cifar10":
        return load_cifar10_bundle(root or default_data_root("cifar10"), train_size, test_size, seed, download,
                                   validation_size)
    if name == "fashion-mnist":
        return load_fashion_mnist_bundle(root or FASHION_MNIST_ROOT, train_size, test_size, seed, validation_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
