"""Readers for the raw dataset sources a ddbench config can name (digits, Fashion-MNIST, CIFAR, image folders)."""

from __future__ import annotations

import builtins
import codecs
import gzip
import hashlib
import importlib
import io
import os
import pickle
import struct
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ddbench.errors import SourceError  # re-exported: callers import it from here

# the built-in source kinds (ddbench.registry.SOURCES also holds plugins')
LOADER_KINDS = ("digits", "fashion_mnist", "cifar10", "cifar100", "imagefolder")

FASHION_MNIST_DEFAULT_PATH = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
FASHION_MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_IMAGES_MAGIC = 2051
IDX_LABELS_MAGIC = 2049

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR_LAYOUT = {
    # kind: (standard sub-folder, train files, test file, meta file, label key, names key, classes)
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        "test_batch",
        "batches.meta",
        b"labels",
        b"label_names",
        10,
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        "test",
        "meta",
        b"fine_labels",
        b"fine_label_names",
        100,
    ),
}

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Largest image (width x height) any reader decodes: PIL's default decompression-bomb limit,
# applied here explicitly so that it holds whatever PIL.Image.MAX_IMAGE_PIXELS is set to.
MAX_IMAGE_PIXELS = 89_478_485
IMAGEFOLDER_LAYOUT = (
    "expected layout: <path>/train/<class>/<image> and <path>/val/<class>/<image> "
    "(or <path>/test/<class>/<image>), one sub-folder per class, images in "
    + "/".join(e[1:] for e in IMAGE_EXTENSIONS)
)


@dataclass
class RawData:
    """A loaded source: uint8 NHWC images, int64 labels, class names and provenance."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]
    source: str
    source_sha256: str

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)


# --------------------------------------------------------------------------- helpers


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _manifest_sha256(entries: dict[str, str]) -> str:
    """SHA-256 over "relpath\\0filesha\\n" lines sorted by relative path."""
    digest = hashlib.sha256()
    for rel in sorted(entries):
        digest.update(f"{rel}\0{entries[rel]}\n".encode())
    return digest.hexdigest()


def _dataset_label(spec: dict) -> str:
    return str(spec.get("name") or "<name>")


def _path_option(spec: dict, default: str | None = None) -> Path:
    value = spec.get("path", default)
    if value is None or value == "":
        raise SourceError(
            f"source kind {spec['kind']!r} needs a folder: set datasets.{_dataset_label(spec)}.path"
        )
    return Path(os.path.expanduser(str(value)))


def _cap_option(spec: dict, key: str) -> int | None:
    value = spec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SourceError(f"{key} must be a positive integer or null, got {value!r}")
    return value


def _cap_indices(labels: np.ndarray, cap: int | None) -> np.ndarray:
    """Indices of the first `cap` samples of each class, in the original order."""
    if cap is None:
        return np.arange(len(labels))
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        keep[np.flatnonzero(labels == c)[:cap]] = True
    return np.flatnonzero(keep)


def _apply_caps(spec: dict, raw: RawData) -> RawData:
    for split in ("train", "test"):
        cap = _cap_option(spec, f"max_{split}_per_class")
        if cap is None:
            continue
        labels = getattr(raw, f"{split}_labels")
        idx = _cap_indices(labels, cap)
        setattr(raw, f"{split}_images", getattr(raw, f"{split}_images")[idx])
        setattr(raw, f"{split}_labels", labels[idx])
    return raw


def _finish(spec: dict, raw: RawData) -> RawData:
    """Apply per-class caps, normalise dtypes/contiguity and check the result is usable."""
    raw = _apply_caps(spec, raw)
    k = len(raw.classes)
    for split in ("train", "test"):
        images = np.ascontiguousarray(getattr(raw, f"{split}_images"), dtype=np.uint8)
        labels = np.ascontiguousarray(getattr(raw, f"{split}_labels"), dtype=np.int64)
        if images.ndim != 4 or len(images) != len(labels):
            raise SourceError(
                f"{raw.source}: {split} images {images.shape} do not match labels {labels.shape}"
            )
        if len(labels) == 0:
            raise SourceError(f"{raw.source}: the {split} split is empty")
        if labels.min() < 0 or labels.max() >= k:
            raise SourceError(f"{raw.source}: {split} labels outside 0..{k - 1}")
        setattr(raw, f"{split}_images", images)
        setattr(raw, f"{split}_labels", labels)
    return raw


def _check_result(
    spec: dict, num_classes: int, counts: list[int] | None, classes: list[str] | None
) -> dict:
    cap = _cap_option(spec, "max_train_per_class")
    _cap_option(spec, "max_test_per_class")
    if counts is None:
        min_train = cap
    else:
        min_train = min(counts) if counts else 0
        if cap is not None:
            min_train = min(cap, min_train)
    return {"num_classes": num_classes, "min_train_per_class": min_train, "classes": classes}


# --------------------------------------------------------------------------- digits


def _digits_fraction(spec: dict) -> float:
    fraction = spec.get("test_fraction", 0.25)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
        raise SourceError(f"digits: test_fraction must be a number in (0, 1), got {fraction!r}")
    if not 0 < fraction < 1:
        raise SourceError(f"digits: test_fraction must be in (0, 1), got {fraction!r}")
    return fraction


def _digits_split(spec: dict):
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    fraction = _digits_fraction(spec)
    bunch = load_digits()
    labels = np.asarray(bunch.target, dtype=np.int64)
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(labels)), test_size=fraction, stratify=labels, random_state=0
        )
    except ValueError as exc:
        raise SourceError(
            f"digits: test_fraction {fraction} leaves a split too small: {exc}"
        ) from None
    return bunch, labels, np.asarray(train_idx), np.asarray(test_idx), fraction


def _load_digits(spec: dict) -> RawData:
    bunch, labels, train_idx, test_idx, fraction = _digits_split(spec)
    # load_digits holds 8x8 grey values 0..16; scale to 0..255.
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * 255.0 / 16.0)
    images = np.clip(images, 0, 255).astype(np.uint8)[..., None]
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images).tobytes())
    digest.update(np.ascontiguousarray(labels).tobytes())
    return RawData(
        train_images=images[train_idx],
        train_labels=labels[train_idx],
        test_images=images[test_idx],
        test_labels=labels[test_idx],
        classes=[str(i) for i in range(10)],
        source=f"sklearn.datasets.load_digits (test_fraction={fraction}, stratified, random_state=0)",
        source_sha256=digest.hexdigest(),
    )


def _check_digits(spec: dict) -> dict:
    _, labels, train_idx, _, _ = _digits_split(spec)
    counts = np.bincount(labels[train_idx], minlength=10).tolist()
    return _check_result(spec, 10, counts, [str(i) for i in range(10)])


# --------------------------------------------------------------------------- Fashion-MNIST


def _fashion_missing(spec: dict, what: str) -> SourceError:
    return SourceError(
        f"fashion_mnist: {what}. Install the data with `apt-get install dataset-fashion-mnist` "
        f"(files go to {FASHION_MNIST_DEFAULT_PATH}) or set datasets.{_dataset_label(spec)}.path "
        "to a folder holding train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (plain or gzipped)"
    )


def _fashion_files(spec: dict) -> tuple[Path, dict[str, Path]]:
    folder = _path_option(spec, FASHION_MNIST_DEFAULT_PATH)
    if not folder.is_dir():
        raise _fashion_missing(spec, f"folder {folder} does not exist")
    found = {}
    for key, stem in FASHION_MNIST_FILES.items():
        for name in (stem + ".gz", stem):
            if (folder / name).is_file():
                found[key] = folder / name
                break
        else:
            raise _fashion_missing(spec, f"{folder / (stem + '.gz')} (or {stem}) not found")
    return folder, found


def _read_maybe_gzip(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as fh:
                return fh.read()
        return path.read_bytes()
    except (OSError, EOFError) as exc:
        raise SourceError(f"{path}: cannot read ({exc})") from exc


def _parse_idx(path: Path, magic: int) -> np.ndarray:
    """Parse an IDX file of unsigned bytes (labels: 1 dim, images: 3 dims)."""
    data = _read_maybe_gzip(path)
    ndim = 3 if magic == IDX_IMAGES_MAGIC else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise SourceError(f"{path}: truncated IDX file ({len(data)} bytes)")
    (found,) = struct.unpack(">i", data[:4])
    if found != magic:
        raise SourceError(f"{path}: bad IDX magic number {found}, expected {magic}")
    dims = struct.unpack(f">{ndim}i", data[4:header])
    if any(d < 0 for d in dims):
        raise SourceError(f"{path}: negative IDX dimension {dims}")
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(data) != expected:
        raise SourceError(
            f"{path}: IDX dims {dims} need {expected} bytes but the file holds {len(data)}"
        )
    if expected == header:
        return np.zeros(dims, dtype=np.uint8)
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _check_idx_labels(path: Path, labels: np.ndarray) -> np.ndarray:
    labels = labels.astype(np.int64)
    if len(labels) and labels.max() >= len(FASHION_MNIST_CLASSES):
        raise SourceError(f"{path}: label {labels.max()} outside 0..9")
    return labels


def _load_fashion_mnist(spec: dict) -> RawData:
    folder, files = _fashion_files(spec)
    arrays = {}
    for split in ("train", "test"):
        images = _parse_idx(files[f"{split}_images"], IDX_IMAGES_MAGIC)
        labels = _check_idx_labels(
            files[f"{split}_labels"], _parse_idx(files[f"{split}_labels"], IDX_LABELS_MAGIC)
        )
        if len(images) != len(labels):
            raise SourceError(
                f"{files[f'{split}_images']} holds {len(images)} images but "
                f"{files[f'{split}_labels']} holds {len(labels)} labels"
            )
        arrays[split] = (images[..., None], labels)
    if arrays["train"][0].shape[1:] != arrays["test"][0].shape[1:]:
        raise SourceError(
            f"{files['test_images']}: image size {arrays['test'][0].shape[1:3]} differs from "
            f"{files['train_images']} {arrays['train'][0].shape[1:3]}"
        )
    digest = _manifest_sha256({p.name: _sha256_file(p) for p in files.values()})
    return RawData(
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        classes=list(FASHION_MNIST_CLASSES),
        source=f"fashion_mnist IDX files in {folder}",
        source_sha256=digest,
    )


def _check_fashion_mnist(spec: dict) -> dict:
    _, files = _fashion_files(spec)
    train = _check_idx_labels(
        files["train_labels"], _parse_idx(files["train_labels"], IDX_LABELS_MAGIC)
    )
    _parse_idx(files["test_labels"], IDX_LABELS_MAGIC)
    counts = np.bincount(train, minlength=len(FASHION_MNIST_CLASSES)).tolist()
    return _check_result(spec, len(FASHION_MNIST_CLASSES), counts, list(FASHION_MNIST_CLASSES))


# --------------------------------------------------------------------------- CIFAR


def _cifar_folder(spec: dict) -> Path:
    kind = spec["kind"]
    sub, train_files, test_file, meta_file = CIFAR_LAYOUT[kind][:4]
    path = _path_option(spec)
    needed = [*train_files, test_file, meta_file]
    how = (
        f"download the python version from {CIFAR_URL}, extract it and set "
        f"datasets.{_dataset_label(spec)}.path to the {sub} folder or its parent"
    )
    if not path.is_dir():
        raise SourceError(f"{kind}: folder {path} does not exist; {how}")
    folder = path / sub if (path / sub).is_dir() else path
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise SourceError(f"{kind}: {folder} lacks {', '.join(missing)}; {how}")
    return folder


# The only globals a CIFAR python batch refers to. The official files were written by Python 2
# cPickle: dicts, lists, strings and ints, plus NumPy arrays, which pickle as
# numpy.core.multiarray._reconstruct(numpy.ndarray, ...) with a numpy.dtype state. Files pickled
# again under Python 3 may also name numpy._core (NumPy 2), numpy scalars, _frombuffer
# (protocol 5), _codecs.encode (bytes under protocols 0-2) and a few builtin containers.
_PICKLE_BUILTINS = frozenset({"set", "frozenset", "bytearray", "complex"})
_PICKLE_NUMPY_CORE = frozenset(
    {("multiarray", "_reconstruct"), ("multiarray", "scalar"), ("numeric", "_frombuffer")}
)


def _numpy_core_global(submodule: str, name: str):
    """numpy._core.<submodule>.<name> (NumPy 2) or numpy.core.<submodule>.<name> (NumPy 1)."""
    for module in (f"numpy._core.{submodule}", f"numpy.core.{submodule}"):
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    return None


def _allowed_pickle_global(module: str, name: str):
    """The object a CIFAR batch may name as module.name, or None when it is not allowed."""
    if module in ("builtins", "__builtin__") and name in _PICKLE_BUILTINS:
        return getattr(builtins, name)
    if module == "_codecs" and name == "encode":
        return codecs.encode
    if module == "numpy" and name in ("ndarray", "dtype"):
        return getattr(np, name)
    for prefix in ("numpy._core.", "numpy.core."):
        if module.startswith(prefix) and (module[len(prefix) :], name) in _PICKLE_NUMPY_CORE:
            return _numpy_core_global(module[len(prefix) :], name)
    return None


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals of a CIFAR batch; any other raises SourceError.

    Unpickling calls whatever callables the file names, so refusing every other global keeps
    a planted file from running code (os.system, eval, subprocess, ...).
    """

    def __init__(self, fh, path: Path):
        super().__init__(fh, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str):
        found = _allowed_pickle_global(module, name)
        if found is None:
            raise SourceError(
                f"{self._path}: refused to unpickle global {module}.{name} (a CIFAR python "
                "batch holds only dicts, lists, strings, numbers and NumPy arrays)"
            )
        return found

    def persistent_load(self, pid):
        raise SourceError(f"{self._path}: refused to unpickle a persistent id (not a CIFAR batch)")


def _unpickle(path: Path) -> dict:
    # The CIFAR archives are distributed as Python pickles, so reading them means unpickling;
    # _CifarUnpickler admits only the globals such a file needs (see above).
    try:
        with open(path, "rb") as fh:
            obj = _CifarUnpickler(fh, path).load()
    except SourceError:
        raise
    except Exception as exc:  # any unpickling failure means the file is not a CIFAR batch
        raise SourceError(f"{path}: cannot unpickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise SourceError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _cifar_classes(kind: str, folder: Path) -> list[str]:
    meta_file, names_key, k = (CIFAR_LAYOUT[kind][i] for i in (3, 5, 6))
    meta = _unpickle(folder / meta_file)
    if names_key not in meta:
        raise SourceError(f"{folder / meta_file}: no {names_key!r} entry")
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in meta[names_key]]
    if len(names) != k:
        raise SourceError(f"{folder / meta_file}: {len(names)} class names, expected {k}")
    return names


def _cifar_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    batch = _unpickle(path)
    for key in (b"data", label_key):
        if key not in batch:
            raise SourceError(f"{path}: no {key!r} entry")
    data = np.asarray(batch[b"data"])
    labels = np.asarray(batch[label_key], dtype=np.int64).reshape(-1)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise SourceError(f"{path}: data is {data.dtype} {data.shape}, expected uint8 [N, 3072]")
    if len(data) != len(labels):
        raise SourceError(f"{path}: {len(data)} images but {len(labels)} labels")
    # Rows are channel-major (1024 red, 1024 green, 1024 blue); convert to NHWC.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images, labels


def _load_cifar(spec: dict) -> RawData:
    kind = spec["kind"]
    _, train_files, test_file, meta_file, label_key, _, _ = CIFAR_LAYOUT[kind]
    folder = _cifar_folder(spec)
    classes = _cifar_classes(kind, folder)
    parts = [_cifar_batch(folder / name, label_key) for name in train_files]
    test_images, test_labels = _cifar_batch(folder / test_file, label_key)
    digest = _manifest_sha256(
        {name: _sha256_file(folder / name) for name in [*train_files, test_file, meta_file]}
    )
    return RawData(
        train_images=np.concatenate([p[0] for p in parts]),
        train_labels=np.concatenate([p[1] for p in parts]),
        test_images=test_images,
        test_labels=test_labels,
        classes=classes,
        source=f"{kind} python batches in {folder}",
        source_sha256=digest,
    )


def _check_cifar(spec: dict) -> dict:
    kind = spec["kind"]
    folder = _cifar_folder(spec)
    classes = _cifar_classes(kind, folder)
    return _check_result(spec, CIFAR_LAYOUT[kind][6], None, classes)


# --------------------------------------------------------------------------- image folders


def _list_images(folder: Path) -> list[Path]:
    with os.scandir(folder) as it:
        names = [
            e.name
            for e in it
            if not e.name.startswith(".")
            and e.name.lower().endswith(IMAGE_EXTENSIONS)
            and e.is_file()
        ]
    return [folder / n for n in sorted(names)]


def _list_dirs(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def _imagefolder_splits(spec: dict, *, diagnose: bool) -> tuple[Path, Path, Path]:
    """(root, train folder, val or test folder); `diagnose` lists the root to explain a miss."""
    root = _path_option(spec)
    if not root.is_dir():
        raise SourceError(f"imagefolder: folder {root} does not exist; {IMAGEFOLDER_LAYOUT}")
    train_dir = root / "train"
    if not train_dir.is_dir():
        if diagnose and any(_list_images(root / d) for d in _list_dirs(root)):
            raise SourceError(
                f"imagefolder: {root} holds class folders directly but no train/ folder; "
                f"{IMAGEFOLDER_LAYOUT}"
            )
        raise SourceError(f"imagefolder: {train_dir} does not exist; {IMAGEFOLDER_LAYOUT}")
    test_dir = next((root / s for s in ("val", "test") if (root / s).is_dir()), None)
    if test_dir is None:
        raise SourceError(f"imagefolder: {root} has no val/ or test/ folder; {IMAGEFOLDER_LAYOUT}")
    return root, train_dir, test_dir


def _imagefolder_layout(
    spec: dict,
) -> tuple[Path, list[str], list[str], dict[str, list[list[Path]]]]:
    """Resolve folders and class order; return (root, folders, names, {split: files per class})."""
    root, train_dir, test_dir = _imagefolder_splits(spec, diagnose=True)
    present = _list_dirs(train_dir)
    chosen = spec.get("classes")
    if chosen is None:
        folders = present
        if not folders:
            raise SourceError(
                f"imagefolder: {train_dir} has no class folders; {IMAGEFOLDER_LAYOUT}"
            )
        extra = sorted(set(_list_dirs(test_dir)) - set(folders))
        if extra:
            raise SourceError(
                f"imagefolder: {test_dir} has class folders not in {train_dir}: "
                f"{', '.join(extra[:10])}; list the wanted ones in classes"
            )
    else:
        if not isinstance(chosen, (list, tuple)) or not all(isinstance(c, str) for c in chosen):
            raise SourceError(
                f"imagefolder: classes must be a list of folder names, got {chosen!r}"
            )
        folders = list(chosen)
        if not folders:
            raise SourceError("imagefolder: classes is an empty list")
        dupes = sorted({c for c in folders if folders.count(c) > 1})
        if dupes:
            raise SourceError(f"imagefolder: classes lists {', '.join(dupes)} more than once")

    names = spec.get("class_names")
    if names is None:
        names = list(folders)
    elif not isinstance(names, (list, tuple)) or len(names) != len(folders):
        raise SourceError(
            f"imagefolder: class_names must be a list of {len(folders)} names (one per class), "
            f"got {names!r}"
        )
    names = [str(n) for n in names]

    files: dict[str, list[list[Path]]] = {}
    for split, split_dir in (("train", train_dir), ("test", test_dir)):
        per_class = []
        for folder in folders:
            class_dir = split_dir / folder
            if not class_dir.is_dir():
                raise SourceError(f"imagefolder: class folder {class_dir} does not exist")
            images = _list_images(class_dir)
            if not images:
                raise SourceError(
                    f"imagefolder: {class_dir} holds no images "
                    f"({'/'.join(e[1:] for e in IMAGE_EXTENSIONS)})"
                )
            per_class.append(images)
        files[split] = per_class
    return root, folders, names, files


def _image_size_option(spec: dict) -> int:
    size = spec.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise SourceError(
            f"imagefolder: image_size must be a positive integer (required), got {size!r}"
        )
    return size


def _channels_option(spec: dict) -> int:
    channels = spec.get("channels", 3)
    if channels not in (1, 3):
        raise SourceError(f"imagefolder: channels must be 1 or 3, got {channels!r}")
    return int(channels)


@contextmanager
def open_image(
    path: Path, data: bytes | None = None, *, error: type[Exception] = SourceError, where: str = ""
) -> Iterator[Image.Image]:
    """PIL image of `path` (or of `data`, read from it), refused over MAX_IMAGE_PIXELS.

    The size is checked from the header before any pixel is decoded; PIL's own bomb warning
    and error are raised as `error` too. Messages start with `where` and name the file.
    """
    cap = MAX_IMAGE_PIXELS
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data) if data is not None else path)
        except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
            raise error(
                f"{where}{path}: image too large to decode ({exc}); the cap is {cap} pixels"
            ) from None
        with img:
            w, h = img.size
            if w * h > cap:
                raise error(
                    f"{where}{path}: image is {w}x{h} ({w * h} pixels), over the cap of {cap} "
                    "pixels (MAX_IMAGE_PIXELS, a guard against decompression bombs)"
                )
            try:
                yield img
            except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
                raise error(
                    f"{where}{path}: image too large to decode ({exc}); the cap is {cap} pixels"
                ) from None


def _decode_image(path: Path, data: bytes, size: int, mode: str) -> np.ndarray:
    """Decode, convert to `mode`, resize the shorter side to `size` (bicubic), centre-crop."""
    try:
        with open_image(path, data, where="imagefolder: ") as img:
            img = img.convert(mode)
            w, h = img.size
            if (w, h) != (size, size):
                scale = size / min(w, h)
                nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
                img = img.resize((nw, nh), Image.Resampling.BICUBIC)
                left, top = (nw - size) // 2, (nh - size) // 2
                img = img.crop((left, top, left + size, top + size))
            array = np.asarray(img, dtype=np.uint8)
    except SourceError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise SourceError(f"imagefolder: cannot read image {path} ({exc})") from exc
    return array.reshape(size, size, -1)


@dataclass
class ImageFolderPlan:
    """What an image-folder source decodes: the chosen files and labels of each split, in order."""

    root: Path
    classes: list[str]
    size: int
    mode: str  # PIL mode: "L" (grey) or "RGB"
    files: dict[str, list[Path]]  # split -> files in dataset order (classes, then file names)
    labels: dict[str, np.ndarray]  # split -> int64 labels aligned with files

    @property
    def channels(self) -> int:
        """1 (grey) or 3 (RGB)."""
        return 1 if self.mode == "L" else 3

    @property
    def source(self) -> str:
        """The `source` attribute of the prepared dataset."""
        return (
            f"imagefolder {self.root} ({len(self.classes)} classes, "
            f"{self.size}x{self.size} {self.mode})"
        )


def plan_imagefolder(spec: dict) -> ImageFolderPlan:
    """List and check an image-folder source (options, layout, caps) without decoding an image."""
    size = _image_size_option(spec)
    mode = "L" if _channels_option(spec) == 1 else "RGB"
    root, _, names, per_class = _imagefolder_layout(spec)
    files, labels = {}, {}
    for split in ("train", "test"):
        cap = _cap_option(spec, f"max_{split}_per_class")
        chosen = [
            (path, label) for label, paths in enumerate(per_class[split]) for path in paths[:cap]
        ]
        files[split] = [path for path, _ in chosen]
        labels[split] = np.fromiter(
            (label for _, label in chosen), dtype=np.int64, count=len(chosen)
        )
    return ImageFolderPlan(root, names, size, mode, files, labels)


def read_image(path: Path, size: int, mode: str) -> tuple[np.ndarray, str]:
    """(decoded uint8 HWC image, SHA-256 of the file's bytes) of one image-folder file."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SourceError(f"imagefolder: cannot read image {path} ({exc})") from exc
    return _decode_image(path, data, size, mode), _sha256_bytes(data)


def _load_imagefolder(spec: dict) -> RawData:
    from tqdm import tqdm

    plan = plan_imagefolder(spec)
    hashes: dict[str, str] = {}
    arrays = {}
    for split in ("train", "test"):
        files = plan.files[split]
        images = np.empty((len(files), plan.size, plan.size, plan.channels), dtype=np.uint8)
        for i, path in enumerate(
            tqdm(files, desc=f"{plan.root.name} {split}", unit="img", file=sys.stderr, leave=False)
        ):
            images[i], hashes[path.relative_to(plan.root).as_posix()] = read_image(
                path, plan.size, plan.mode
            )
        arrays[split] = (images, plan.labels[split])
    return RawData(
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        classes=plan.classes,
        source=plan.source,
        source_sha256=_manifest_sha256(hashes),
    )


def _check_imagefolder(spec: dict) -> dict:
    _image_size_option(spec)
    _channels_option(spec)
    _, _, names, files = _imagefolder_layout(spec)
    counts = [len(paths) for paths in files["train"]]
    return _check_result(spec, len(names), counts, names)


# --------------------------------------------------------------------------- entry points


def _kind(spec: dict) -> str:
    from ddbench.registry import SOURCES

    if not isinstance(spec, dict):
        raise SourceError(f"a dataset source must be a mapping with a 'kind', got {spec!r}")
    kind = spec.get("kind")
    if kind not in SOURCES.names():
        raise SourceError(
            f"unknown source kind {kind!r}; expected one of {', '.join(SOURCES.names())}"
        )
    return kind


_NOT_READ = {"num_classes": None, "min_train_per_class": None, "classes": None}


def _layout_digits(spec: dict) -> None:
    _digits_fraction(spec)


def _layout_fashion_mnist(spec: dict) -> None:
    _fashion_files(spec)


def _layout_cifar(spec: dict) -> None:
    _cifar_folder(spec)


def _layout_imagefolder(spec: dict) -> None:
    _image_size_option(spec)
    _channels_option(spec)
    _imagefolder_splits(spec, diagnose=False)


def check_source(spec: dict, *, read_files: bool = True) -> dict:
    """Check that a configured source exists; return num_classes, min_train_per_class, classes.

    With read_files=True the labels (or CIFAR meta file, or class folders) are read to fill in
    the counts. With read_files=False only the options and the top-level layout are checked
    (the expected files or split folders exist; nothing is opened or unpickled, no class folder
    is listed) and every value of the result is None: cheap enough to run while the workflow's
    DAG is built. The functions come from the source kind's registry entry
    (ddbench.registry.SOURCES: `check`, `layout`, `load`).
    """
    from ddbench.registry import SOURCES

    kind = SOURCES.get(_kind(spec))
    if not read_files:
        _cap_option(spec, "max_train_per_class")
        _cap_option(spec, "max_test_per_class")
        if "layout" in kind.functions:
            kind.function("layout")(spec)
        return dict(_NOT_READ)
    return kind.function("check")(spec)


def load_source(spec: dict) -> RawData:
    """Load the dataset described by spec as uint8 NHWC images and int64 labels.

    Per-class caps are applied by `_finish`; a loader may apply them earlier (image folders
    never decode unused images), which leaves nothing for `_finish` to drop.
    """
    from ddbench.registry import SOURCES

    return _finish(spec, SOURCES.get(_kind(spec)).function("load")(spec))
