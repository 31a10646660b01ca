"""Tests for ddbench.data.datasets: preparing the digits source and checked reading of dataset files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from ddbench.data.datasets import ImageData, load_dataset, prepare_dataset, to_float_chw
from ddbench.data.h5io import DataFileError, read_attrs, write_h5
from ddbench.data.sources import load_source


def mentions(*parts: str) -> str:
    """A regex that matches when every part occurs in the message, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    path = tmp_path_factory.mktemp("digits") / "digits.h5"
    summary = prepare_dataset("digits", {"kind": "digits"}, path)
    return path, summary


def _write_dataset(
    path: Path, *, train_labels, test_labels, classes=("a", "b", "c"), **over
) -> None:
    n_train, n_test = len(train_labels), len(test_labels)
    arrays = {
        "train/images": np.zeros((n_train, 4, 4, 1), np.uint8),
        "train/labels": np.asarray(train_labels, dtype=np.int64),
        "test/images": np.zeros((n_test, 4, 4, 1), np.uint8),
        "test/labels": np.asarray(test_labels, dtype=np.int64),
    }
    arrays.update(over)
    write_h5(
        path,
        "dataset",
        arrays,
        created_by="tests.test_datasets",
        attrs={"name": "hand", "classes": json.dumps(list(classes)), "mean": [0.5], "std": [0.25]},
    )


# --------------------------------------------------------------------------- digits round trip


def test_prepare_and_load_digits(prepared: tuple[Path, dict]) -> None:
    path, summary = prepared
    data = load_dataset(path)
    assert isinstance(data, ImageData)
    assert data.name == "digits"
    assert data.train_images.shape == (1347, 8, 8, 1)
    assert data.test_images.shape == (450, 8, 8, 1)
    assert data.train_images.dtype == data.test_images.dtype == np.uint8
    assert data.train_labels.dtype == data.test_labels.dtype == np.int64
    assert data.train_labels.shape == (1347,)
    assert data.test_labels.shape == (450,)
    assert data.classes == [str(i) for i in range(10)]
    assert data.num_classes == 10
    assert data.in_chans == 1
    assert data.image_size == 8
    assert set(np.unique(data.train_labels)) == set(range(10))
    assert set(np.unique(data.test_labels)) == set(range(10))
    assert data.train_images.max() == 255  # 0..16 grey levels scaled to 0..255

    # one mean/std per channel, computed on the training split in [0, 1]
    floats = data.train_images.astype(np.float64) / 255.0
    assert len(data.mean) == len(data.std) == data.in_chans
    assert data.mean == pytest.approx(floats.mean(axis=(0, 1, 2)).tolist())
    assert data.std == pytest.approx(floats.std(axis=(0, 1, 2)).tolist())
    assert 0.0 < data.mean[0] < 1.0
    assert data.std[0] > 1e-3

    assert summary == {
        "name": "digits",
        "train": 1347,
        "test": 450,
        "classes": 10,
        "shape": [8, 8, 1],
        "source_sha256": summary["source_sha256"],
    }
    attrs = read_attrs(path, "dataset")
    assert re.fullmatch(r"[0-9a-f]{64}", attrs["source_sha256"])
    assert attrs["source_sha256"] == summary["source_sha256"]
    assert attrs["created_by"] == "ddbench.data.datasets.prepare_dataset"
    assert json.loads(attrs["params"]) == {"kind": "digits"}
    assert "load_digits" in attrs["source"]


def test_loaded_arrays_match_the_source(prepared: tuple[Path, dict]) -> None:
    path, _ = prepared
    data = load_dataset(path)
    raw = load_source({"kind": "digits"})
    np.testing.assert_array_equal(data.train_images, raw.train_images)
    np.testing.assert_array_equal(data.train_labels, raw.train_labels)
    np.testing.assert_array_equal(data.test_images, raw.test_images)
    np.testing.assert_array_equal(data.test_labels, raw.test_labels)


def test_helpers_on_loaded_digits(prepared: tuple[Path, dict]) -> None:
    data = load_dataset(prepared[0])
    idx = data.class_indices()
    assert len(idx) == 10
    assert sum(len(i) for i in idx) == len(data.train_labels)
    assert all((data.train_labels[i] == c).all() for c, i in enumerate(idx))
    x = data.train_float()
    assert x.shape == (1347, 1, 8, 8) and x.dtype == np.float32
    assert 0.0 <= x.min() and x.max() <= 1.0
    expected = data.test_images[..., 0].astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(to_float_chw(data.test_images)[:, 0], expected)


def test_prepare_is_deterministic(prepared: tuple[Path, dict], tmp_path: Path) -> None:
    first, summary = prepared
    second = tmp_path / "again.h5"
    assert prepare_dataset("digits", {"kind": "digits"}, second) == summary
    a, b = load_dataset(first), load_dataset(second)
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, field), getattr(b, field)
        assert x.dtype == y.dtype and x.shape == y.shape
        assert x.tobytes() == y.tobytes(), field
    assert (a.classes, a.mean, a.std) == (b.classes, b.mean, b.std)
    assert (
        read_attrs(first, "dataset")["config_sha256"]
        == read_attrs(second, "dataset")["config_sha256"]
    )


def test_prepare_caps_per_class(tmp_path: Path) -> None:
    spec = {"kind": "digits", "max_train_per_class": 3, "max_test_per_class": 2}
    summary = prepare_dataset("tiny", spec, tmp_path / "tiny.h5")
    data = load_dataset(tmp_path / "tiny.h5")
    assert summary["train"] == 30 and summary["test"] == 20
    assert np.bincount(data.train_labels).tolist() == [3] * 10
    assert np.bincount(data.test_labels).tolist() == [2] * 10
    assert data.name == "tiny"


# --------------------------------------------------------------------------- checked reading


def test_hand_written_dataset_loads(tmp_path: Path) -> None:
    path = tmp_path / "ok.h5"
    _write_dataset(path, train_labels=[0, 1, 2, 2], test_labels=[1, 0])
    data = load_dataset(path)
    assert data.classes == ["a", "b", "c"]
    assert data.train_labels.tolist() == [0, 1, 2, 2]
    assert data.mean == [0.5] and data.std == [0.25]


@pytest.mark.parametrize(
    ("train", "test", "split"),
    [([0, 1, 3], [0], "train"), ([0, 1, 2], [0, -1], "test"), ([0, 1, 2], [0, 7], "test")],
)
def test_labels_out_of_range(tmp_path: Path, train: list, test: list, split: str) -> None:
    path = tmp_path / "bad_labels.h5"
    _write_dataset(path, train_labels=train, test_labels=test)
    with pytest.raises(DataFileError, match=mentions(str(path), split, "labels outside 0..2")):
        load_dataset(path)


def test_image_label_count_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "mismatch.h5"
    _write_dataset(
        path,
        train_labels=[0, 1],
        test_labels=[0],
        **{"train/images": np.zeros((3, 4, 4, 1), np.uint8)},
    )
    with pytest.raises(DataFileError, match=mentions(str(path), "train has 3 images but 2 labels")):
        load_dataset(path)


def test_test_image_shape_differs(tmp_path: Path) -> None:
    path = tmp_path / "shape.h5"
    _write_dataset(
        path, train_labels=[0], test_labels=[0], **{"test/images": np.zeros((1, 5, 5, 1), np.uint8)}
    )
    with pytest.raises(DataFileError, match=mentions(str(path), "test image shape")):
        load_dataset(path)


@pytest.mark.parametrize(
    ("name", "array", "expect"),
    [
        ("train/images", np.zeros((2, 4, 4, 1), np.float32), "dtype float32"),
        ("train/images", np.zeros((2, 4, 4), np.uint8), "expected 4 dimensions"),
        ("test/labels", np.zeros(1, np.float64), "dtype float64"),
    ],
)
def test_wrong_array_kind(tmp_path: Path, name: str, array: np.ndarray, expect: str) -> None:
    path = tmp_path / "kind.h5"
    _write_dataset(path, train_labels=[0, 1], test_labels=[0], **{name: array})
    with pytest.raises(DataFileError, match=mentions(str(path), repr(name), expect)):
        load_dataset(path)


def test_wrong_format_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "scores.h5"
    write_h5(path, "scores", {"x": np.zeros(3)}, created_by="t")
    with pytest.raises(DataFileError, match=mentions(str(path), "'ddbench.dataset/1'")):
        load_dataset(path)


def test_missing_classes_attribute_is_a_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "noclasses.h5"
    arrays = {
        "train/images": np.zeros((1, 4, 4, 1), np.uint8),
        "train/labels": np.zeros(1, np.int64),
        "test/images": np.zeros((1, 4, 4, 1), np.uint8),
        "test/labels": np.zeros(1, np.int64),
    }
    write_h5(path, "dataset", arrays, created_by="t")
    with pytest.raises(DataFileError, match=re.escape(str(path))):
        load_dataset(path)
