"""Tests for ddbench.data.prepare: parallel, chunked, resumable preparation of image folders."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

import ddbench.data.prepare as prepare
from ddbench.data.datasets import load_dataset, prepare_dataset
from ddbench.data.h5io import h5_content_sha256, read_attrs
from ddbench.data.sources import SourceError

CLASSES = ["n01", "n02", "n03", "n04"]
TRAIN, TEST = 9, 4  # per class
SIZE = 12


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Noisy class-tinted images in differing sizes and formats (PNG, JPEG, upper-case JPG)."""
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    sizes = [(20, 15), (15, 20), (12, 12), (33, 10)]
    for split, count in (("train", TRAIN), ("val", TEST)):
        for k, wnid in enumerate(CLASSES):
            (root / split / wnid).mkdir(parents=True)
            for i in range(count):
                w, h = sizes[i % len(sizes)]
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                pixels[..., k % 3] //= 2
                ext = (".png", ".JPEG", ".jpg", ".JPG")[i % 4]
                Image.fromarray(pixels).save(root / split / wnid / f"im{i:02d}{ext}")
    return root


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    """Five images per chunk, so the fixture spans several chunks (and pool tasks)."""
    monkeypatch.setattr(prepare, "CHUNK_ROWS", (5, 5))
    monkeypatch.delenv("DDBENCH_FAULT_PREPARE_AFTER", raising=False)


def _spec(folder: Path, **over) -> dict:
    return {"kind": "imagefolder", "path": str(folder), "image_size": SIZE, **over}


def _serial(tmp_path: Path, spec: dict, monkeypatch) -> Path:
    """The file the in-memory path (sources.load_source, then write_h5) writes."""
    out = tmp_path / "serial" / "ds.h5"
    with monkeypatch.context() as m:
        m.setattr(prepare, "PARALLEL_KINDS", ())
        prepare_dataset("ds", spec, out)
    return out


def _read(path: Path) -> tuple[dict, dict]:
    with h5py.File(path, "r") as f:
        arrays = {
            k: f[k][()] for k in ("train/images", "train/labels", "test/images", "test/labels")
        }
    return arrays, read_attrs(path, "dataset")


def _assert_same_file(path: Path, reference: Path) -> None:
    arrays, attrs = _read(path)
    ref_arrays, ref_attrs = _read(reference)
    for key, ref in ref_arrays.items():
        assert arrays[key].dtype == ref.dtype and arrays[key].shape == ref.shape, key
        np.testing.assert_array_equal(arrays[key], ref, err_msg=key)
    np.testing.assert_allclose(attrs.pop("mean"), ref_attrs.pop("mean"), rtol=0, atol=1e-9)
    np.testing.assert_allclose(attrs.pop("std"), ref_attrs.pop("std"), rtol=0, atol=1e-9)
    attrs.pop("ddbench_version"), ref_attrs.pop("ddbench_version")
    # same identity (name, params, config hash), classes, source, source and content hashes
    assert attrs == ref_attrs
    recorded, recomputed = h5_content_sha256(path)
    assert recorded == recomputed


@pytest.mark.parametrize("workers", [1, 2])
def test_parallel_file_equals_the_in_memory_one(folder, tmp_path, monkeypatch, workers):
    spec = _spec(folder)
    out = tmp_path / "ds.h5"
    summary = prepare_dataset("ds", spec, out, workers=workers)
    assert summary["workers"] == workers
    assert (summary["train"], summary["test"]) == (TRAIN * len(CLASSES), TEST * len(CLASSES))
    _assert_same_file(out, _serial(tmp_path, spec, monkeypatch))
    data = load_dataset(out)  # the reader takes it as it is
    assert data.classes == CLASSES and data.train_images.shape == (36, SIZE, SIZE, 3)
    with h5py.File(out, "r") as f:
        images = f["train/images"]
        assert images.chunks == (5, SIZE, SIZE, 3) and images.compression is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.h5", "serial"]  # no partials


def test_one_and_two_workers_write_identical_arrays(folder, tmp_path):
    spec = _spec(folder, channels=1)
    prepare_dataset("ds", spec, tmp_path / "a" / "ds.h5", workers=1)
    prepare_dataset("ds", spec, tmp_path / "b" / "ds.h5", workers=2)
    a, attrs_a = _read(tmp_path / "a" / "ds.h5")
    b, attrs_b = _read(tmp_path / "b" / "ds.h5")
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert attrs_a["content_sha256"] == attrs_b["content_sha256"]
    assert attrs_a["mean"] == attrs_b["mean"] and attrs_a["std"] == attrs_b["std"]


def test_class_subset_grey_and_caps_equal_the_in_memory_path(folder, tmp_path, monkeypatch):
    spec = _spec(
        folder,
        channels=1,
        classes=["n03", "n01"],
        class_names=["three", "one"],
        max_train_per_class=7,
        max_test_per_class=2,
    )
    out = tmp_path / "ds.h5"
    prepare_dataset("ds", spec, out, workers=2)
    _assert_same_file(out, _serial(tmp_path, spec, monkeypatch))
    assert load_dataset(out).train_images.shape == (14, SIZE, SIZE, 1)


def test_workers_do_not_change_the_identity(folder, tmp_path):
    prepare_dataset("ds", _spec(folder, workers=2), tmp_path / "a" / "ds.h5")
    prepare_dataset("ds", _spec(folder), tmp_path / "b" / "ds.h5", workers=1)
    a, b = (
        read_attrs(tmp_path / "a" / "ds.h5", "dataset"),
        read_attrs(tmp_path / "b" / "ds.h5", "dataset"),
    )
    assert a["config_sha256"] == b["config_sha256"] and a["params"] == b["params"]


def _count_decodes(monkeypatch) -> list[int]:
    calls = [0]
    real = prepare.read_image

    def counting(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(prepare, "read_image", counting)
    return calls


@pytest.mark.parametrize("workers", [1, 2])
def test_failure_leaves_no_output_and_a_rerun_resumes(folder, tmp_path, monkeypatch, workers):
    spec = _spec(folder)
    out = tmp_path / "ds.h5"
    partial = prepare.partial_paths(out)
    monkeypatch.setenv("DDBENCH_FAULT_PREPARE_AFTER", "12")  # raise after the 3rd chunk
    with pytest.raises(RuntimeError, match="fault injected after 15 images"):
        prepare_dataset("ds", spec, out, workers=workers)
    assert not out.exists()
    assert all(p.exists() for p in partial.values())
    monkeypatch.delenv("DDBENCH_FAULT_PREPARE_AFTER")

    calls = _count_decodes(monkeypatch)
    prepare_dataset("ds", spec, out, workers=1)  # in-process, so the decodes are counted
    assert calls[0] == (TRAIN + TEST) * len(CLASSES) - 15  # the first 3 chunks are kept
    assert not any(p.exists() for p in partial.values())
    _assert_same_file(out, _serial(tmp_path, spec, monkeypatch))


def test_resume_across_the_split_boundary(folder, tmp_path, monkeypatch):
    spec = _spec(folder)
    out = tmp_path / "ds.h5"
    monkeypatch.setenv("DDBENCH_FAULT_PREPARE_AFTER", "38")  # train done (36) + one test chunk
    with pytest.raises(RuntimeError):
        prepare_dataset("ds", spec, out, workers=2)
    monkeypatch.delenv("DDBENCH_FAULT_PREPARE_AFTER")
    calls = _count_decodes(monkeypatch)
    prepare_dataset("ds", spec, out, workers=1)
    assert calls[0] == TEST * len(CLASSES) - 5
    _assert_same_file(out, _serial(tmp_path, spec, monkeypatch))


@pytest.mark.parametrize("damage", ["other_params", "corrupt_h5", "no_resume"])
def test_rerun_restarts_when_the_partial_cannot_be_continued(folder, tmp_path, monkeypatch, damage):
    spec = _spec(folder)
    out = tmp_path / "ds.h5"
    monkeypatch.setenv("DDBENCH_FAULT_PREPARE_AFTER", "10")
    with pytest.raises(RuntimeError):
        prepare_dataset("ds", spec, out, workers=1)
    monkeypatch.delenv("DDBENCH_FAULT_PREPARE_AFTER")
    if damage == "other_params":
        spec = _spec(folder, max_train_per_class=8)
    elif damage == "corrupt_h5":
        prepare.partial_paths(out)["h5"].write_bytes(b"not hdf5")
    calls = _count_decodes(monkeypatch)
    prepare.prepare_image_folder("ds", spec, out, workers=1, resume=damage != "no_resume")
    assert calls[0] == len(load_dataset(out).train_labels) + TEST * len(CLASSES)
    _assert_same_file(out, _serial(tmp_path, spec, monkeypatch))


def test_a_bad_image_fails_naming_it_and_writes_no_output(folder, tmp_path):
    import shutil

    root = tmp_path / "imgs"
    shutil.copytree(folder, root)
    bad = root / "train" / "n02" / "im03.jpg"
    bad.write_bytes(b"not a jpeg")
    out = tmp_path / "out" / "ds.h5"
    with pytest.raises(SourceError, match="im03.jpg"):
        prepare_dataset("ds", _spec(root), out, workers=2)
    assert not out.exists()


def test_normalisation_matches_numpy():
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (50, 7, 7, 3), dtype=np.uint8)
    images[..., 2] = rng.integers(100, 110, (50, 7, 7))
    hist = [np.bincount(images[..., c].ravel(), minlength=256).tolist() for c in range(3)]
    mean, std = prepare.normalisation(hist)
    floats = images.astype(np.float64) / 255.0
    np.testing.assert_allclose(mean, floats.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(std, floats.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    assert prepare.normalisation([[0] * 10 + [5] + [0] * 245])[1] == [1e-3]  # constant: floor


def test_chunk_rows_bounds(monkeypatch):
    monkeypatch.setattr(prepare, "CHUNK_ROWS", (64, 256))  # the shipped bounds
    assert prepare.chunk_rows(32 * 32 * 3, 10**6) == 256
    assert prepare.chunk_rows(224 * 224 * 3, 10**6) == 64
    assert prepare.chunk_rows(64 * 64 * 3, 30) == 30


KILLED_WRITER = """
import sys, time
import ddbench.data.prepare as prepare
prepare.CHUNK_ROWS = (5, 5)
real = prepare.read_image
def slow(*args, **kwargs):
    time.sleep(0.03)
    return real(*args, **kwargs)
prepare.read_image = slow
spec = {"kind": "imagefolder", "path": sys.argv[1], "image_size": int(sys.argv[3])}
prepare.prepare_image_folder("ds", spec, sys.argv[2], workers=1, checkpoint_seconds=0)
"""


def test_a_killed_job_resumes_from_its_last_checkpoint(folder, tmp_path, monkeypatch):
    import json
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "ds.h5"
    state = prepare.partial_paths(out)["state"]
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(folder), str(out), str(SIZE)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if state.exists() and json.loads(state.read_text())["done"]["train"] >= 10:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no handler runs: only the checkpoints count
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    done = sum(json.loads(state.read_text())["done"].values())
    assert 10 <= done < (TRAIN + TEST) * len(CLASSES)

    calls = _count_decodes(monkeypatch)
    prepare_dataset("ds", _spec(folder), out, workers=1)
    assert calls[0] == (TRAIN + TEST) * len(CLASSES) - done
    _assert_same_file(out, _serial(tmp_path, _spec(folder), monkeypatch))
