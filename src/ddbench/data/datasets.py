"""The prepared-dataset HDF5 file (`resources/datasets/{dataset}.h5`): writing and checked reading."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5
from ddbench.workflow.paths import check_identity


@dataclass
class ImageData:
    """A prepared dataset: uint8 NHWC images, int64 labels, class names and normalisation."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
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

    def train_float(self) -> np.ndarray:
        """Training images as float32 [N,C,H,W] in [0,1]."""
        return to_float_chw(self.train_images)

    def train_float_subset(self, indices) -> np.ndarray:
        """Some training images as float32 [n,C,H,W] in [0,1], in the order given."""
        return to_float_chw(self.train_images[np.asarray(indices, dtype=np.int64)])

    def test_float(self) -> np.ndarray:
        """Test images as float32 [N,C,H,W] in [0,1]."""
        return to_float_chw(self.test_images)


def to_float_chw(images: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW in [0,1]."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


def prepare_dataset(name: str, spec: dict, out: str | os.PathLike) -> dict:
    """Load a configured source and write it as a ddbench dataset HDF5; return a summary."""
    from ddbench.data.sources import load_source

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


def load_dataset(path: str | os.PathLike, train_images: bool = True) -> ImageData:
    """Read a prepared dataset file, checking format, shapes, dtypes and label range.

    `train_images=False` skips the training images (an empty [0,H,W,C] array stands in);
    labels, classes and normalisation are always read. Evaluation needs no more.
    """
    path = Path(path)
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
            images = read_array(f, f"{split}/images", ndim=4, dtype=np.uint8)
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
