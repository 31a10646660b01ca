"""No code runs from a data file: planted pickles, object arrays and oversized images are refused.

Every reader of a file that comes from outside the workflow (CIFAR batches, image folders,
external condensed sets) is given a file that would run `touch PLANTED_RAN` if it were
unpickled naively, or that is too large to decode; each must refuse it with an error naming
the file, and the marker must never appear.
"""

from __future__ import annotations

import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddbench.data import sources
from ddbench.data.sources import check_source, load_source
from ddbench.errors import DataFileError, SourceError
from ddbench.methods.external import load_external

MARKER = "PLANTED_RAN"


class Planted:
    """Pickles as a call of os.system: unpickling it naively runs a shell command."""

    def __init__(self, marker: Path):
        self.command = f"touch {shlex.quote(str(marker))}"

    def __reduce__(self):
        return (os.system, (self.command,))


def _dump(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # the protocol of the official (Python 2) files


def _rows(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3072), dtype=np.uint8)


def _write_cifar10(parent: Path, *, planted_meta: Path | None = None, planted_batch=None) -> Path:
    """A CIFAR-10 python folder; `planted_*` put a Planted object in batches.meta or a batch."""
    folder = parent / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = {b"data": _rows(10, i), b"labels": list(range(10)), b"batch_label": b"train"}
        if planted_batch is not None and i == 3:
            batch[b"filenames"] = [Planted(planted_batch)]
        _dump(folder / f"data_batch_{i}", batch)
    _dump(folder / "test_batch", {b"data": _rows(10, 0), b"labels": list(range(10))[::-1]})
    names: list = [f"class{i}".encode() for i in range(10)]
    if planted_meta is not None:
        names[4] = Planted(planted_meta)
    _dump(folder / "batches.meta", {b"label_names": names, b"num_vis": 3072})
    return folder


# --------------------------------------------------------------------------- CIFAR pickles


def test_planted_batches_meta_is_refused_without_running(tmp_path):
    marker = tmp_path / MARKER
    _write_cifar10(tmp_path / "data", planted_meta=marker)
    spec = {"kind": "cifar10", "path": str(tmp_path / "data")}
    for read in (check_source, load_source):
        with pytest.raises(SourceError) as err:
            read(spec)
        message = str(err.value)
        assert "batches.meta" in message
        assert "refused to unpickle global posix.system" in message
        assert "\n" not in message
        assert not marker.exists()


def test_planted_data_batch_is_refused_without_running(tmp_path):
    marker = tmp_path / MARKER
    _write_cifar10(tmp_path, planted_batch=marker)
    spec = {"kind": "cifar10", "path": str(tmp_path)}
    with pytest.raises(
        SourceError, match=r"data_batch_3: refused to unpickle global posix\.system"
    ):
        load_source(spec)
    assert not marker.exists()
    # `validate` reads only batches.meta, which is clean here: nothing planted runs either.
    info = check_source(spec)
    assert info["num_classes"] == 10 and info["classes"][4] == "class4"
    assert not marker.exists()


@pytest.mark.parametrize(
    "target",
    [
        (eval, ("1",)),  # builtins.eval
        (getattr, ("text", "upper")),  # builtins.getattr
        (Path, ("/",)),  # an arbitrary class
    ],
    ids=["eval", "getattr", "class"],
)
def test_only_cifar_globals_are_admitted(tmp_path, target):
    class Other:
        def __reduce__(self):
            return target

    folder = _write_cifar10(tmp_path)
    _dump(folder / "batches.meta", {b"label_names": [Other()] * 10})
    with pytest.raises(SourceError, match=r"batches\.meta: refused to unpickle global "):
        check_source({"kind": "cifar10", "path": tmp_path})


def test_layout_check_unpickles_nothing(tmp_path):
    marker = tmp_path / MARKER
    _write_cifar10(tmp_path, planted_meta=marker, planted_batch=marker)
    info = check_source({"kind": "cifar10", "path": tmp_path}, read_files=False)
    assert info == {"num_classes": None, "min_train_per_class": None, "classes": None}
    assert not marker.exists()


def test_layout_check_still_finds_missing_folders_and_files(tmp_path):
    with pytest.raises(SourceError, match=r"absent does not exist"):
        check_source({"kind": "cifar10", "path": tmp_path / "absent"}, read_files=False)
    folder = _write_cifar10(tmp_path)
    (folder / "test_batch").unlink()
    with pytest.raises(SourceError, match=r"lacks test_batch"):
        check_source({"kind": "cifar10", "path": tmp_path}, read_files=False)


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_genuine_cifar_batches_load_through_the_safe_unpickler(tmp_path, protocol):
    folder = _write_cifar10(tmp_path)
    # Rewrite every file with this protocol: the safe unpickler must admit what NumPy and
    # builtins write under old and new protocols alike.
    batches = {}
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        with open(folder / name, "rb") as fh:
            batches[name] = pickle.load(fh, encoding="bytes")
        batches[name][b"extra"] = {np.int64(7), np.float32(0.5)}
        with open(folder / name, "wb") as fh:
            pickle.dump(batches[name], fh, protocol=protocol)
    raw = load_source({"kind": "cifar10", "path": tmp_path})
    assert raw.classes == [f"class{i}" for i in range(10)]
    assert raw.train_images.shape == (50, 32, 32, 3) and raw.test_images.shape == (10, 32, 32, 3)
    first = batches["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(raw.train_images[0], first.reshape(3, 32, 32).transpose(1, 2, 0))
    np.testing.assert_array_equal(raw.test_labels, np.arange(10)[::-1])


def test_numpy1_era_batches_load(tmp_path):
    # The official files name numpy.core.multiarray (NumPy 1) and __builtin__ (Python 2) in
    # protocol-2 GLOBAL opcodes; rewrite this NumPy's names that way and load again.
    folder = _write_cifar10(tmp_path)
    for path in folder.iterdir():
        blob = path.read_bytes()
        if b"numpy._core.multiarray" in blob:
            path.write_bytes(blob.replace(b"cnumpy._core.", b"cnumpy.core."))
            assert b"cnumpy.core.multiarray\n_reconstruct\n" in path.read_bytes()
    raw = load_source({"kind": "cifar10", "path": tmp_path})
    assert raw.train_images.shape == (50, 32, 32, 3)
    np.testing.assert_array_equal(raw.test_labels, np.arange(10)[::-1])


# --------------------------------------------------------------------------- images


def test_imagefolder_image_over_the_pixel_cap_is_refused(tmp_path, monkeypatch):
    for split in ("train", "val"):
        (tmp_path / split / "a").mkdir(parents=True)
        Image.new("RGB", (8, 8), (1, 2, 3)).save(tmp_path / split / "a" / "small.png")
    big = tmp_path / "train" / "a" / "big.png"
    Image.new("RGB", (40, 30), (1, 2, 3)).save(big)
    spec = {"kind": "imagefolder", "path": str(tmp_path), "image_size": 8}
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(SourceError) as err:
        load_source(spec)
    message = str(err.value)
    assert str(big) in message and "40x30" in message and "1000 pixels" in message
    # under the cap the same folder loads
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 1200)
    assert load_source(spec).train_images.shape == (2, 8, 8, 3)


def test_pil_bomb_warning_is_an_error_with_the_cap(tmp_path, monkeypatch):
    path = tmp_path / "img.png"
    Image.new("L", (40, 30)).save(path)
    # PIL's own limit stricter than ours: its warning must become a SourceError, not a warning.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(SourceError, match=r"img\.png: image too large .* cap is 89478485 pixels"):
        sources._decode_image(path, path.read_bytes(), 8, "L")


def test_external_folder_image_over_the_pixel_cap_is_refused(tiny_data, tmp_path, monkeypatch):
    root = tmp_path / "set"
    for c, name in enumerate(tiny_data.classes):
        (root / name).mkdir(parents=True)
        img = tiny_data.train_images[tiny_data.train_labels == c][0][..., 0]
        Image.fromarray(img, mode="L").save(root / name / "0.png")
    assert load_external(root, tiny_data, 1).images.shape == (3, 1, 6, 6)
    monkeypatch.setattr(sources, "MAX_IMAGE_PIXELS", 35)  # images are 6x6 = 36 pixels
    with pytest.raises(DataFileError, match=r"set/a/0\.png: image is 6x6 \(36 pixels\).*cap of 35"):
        load_external(root, tiny_data, 1)


# --------------------------------------------------------------------------- external sets


def test_external_pt_with_a_planted_object_is_refused_without_running(tiny_data, tmp_path):
    marker = tmp_path / MARKER
    path = tmp_path / "set.pt"
    idx = np.concatenate([i[:1] for i in tiny_data.class_indices()])
    torch.save(
        {
            "images": torch.from_numpy(tiny_data.train_images[idx]),
            "labels": torch.from_numpy(tiny_data.train_labels[idx]),
            "classes": [Planted(marker)],
        },
        path,
    )
    with pytest.raises(DataFileError, match=r"set\.pt: cannot be loaded with torch\.load"):
        load_external(path, tiny_data, 1)
    assert not marker.exists()


def test_external_npz_with_an_object_array_is_refused_without_running(tiny_data, tmp_path):
    marker = tmp_path / MARKER
    path = tmp_path / "set.npz"
    idx = np.concatenate([i[:1] for i in tiny_data.class_indices()])
    planted = np.array([Planted(marker)], dtype=object)
    np.savez(path, images=tiny_data.train_images[idx], labels=planted)
    with pytest.raises(DataFileError, match=r"set\.npz: holds arrays that need pickle"):
        load_external(path, tiny_data, 1)
    assert not marker.exists()


def test_external_soft_labels_npy_with_an_object_array_is_refused(tiny_data, tmp_path):
    marker = tmp_path / MARKER
    root = tmp_path / "set"
    for c, name in enumerate(tiny_data.classes):
        (root / name).mkdir(parents=True)
        img = tiny_data.train_images[tiny_data.train_labels == c][0][..., 0]
        Image.fromarray(img, mode="L").save(root / name / "0.png")
    np.save(root / "soft_labels.npy", np.array([Planted(marker)] * 3, dtype=object))
    with pytest.raises(DataFileError, match=r"soft_labels\.npy: not a readable \.npy array"):
        load_external(root, tiny_data, 1)
    assert not marker.exists()


def test_external_npz_that_would_decompress_past_the_cap_is_refused(tmp_path, monkeypatch):
    from ddbench.methods import external

    path = tmp_path / "bomb.npz"
    np.savez_compressed(path, images=np.zeros((64, 1, 64, 64), np.float32), labels=np.zeros(64))
    assert path.stat().st_size < 20_000  # zeros compress to almost nothing
    monkeypatch.setattr(external, "MAX_NPZ_BYTES", 100_000)
    with pytest.raises(
        DataFileError, match=r"bomb\.npz: its arrays would decompress to .* over the cap"
    ):
        external._read_npz(path)
