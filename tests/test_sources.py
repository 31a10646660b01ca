"""Tests for ddbench.data.sources: raw dataset readers on small fixtures in the real on-disk formats."""

from __future__ import annotations

import gzip
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ddbench.data.sources import LOADER_KINDS, RawData, SourceError, check_source, load_source

# --------------------------------------------------------------------------- fixture writers

FASHION_TRAIN_COUNTS = [3, 2, 4, 3, 2, 5, 3, 2, 3, 4]  # smallest class holds 2


def write_idx_images(path: Path, images: np.ndarray, magic: int = 2051) -> None:
    n, h, w = images.shape
    payload = struct.pack(">iiii", magic, n, h, w) + images.astype(np.uint8).tobytes()
    _write(path, payload)


def write_idx_labels(path: Path, labels: np.ndarray, magic: int = 2049) -> None:
    payload = struct.pack(">ii", magic, len(labels)) + labels.astype(np.uint8).tobytes()
    _write(path, payload)


def _write(path: Path, payload: bytes) -> None:
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


def make_fashion(folder: Path, gz: bool = True) -> dict[str, np.ndarray]:
    """Write Fashion-MNIST-style IDX files; labels are interleaved so class order matters."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    train_labels = rng.permutation(np.repeat(np.arange(10), FASHION_TRAIN_COUNTS))
    test_labels = rng.permutation(np.arange(10))
    train_images = rng.integers(0, 256, (len(train_labels), 28, 28), dtype=np.uint8)
    test_images = rng.integers(0, 256, (len(test_labels), 28, 28), dtype=np.uint8)
    ext = ".gz" if gz else ""
    write_idx_images(folder / f"train-images-idx3-ubyte{ext}", train_images)
    write_idx_labels(folder / f"train-labels-idx1-ubyte{ext}", train_labels)
    write_idx_images(folder / f"t10k-images-idx3-ubyte{ext}", test_images)
    write_idx_labels(folder / f"t10k-labels-idx1-ubyte{ext}", test_labels)
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def _to_rows(images_nhwc: np.ndarray) -> np.ndarray:
    """NHWC uint8 -> CIFAR rows of 3072 bytes (all red, then green, then blue)."""
    return np.ascontiguousarray(images_nhwc.transpose(0, 3, 1, 2)).reshape(len(images_nhwc), -1)


def make_cifar10(parent: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    train_images = rng.integers(0, 256, (20, 32, 32, 3), dtype=np.uint8)
    # One pixel with a distinct value per channel pins the CHW -> HWC conversion.
    train_images[0, 1, 2] = (200, 100, 50)
    train_labels = np.arange(20) % 10
    test_images = rng.integers(0, 256, (10, 32, 32, 3), dtype=np.uint8)
    test_labels = np.arange(10)[::-1].copy()
    for i in range(5):
        part = slice(4 * i, 4 * i + 4)
        _pickle(
            folder / f"data_batch_{i + 1}",
            {
                b"batch_label": f"training batch {i + 1} of 5".encode(),
                b"data": _to_rows(train_images[part]),
                b"labels": train_labels[part].tolist(),
            },
        )
    _pickle(
        folder / "test_batch",
        {b"data": _to_rows(test_images), b"labels": test_labels.tolist()},
    )
    _pickle(
        folder / "batches.meta",
        {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072},
    )
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


def make_cifar100(parent: Path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    folder = parent / "cifar-100-python"
    folder.mkdir(parents=True)
    train_images = rng.integers(0, 256, (200, 32, 32, 3), dtype=np.uint8)
    train_labels = np.arange(200) % 100
    test_images = rng.integers(0, 256, (100, 32, 32, 3), dtype=np.uint8)
    test_labels = np.arange(100)
    for name, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        _pickle(
            folder / name,
            {
                b"data": _to_rows(images),
                b"fine_labels": labels.tolist(),
                b"coarse_labels": (labels // 5).tolist(),
            },
        )
    _pickle(
        folder / "meta",
        {
            b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)],
        },
    )
    return {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }


COLOURS = {"n01": (255, 0, 0), "n02": (0, 200, 0), "n03": (10, 20, 250)}
TRAIN_PER_CLASS = {"n01": 3, "n02": 2, "n03": 4}


def make_imagefolder(root: Path, split_name: str = "val") -> Path:
    """Solid-colour images per class in differing sizes and formats."""
    sizes = [(40, 30), (30, 40), (17, 17), (64, 20)]
    for split, counts in (("train", TRAIN_PER_CLASS), (split_name, dict.fromkeys(COLOURS, 1))):
        for wnid, count in counts.items():
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                img = Image.new("RGB", sizes[i % len(sizes)], COLOURS[wnid])
                img.save(folder / f"img{i}.png")
    # A JPEG with an upper-case extension must be picked up as well.
    Image.new("RGB", (24, 36), COLOURS["n01"]).save(root / "train" / "n01" / "z.JPG", quality=95)
    (root / "train" / "n01" / "notes.txt").write_text("not an image")
    return root


# --------------------------------------------------------------------------- general


def test_unknown_kind_lists_loader_kinds():
    with pytest.raises(SourceError) as err:
        load_source({"kind": "mnist3d"})
    for kind in LOADER_KINDS:
        assert kind in str(err.value)
    with pytest.raises(SourceError):
        check_source({"kind": "mnist3d"})


def test_import_stays_light():
    code = (
        "import sys, ddbench.data.sources; "
        "bad = [m for m in ('torch', 'sklearn') if m in sys.modules]; "
        "print(*bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _assert_well_formed(raw: RawData, channels: int) -> None:
    for images, labels in (
        (raw.train_images, raw.train_labels),
        (raw.test_images, raw.test_labels),
    ):
        assert images.dtype == np.uint8 and images.ndim == 4 and images.shape[3] == channels
        assert images.flags.c_contiguous
        assert labels.dtype == np.int64 and labels.shape == (len(images),)
        assert labels.min() >= 0 and labels.max() < len(raw.classes)
    assert len(raw.source_sha256) == 64


# --------------------------------------------------------------------------- digits


def test_digits_shapes_scale_and_deterministic_stratified_split():
    raw = load_source({"kind": "digits"})
    _assert_well_formed(raw, channels=1)
    assert raw.train_images.shape[1:] == (8, 8, 1)
    assert raw.classes == [str(i) for i in range(10)]
    assert len(raw.train_labels) + len(raw.test_labels) == 1797
    assert raw.train_images.max() == 255 and raw.train_images.min() == 0
    # Scaled values are exactly round(v * 255 / 16) for v in 0..16.
    allowed = {round(v * 255 / 16) for v in range(17)}
    assert set(np.unique(raw.train_images).tolist()) <= allowed
    again = load_source({"kind": "digits"})
    np.testing.assert_array_equal(raw.train_images, again.train_images)
    np.testing.assert_array_equal(raw.test_labels, again.test_labels)
    assert raw.source_sha256 == again.source_sha256
    total = np.bincount(np.concatenate([raw.train_labels, raw.test_labels]), minlength=10)
    test = np.bincount(raw.test_labels, minlength=10)
    assert np.all(np.abs(test - 0.25 * total) <= 1)

    info = check_source({"kind": "digits"})
    assert info["num_classes"] == 10
    assert info["min_train_per_class"] == np.bincount(raw.train_labels).min()
    assert info["classes"] == raw.classes


def test_digits_test_fraction_and_caps():
    raw = load_source(
        {"kind": "digits", "test_fraction": 0.5, "max_train_per_class": 7, "max_test_per_class": 3}
    )
    assert np.bincount(raw.train_labels).tolist() == [7] * 10
    assert np.bincount(raw.test_labels).tolist() == [3] * 10
    info = check_source({"kind": "digits", "max_train_per_class": 7})
    assert info["min_train_per_class"] == 7
    with pytest.raises(SourceError, match="test_fraction"):
        load_source({"kind": "digits", "test_fraction": 1.5})


# --------------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_round_trip(tmp_path, gz):
    expected = make_fashion(tmp_path / "fm", gz=gz)
    raw = load_source({"kind": "fashion_mnist", "path": str(tmp_path / "fm")})
    _assert_well_formed(raw, channels=1)
    assert raw.train_images.shape == (sum(FASHION_TRAIN_COUNTS), 28, 28, 1)
    np.testing.assert_array_equal(raw.train_images[..., 0], expected["train_images"])
    np.testing.assert_array_equal(raw.train_labels, expected["train_labels"])
    np.testing.assert_array_equal(raw.test_images[..., 0], expected["test_images"])
    np.testing.assert_array_equal(raw.test_labels, expected["test_labels"])
    assert len(raw.classes) == 10
    assert raw.classes[0] == "T-shirt/top" and raw.classes[9] == "Ankle boot"
    assert str(tmp_path / "fm") in raw.source


def test_fashion_mnist_check_source(tmp_path):
    make_fashion(tmp_path / "fm")
    info = check_source({"kind": "fashion_mnist", "path": tmp_path / "fm"})
    assert info["num_classes"] == 10
    assert info["min_train_per_class"] == min(FASHION_TRAIN_COUNTS)
    assert len(info["classes"]) == 10
    capped = check_source(
        {"kind": "fashion_mnist", "path": tmp_path / "fm", "max_train_per_class": 1}
    )
    assert capped["min_train_per_class"] == 1


def test_fashion_mnist_bad_magic_names_file(tmp_path):
    expected = make_fashion(tmp_path / "fm")
    write_idx_images(
        tmp_path / "fm" / "train-images-idx3-ubyte.gz", expected["train_images"], magic=2049
    )
    with pytest.raises(SourceError, match="train-images-idx3-ubyte.gz.*magic"):
        load_source({"kind": "fashion_mnist", "path": tmp_path / "fm"})


def test_fashion_mnist_truncated_and_mismatched_files(tmp_path):
    expected = make_fashion(tmp_path / "fm")
    path = tmp_path / "fm" / "t10k-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as fh:  # header claims 10 images, body holds 9
        fh.write(struct.pack(">iiii", 2051, 10, 28, 28) + bytes(9 * 28 * 28))
    with pytest.raises(SourceError, match="t10k-images-idx3-ubyte.gz"):
        load_source({"kind": "fashion_mnist", "path": tmp_path / "fm"})
    write_idx_images(path, expected["test_images"][:9])
    with pytest.raises(SourceError, match="9 images but .* 10 labels"):
        load_source({"kind": "fashion_mnist", "path": tmp_path / "fm"})


def test_fashion_mnist_missing_folder_or_file(tmp_path):
    missing = tmp_path / "nowhere"
    for fn in (load_source, check_source):
        with pytest.raises(SourceError) as err:
            fn({"kind": "fashion_mnist", "path": str(missing)})
        assert str(missing) in str(err.value)
        assert "apt-get install dataset-fashion-mnist" in str(err.value)
        assert "datasets." in str(err.value) and ".path" in str(err.value)
    make_fashion(tmp_path / "fm")
    (tmp_path / "fm" / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SourceError, match="train-labels-idx1-ubyte"):
        check_source({"kind": "fashion_mnist", "path": tmp_path / "fm"})


def test_fashion_mnist_sha_tracks_file_bytes(tmp_path):
    expected = make_fashion(tmp_path / "fm")
    spec = {"kind": "fashion_mnist", "path": tmp_path / "fm"}
    first = load_source(spec).source_sha256
    assert load_source(spec).source_sha256 == first
    changed = expected["train_images"].copy()
    changed[0, 0, 0] ^= 1
    write_idx_images(tmp_path / "fm" / "train-images-idx3-ubyte.gz", changed)
    assert load_source(spec).source_sha256 != first


def test_max_train_per_class_keeps_first_samples_in_order(tmp_path):
    expected = make_fashion(tmp_path / "fm")
    raw = load_source({"kind": "fashion_mnist", "path": tmp_path / "fm", "max_train_per_class": 2})
    labels = expected["train_labels"]
    keep = [i for i in range(len(labels)) if np.sum(labels[:i] == labels[i]) < 2]
    np.testing.assert_array_equal(raw.train_labels, labels[keep])
    np.testing.assert_array_equal(raw.train_images[..., 0], expected["train_images"][keep])
    assert np.bincount(raw.train_labels).tolist() == [2] * 10
    assert len(raw.test_labels) == len(expected["test_labels"])  # test split untouched
    with pytest.raises(SourceError, match="max_train_per_class"):
        load_source({"kind": "fashion_mnist", "path": tmp_path / "fm", "max_train_per_class": 0})


# --------------------------------------------------------------------------- CIFAR


def test_cifar10_round_trip_from_parent_or_folder(tmp_path):
    expected = make_cifar10(tmp_path)
    from_parent = load_source({"kind": "cifar10", "path": str(tmp_path)})
    from_folder = load_source({"kind": "cifar10", "path": str(tmp_path / "cifar-10-batches-py")})
    for raw in (from_parent, from_folder):
        _assert_well_formed(raw, channels=3)
        assert raw.train_images.shape == (20, 32, 32, 3)
        assert raw.train_images[0, 1, 2].tolist() == [200, 100, 50]
        for key, value in expected.items():
            np.testing.assert_array_equal(getattr(raw, key), value)
        assert raw.classes == [f"c{i}" for i in range(10)]
    assert from_parent.source_sha256 == from_folder.source_sha256

    info = check_source({"kind": "cifar10", "path": tmp_path})
    assert info["num_classes"] == 10 and info["classes"] == from_parent.classes
    assert info["min_train_per_class"] is None
    capped = check_source({"kind": "cifar10", "path": tmp_path, "max_train_per_class": 3})
    assert capped["min_train_per_class"] == 3


def test_cifar10_missing_files_are_named(tmp_path):
    make_cifar10(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(SourceError, match="data_batch_3"):
        check_source({"kind": "cifar10", "path": tmp_path})
    with pytest.raises(SourceError, match="does not exist"):
        load_source({"kind": "cifar10", "path": tmp_path / "absent"})
    with pytest.raises(SourceError, match=r"datasets\.cifar\.path"):
        load_source({"kind": "cifar10", "name": "cifar"})


def test_cifar10_sha_tracks_file_bytes(tmp_path):
    make_cifar10(tmp_path)
    first = load_source({"kind": "cifar10", "path": tmp_path}).source_sha256
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    _pickle(meta, {b"label_names": [f"k{i}".encode() for i in range(10)]})
    assert load_source({"kind": "cifar10", "path": tmp_path}).source_sha256 != first


def test_cifar100_fine_labels(tmp_path):
    expected = make_cifar100(tmp_path)
    raw = load_source({"kind": "cifar100", "path": tmp_path, "max_train_per_class": 1})
    _assert_well_formed(raw, channels=3)
    assert raw.classes == [f"fine{i}" for i in range(100)]
    np.testing.assert_array_equal(raw.train_labels, np.arange(100))  # first of each class
    np.testing.assert_array_equal(raw.train_images, expected["train_images"][:100])
    np.testing.assert_array_equal(raw.test_images, expected["test_images"])
    np.testing.assert_array_equal(raw.test_labels, expected["test_labels"])
    info = check_source({"kind": "cifar100", "path": tmp_path / "cifar-100-python"})
    assert info["num_classes"] == 100 and info["classes"] == raw.classes


# --------------------------------------------------------------------------- image folders


def test_imagefolder_shapes_colours_and_class_order(tmp_path):
    root = make_imagefolder(tmp_path / "imgs")
    raw = load_source({"kind": "imagefolder", "path": root, "image_size": 16})
    _assert_well_formed(raw, channels=3)
    assert raw.classes == ["n01", "n02", "n03"]
    # n01 holds 3 PNGs and 1 JPEG; the text file is ignored.
    assert raw.train_images.shape == (10, 16, 16, 3)
    assert np.bincount(raw.train_labels).tolist() == [4, 2, 4]
    assert raw.test_images.shape == (3, 16, 16, 3)
    for images, labels in (
        (raw.train_images, raw.train_labels),
        (raw.test_images, raw.test_labels),
    ):
        for image, label in zip(images, labels, strict=True):
            colour = np.array(COLOURS[raw.classes[label]])
            if image.std(axis=(0, 1)).max() == 0 and (image[0, 0] == colour).all():
                continue  # PNG: exact colour after resize and crop
            assert np.abs(image.astype(int) - colour).max() <= 8  # the JPEG: lossy but close

    order = ["n03", "n01", "n02"]
    names = ["three", "one", "two"]
    ordered = load_source(
        {
            "kind": "imagefolder",
            "path": root,
            "image_size": 16,
            "classes": order,
            "class_names": names,
        }
    )
    assert ordered.classes == names
    for label, wnid in enumerate(order):
        picked = ordered.train_images[ordered.train_labels == label]
        assert len(picked) == TRAIN_PER_CLASS[wnid] + (wnid == "n01")
        assert np.abs(picked[:, 8, 8].astype(int) - COLOURS[wnid]).max() <= 8


def test_imagefolder_png_colours_exact(tmp_path):
    root = make_imagefolder(tmp_path / "imgs")
    raw = load_source({"kind": "imagefolder", "path": root, "image_size": 16, "classes": ["n02"]})
    assert raw.classes == ["n02"]
    assert (raw.train_images == np.array(COLOURS["n02"], dtype=np.uint8)).all()
    assert (raw.test_images == np.array(COLOURS["n02"], dtype=np.uint8)).all()


def test_imagefolder_centre_crop_and_grey(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "test"):
        (root / split / "a").mkdir(parents=True)
        stripes = np.zeros((16, 48, 3), dtype=np.uint8)
        stripes[:, :16] = (255, 0, 0)
        stripes[:, 16:32] = (0, 255, 0)
        stripes[:, 32:] = (0, 0, 255)
        Image.fromarray(stripes).save(root / split / "a" / "wide.png")
    raw = load_source({"kind": "imagefolder", "path": root, "image_size": 16})
    assert (raw.train_images == np.array([0, 255, 0], dtype=np.uint8)).all()  # middle stripe
    grey = load_source({"kind": "imagefolder", "path": root, "image_size": 8, "channels": 1})
    assert grey.train_images.shape == (1, 8, 8, 1)
    assert grey.test_images.shape == (1, 8, 8, 1)


def test_imagefolder_check_source_and_caps(tmp_path):
    root = make_imagefolder(tmp_path / "imgs", split_name="test")
    info = check_source({"kind": "imagefolder", "path": root, "image_size": 16})
    assert info == {"num_classes": 3, "min_train_per_class": 2, "classes": ["n01", "n02", "n03"]}
    capped = check_source(
        {"kind": "imagefolder", "path": root, "image_size": 16, "max_train_per_class": 1}
    )
    assert capped["min_train_per_class"] == 1
    subset = check_source(
        {"kind": "imagefolder", "path": root, "image_size": 16, "classes": ["n03", "n01"]}
    )
    assert subset["num_classes"] == 2 and subset["min_train_per_class"] == 4
    raw = load_source(
        {"kind": "imagefolder", "path": root, "image_size": 16, "max_train_per_class": 2}
    )
    assert np.bincount(raw.train_labels).tolist() == [2, 2, 2]


def test_imagefolder_errors(tmp_path):
    root = make_imagefolder(tmp_path / "imgs")
    base = {"kind": "imagefolder", "path": root, "image_size": 16}
    with pytest.raises(SourceError, match="n99"):
        check_source({**base, "classes": ["n01", "n99"]})
    with pytest.raises(SourceError, match="image_size"):
        load_source({"kind": "imagefolder", "path": root})
    with pytest.raises(SourceError, match="class_names"):
        load_source({**base, "class_names": ["only one"]})

    (root / "train" / "n02" / "broken.png").write_bytes(b"definitely not a png")
    with pytest.raises(SourceError, match="broken.png"):
        load_source(base)
    (root / "train" / "n02" / "broken.png").unlink()

    for f in (root / "val" / "n03").iterdir():
        f.unlink()
    with pytest.raises(SourceError, match="n03.*no images"):
        load_source(base)

    flat = tmp_path / "flat"
    (flat / "cat").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(flat / "cat" / "a.png")
    with pytest.raises(SourceError, match="train/"):
        check_source({**base, "path": flat})
    with pytest.raises(SourceError, match=str(tmp_path / "absent")):
        check_source({**base, "path": tmp_path / "absent"})


def test_imagefolder_sha_tracks_file_bytes(tmp_path):
    root = make_imagefolder(tmp_path / "imgs")
    spec = {"kind": "imagefolder", "path": root, "image_size": 16}
    first = load_source(spec).source_sha256
    assert load_source(spec).source_sha256 == first
    Image.new("RGB", (40, 30), (255, 1, 0)).save(root / "train" / "n01" / "img0.png")
    assert load_source(spec).source_sha256 != first


# --------------------------------------------------------------------------- layout-only check

NO_COUNTS = {"num_classes": None, "min_train_per_class": None, "classes": None}


def _forbid_reading(monkeypatch) -> None:
    """Make every data-file reader and class-folder listing of ddbench.data.sources fail the test."""
    import ddbench.data.sources as sources

    def forbidden(*args, **kwargs):
        raise AssertionError(f"read_files=False read or listed {args[:1]}")

    for name in ("_unpickle", "_read_maybe_gzip", "_list_dirs", "_list_images", "_digits_split"):
        monkeypatch.setattr(sources, name, forbidden)
    monkeypatch.setattr(sources.os, "scandir", forbidden)


def test_check_source_without_reading_files_checks_only_the_layout(tmp_path, monkeypatch):
    make_fashion(tmp_path / "fashion")
    make_cifar100(tmp_path)
    root = make_imagefolder(tmp_path / "imgs")
    specs = [
        {"kind": "digits"},
        {"kind": "fashion_mnist", "path": tmp_path / "fashion"},
        {"kind": "cifar100", "path": tmp_path},
        {"kind": "imagefolder", "path": root, "image_size": 16},
    ]
    _forbid_reading(monkeypatch)
    for spec in specs:
        assert check_source(spec, read_files=False) == NO_COUNTS, spec["kind"]


def test_check_source_without_reading_files_still_reports_layout_and_option_errors(
    tmp_path, monkeypatch
):
    make_fashion(tmp_path / "fashion")
    (tmp_path / "fashion" / "t10k-labels-idx1-ubyte.gz").unlink()
    root = make_imagefolder(tmp_path / "imgs")
    (root / "val").rename(root / "holdout")
    _forbid_reading(monkeypatch)
    cases = [
        ({"kind": "digits", "test_fraction": 1.5}, "test_fraction"),
        ({"kind": "fashion_mnist", "path": tmp_path / "fashion"}, "t10k-labels-idx1-ubyte"),
        ({"kind": "cifar10", "path": tmp_path / "absent"}, "absent does not exist"),
        ({"kind": "imagefolder", "path": root, "image_size": 16}, "no val/ or test/"),
        ({"kind": "imagefolder", "path": tmp_path / "fashion", "image_size": 16}, "train"),
        ({"kind": "imagefolder", "path": root}, "image_size"),
        ({"kind": "digits", "max_train_per_class": 0}, "max_train_per_class"),
    ]
    for spec, message in cases:
        with pytest.raises(SourceError, match=message):
            check_source(spec, read_files=False)
