"""The prepared-dataset HDF5 file (`resources/datasets/{dataset}.h5`): writing and checked reading.

Reading keeps a split's uint8 images in memory when they take at most the in-memory switch
(`in_memory_max_bytes`, environment variable DDBENCH_IN_MEMORY_MAX_BYTES, default 512 MiB:
digits, Fashion-MNIST and CIFAR stay in memory); a larger split is left in the file and read
in uint8 batches (`H5Images`), converted to float one batch at a time (`ImageData.iter_batches`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5
from ddbench.workflow.paths import check_identity

IN_MEMORY_ENV = "DDBENCH_IN_MEMORY_MAX_BYTES"
DEFAULT_IN_MEMORY_MAX_BYTES = 512 << 20


def in_memory_max_bytes(value: int | None = None) -> int:
    """The in-memory switch: the largest split (uint8 bytes) held in memory; larger ones stream."""
    if value is not None:
        return int(value)
    text = os.environ.get(IN_MEMORY_ENV, "").strip()
    if not text:
        return DEFAULT_IN_MEMORY_MAX_BYTES
    try:
        return int(float(text))
    except ValueError:
        raise ValueError(f"{IN_MEMORY_ENV}={text!r} is not a number of bytes") from None


class H5Images:
    """uint8 NHWC images of one split, left in the dataset file and read in row blocks on demand.

    Indexing with a slice is one contiguous read; with an index array the rows are sorted,
    nearby rows coalesced into one read (gaps up to `gap_bytes`), and the result put back in
    the order asked. `reads`, `rows_read` and `max_rows_per_read` count what was read.
    """

    dtype = np.dtype(np.uint8)

    def __init__(
        self, path: str | os.PathLike, name: str, shape: tuple[int, ...], gap_bytes: int = 32 << 10
    ) -> None:
        self.path = Path(path)
        self.name = name
        self.shape = tuple(int(d) for d in shape)
        self.row_bytes = int(np.prod(self.shape[1:], dtype=np.int64))
        self.max_gap = max(0, int(gap_bytes) // max(1, self.row_bytes))
        self._file = None
        self._ds = None
        self._pid = None
        self.reads = 0
        self.rows_read = 0
        self.max_rows_per_read = 0

    def __repr__(self) -> str:
        return f"H5Images({str(self.path)!r}, {self.name!r}, shape={self.shape})"

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.row_bytes

    def __len__(self) -> int:
        return self.shape[0]

    def _dataset(self):
        if self._file is None or self._pid != os.getpid():  # h5py handles do not survive fork
            import h5py

            try:
                self._file = h5py.File(self.path, "r")
            except OSError as exc:
                raise DataFileError(f"{self.path}: cannot reopen for reading: {exc}") from None
            self._ds = self._file[self.name]  # looked up once: a lookup costs as much as a read
            self._pid = os.getpid()
        return self._ds

    def close(self) -> None:
        """Close the file handle (it reopens on the next read)."""
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = self._ds = None

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_file"] = state["_ds"] = None
        return state

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Rows start..stop-1 in one contiguous read."""
        start, stop = max(0, int(start)), min(len(self), int(stop))
        if stop <= start:
            return np.empty((0, *self.shape[1:]), dtype=np.uint8)
        try:
            block = self._dataset()[start:stop]
        except OSError as exc:
            raise DataFileError(
                f"{self.path}: cannot read {self.name!r} (corrupt?): {exc}"
            ) from None
        self.reads += 1
        self.rows_read += stop - start
        self.max_rows_per_read = max(self.max_rows_per_read, stop - start)
        return block

    def take(self, indices) -> np.ndarray:
        """The rows `indices` (any order, repeats allowed) as uint8 [n,H,W,C], in that order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index out of range for {n} images")
        idx = np.where(idx < 0, idx + n, idx)
        out = np.empty((idx.size, *self.shape[1:]), dtype=np.uint8)
        if not idx.size:
            return out
        order = np.argsort(idx, kind="stable")
        rows = idx[order]
        # runs: split where the next wanted row is more than max_gap rows past the last one
        breaks = np.flatnonzero(np.diff(rows) > self.max_gap + 1) + 1
        for run in np.split(np.arange(rows.size), breaks):
            lo, hi = int(rows[run[0]]), int(rows[run[-1]]) + 1
            block = self.read_rows(lo, hi)
            out[order[run]] = block[rows[run] - lo]
        return out

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self.take([int(key)])[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.read_rows(start, stop)
            return self.take(np.arange(start, stop, step))
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.take(key)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.uint8)
        step = max(1, (64 << 20) // max(1, self.row_bytes))
        for start in range(0, len(self), step):
            out[start : start + step] = self.read_rows(start, start + step)
        return out if dtype is None else out.astype(dtype)


@dataclass
class ImageData:
    """A prepared dataset: uint8 NHWC images, int64 labels, class names and normalisation.

    Each split's images are a NumPy array (in memory) or an `H5Images` (streamed from the
    file); both index the same way. Labels are always in memory.
    """

    name: str
    train_images: np.ndarray | H5Images
    train_labels: np.ndarray
    test_images: np.ndarray | H5Images
    test_labels: np.ndarray
    classes: list[str]
    mean: list[float]
    std: list[float]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_chans(self) -> int:
        return int(self.train_images.shape[3])

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[1])

    def class_indices(self) -> list[np.ndarray]:
        """Indices of the training samples of each class, in dataset order."""
        return [np.flatnonzero(self.train_labels == c) for c in range(self.num_classes)]

    def split(self, split: str) -> tuple[np.ndarray | H5Images, np.ndarray]:
        """(uint8 images, labels) of `train` or `test`."""
        if split == "train":
            return self.train_images, self.train_labels
        if split == "test":
            return self.test_images, self.test_labels
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'")

    def in_memory(self, split: str = "train") -> bool:
        """Whether the split's images are held in memory (False: streamed from the file)."""
        return isinstance(self.split(split)[0], np.ndarray)

    def iter_batches(
        self, split: str, batch_size: int, indices=None
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(float32 [b,C,H,W] in [0,1], int64 labels) per batch, over `indices` (default: all, in order)."""
        images, labels = self.split(split)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if indices is None:
            for start in range(0, len(labels), batch_size):
                stop = min(start + batch_size, len(labels))
                yield to_float_chw(images[start:stop]), labels[start:stop]
            return
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        for start in range(0, len(indices), batch_size):
            idx = indices[start : start + batch_size]
            yield to_float_chw(images[idx]), labels[idx]

    def train_float(self) -> np.ndarray:
        """Training images as float32 [N,C,H,W] in [0,1] (the whole split: small data only)."""
        return _split_float(self.train_images)

    def train_float_subset(self, indices) -> np.ndarray:
        """Some training images as float32 [n,C,H,W] in [0,1], in the order given."""
        return to_float_chw(self.train_images[np.asarray(indices, dtype=np.int64)])

    def test_float(self) -> np.ndarray:
        """Test images as float32 [N,C,H,W] in [0,1] (the whole split: small data only)."""
        return _split_float(self.test_images)

    def close(self) -> None:
        """Close the file handles of streamed splits (they reopen on the next read)."""
        for images in (self.train_images, self.test_images):
            if isinstance(images, H5Images):
                images.close()


def to_float_chw(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0,1]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def _split_float(images: np.ndarray | H5Images) -> np.ndarray:
    if isinstance(images, np.ndarray):
        return to_float_chw(images)
    n, h, w, c = images.shape
    out = np.empty((n, c, h, w), dtype=np.float32)
    step = max(1, (16 << 20) // max(1, images.row_bytes))
    for start in range(0, n, step):
        out[start : start + step] = to_float_chw(images[start : start + step])
    return out


def prepare_dataset(
    name: str, spec: dict, out: str | os.PathLike, *, workers: int | None = None
) -> dict:
    """Load a configured source and write it as a ddbench dataset HDF5; return a summary.

    Image folders are decoded by `workers` processes (default: the spec's `workers`, else
    min(4, CPUs)) straight into a chunked file, resumable after a kill
    (`ddbench.data.prepare`); the other sources are read into memory and written at once.
    """
    from ddbench.data.prepare import PARALLEL_KINDS, prepare_image_folder
    from ddbench.data.sources import load_source

    if spec.get("kind") in PARALLEL_KINDS:
        return prepare_image_folder(name, spec, out, workers=workers)
    raw = load_source(spec)
    for split, labels in (("train", raw.train_labels), ("test", raw.test_labels)):
        if labels.min() < 0 or labels.max() >= len(raw.classes):
            raise DataFileError(f"{raw.source}: {split} labels outside 0..{len(raw.classes) - 1}")
    floats = raw.train_images.astype(np.float64) / 255.0
    mean = floats.mean(axis=(0, 1, 2)).tolist()
    std = floats.std(axis=(0, 1, 2)).tolist()
    std = [max(s, 1e-3) for s in std]
    write_h5(
        out,
        "dataset",
        {
            "train/images": raw.train_images,
            "train/labels": raw.train_labels.astype(np.int64),
            "test/images": raw.test_images,
            "test/labels": raw.test_labels.astype(np.int64),
        },
        created_by="ddbench.data.datasets.prepare_dataset",
        params=spec,
        compress=False,  # read by every job: uncompressed uint8 loads fastest
        attrs={
            "name": name,
            "classes": json.dumps(list(raw.classes)),
            "mean": mean,
            "std": std,
            "source": raw.source,
            "source_sha256": raw.source_sha256,
        },
    )
    return {
        "name": name,
        "train": int(len(raw.train_labels)),
        "test": int(len(raw.test_labels)),
        "classes": len(raw.classes),
        "shape": list(raw.train_images.shape[1:]),
        "source_sha256": raw.source_sha256,
    }


def load_dataset(
    path: str | os.PathLike, train_images: bool = True, in_memory_max_bytes: int | None = None
) -> ImageData:
    """Read a prepared dataset file, checking format, shapes, dtypes and label range.

    `train_images=False` skips the training images (an empty [0,H,W,C] array stands in);
    labels, classes and normalisation are always read. Evaluation needs no more. A split
    whose uint8 images exceed `in_memory_max_bytes` (default: the in-memory switch, see
    `in_memory_max_bytes()`) is not read but streamed from the file (`H5Images`).
    """
    path = Path(path)
    limit = _in_memory_limit(in_memory_max_bytes)
    with open_h5(path, "dataset") as f:
        arrays = {}
        for split in ("train", "test"):
            if split == "train" and not train_images:
                if "train/images" not in f or f["train/images"].ndim != 4:
                    raise DataFileError(f"{path}: missing or malformed 'train/images'")
                images = np.zeros((0, *f["train/images"].shape[1:]), dtype=np.uint8)
                labels = read_array(f, "train/labels", ndim=1, dtype=np.integer).astype(np.int64)
                arrays[split] = (images, labels)
                continue
            images = _split_images(f, path, f"{split}/images", limit)
            labels = read_array(f, f"{split}/labels", ndim=1, dtype=np.integer).astype(np.int64)
            if len(images) != len(labels) and len(images):
                raise DataFileError(
                    f"{path}: {split} has {len(images)} images but {len(labels)} labels"
                )
            arrays[split] = (images, labels)
        try:
            classes = json.loads(f.attrs["classes"])
            mean = [float(v) for v in np.atleast_1d(f.attrs["mean"])]
            std = [float(v) for v in np.atleast_1d(f.attrs["std"])]
        except (KeyError, ValueError, TypeError) as exc:
            raise DataFileError(
                f"{path}: missing or bad attribute (classes, mean, std): {exc}"
            ) from None
        name = str(f.attrs.get("name", path.stem))
    check_identity(path, {"dataset": name})
    k = len(classes)
    for split, (images, labels) in arrays.items():
        if len(labels) and (labels.min() < 0 or labels.max() >= k):
            raise DataFileError(f"{path}: {split} labels outside 0..{k - 1}")
        if images.shape[1:] != arrays["train"][0].shape[1:]:
            raise DataFileError(
                f"{path}: {split} image shape {images.shape[1:]} differs from train"
            )
    return ImageData(
        name=name,
        train_images=arrays["train"][0],
        train_labels=arrays["train"][1],
        test_images=arrays["test"][0],
        test_labels=arrays["test"][1],
        classes=classes,
        mean=mean,
        std=std,
    )


def _in_memory_limit(value: int | None) -> int:
    """`in_memory_max_bytes()`, reachable where its name is shadowed by the argument."""
    return in_memory_max_bytes(value)


def _split_images(f, path: Path, name: str, limit: int) -> np.ndarray | H5Images:
    """The split's images: read into memory when at most `limit` bytes, else an `H5Images`."""
    if name not in f:
        raise DataFileError(f"{path}: missing dataset {name!r}")
    ds = f[name]
    if not hasattr(ds, "shape") or ds.ndim != 4:
        shape = getattr(ds, "shape", None)
        raise DataFileError(f"{path}: {name!r} has shape {shape}, expected 4 dimensions")
    if ds.dtype != np.uint8:
        raise DataFileError(f"{path}: {name!r} has dtype {ds.dtype}, expected {np.uint8}")
    nbytes = int(np.prod(ds.shape, dtype=np.int64))
    if nbytes <= limit:
        return read_array(f, name, ndim=4, dtype=np.uint8)
    return H5Images(path, name, ds.shape)
