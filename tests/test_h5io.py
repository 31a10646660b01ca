"""Tests for ddbench.data.h5io: provenance attributes, format checks, corrupt files, atomic writes."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from ddbench import __version__
from ddbench.data.h5io import (
    FORMATS,
    DataFileError,
    atomic_path,
    config_sha256,
    file_sha256,
    h5_content_sha256,
    json_content_sha256,
    open_h5,
    read_array,
    read_attrs,
    write_h5,
    write_json,
)

PARAMS = {"method": "herding", "features": "convnet", "nested": {"b": [1, 2], "a": 0.5}}


def mentions(*parts: str) -> str:
    """A regex that matches when every part occurs in the message, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts)


def _write_scores(path: Path, n: int = 5000) -> dict[str, np.ndarray]:
    # n > 4096 elements: the gzip-compressed path is taken too
    arrays = {
        "probs": np.linspace(0, 1, n, dtype=np.float32).reshape(-1, 5),
        "labels": np.arange(n // 5, dtype=np.int64) % 3,
        "small/counts": np.array([1, 2, 3], dtype=np.int32),
    }
    write_h5(
        path,
        "scores",
        arrays,
        created_by="tests.test_h5io",
        params=PARAMS,
        seed=7,
        attrs={"ipc": 10, "name": "digits", "mean": [0.1, 0.2], "meta": {"k": "v"}, "none": None},
    )
    return arrays


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


# --------------------------------------------------------------------------- round trip


def test_write_read_round_trip_with_provenance(tmp_path: Path) -> None:
    path = tmp_path / "out" / "scores.h5"  # parent folder is created
    arrays = _write_scores(path)
    attrs = read_attrs(path, "scores")
    assert attrs["format"] == FORMATS["scores"] == "ddbench.stages.scores/1"
    assert attrs["ddbench_version"] == __version__
    assert attrs["created_by"] == "tests.test_h5io"
    assert attrs["config_sha256"] == config_sha256(PARAMS)
    assert re.fullmatch(r"[0-9a-f]{64}", attrs["config_sha256"])
    assert json.loads(attrs["params"]) == PARAMS
    assert attrs["seed"] == 7
    assert attrs["ipc"] == 10
    assert attrs["name"] == "digits"
    assert attrs["mean"] == pytest.approx([0.1, 0.2])
    assert json.loads(attrs["meta"]) == {"k": "v"}
    assert attrs["none"] == "null"
    with open_h5(path, "scores") as f:
        for name, array in arrays.items():
            got = read_array(f, name, ndim=array.ndim, dtype=array.dtype)
            assert got.dtype == array.dtype
            np.testing.assert_array_equal(got, array)
    assert _leftovers(path.parent) == []


def test_seed_none_and_params_none(tmp_path: Path) -> None:
    path = tmp_path / "f.h5"
    write_h5(path, "features", {"x": np.zeros((2, 3), np.float32)}, created_by="t")
    attrs = read_attrs(path, "features")
    assert attrs["seed"] == -1
    assert attrs["params"] == "{}"
    assert attrs["config_sha256"] == config_sha256({})


def test_config_sha256_is_stable_under_key_order() -> None:
    a = {"b": 1, "a": {"y": [1, 2], "x": "s"}, "c": None}
    b = {"c": None, "a": {"x": "s", "y": [1, 2]}, "b": 1}
    assert list(a) != list(b)
    assert config_sha256(a) == config_sha256(b)
    assert config_sha256(a) == config_sha256(json.loads(json.dumps(a)))
    assert config_sha256(a) != config_sha256({**a, "b": 2})
    assert config_sha256({"l": [1, 2]}) != config_sha256({"l": [2, 1]})  # list order matters


def test_config_sha256_written_is_independent_of_key_order(tmp_path: Path) -> None:
    data = {"x": np.zeros(3)}
    write_h5(tmp_path / "a.h5", "clusters", data, created_by="t", params={"k": 3, "a": 1})
    write_h5(tmp_path / "b.h5", "clusters", data, created_by="t", params={"a": 1, "k": 3})
    a = read_attrs(tmp_path / "a.h5", "clusters")
    b = read_attrs(tmp_path / "b.h5", "clusters")
    assert a["config_sha256"] == b["config_sha256"]
    assert a["params"] == b["params"]


def test_unknown_kind_is_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        write_h5(tmp_path / "x.h5", "nonsense", {}, created_by="t")
    assert not (tmp_path / "x.h5").exists()


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.h5"
    with pytest.raises(DataFileError, match=mentions(str(path), "does not exist")):
        read_attrs(path, "scores")


def test_truncated_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "trunc.h5"
    _write_scores(path)
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.truncate(size // 2)
    assert path.stat().st_size == size // 2
    with pytest.raises(DataFileError, match=mentions(str(path), "truncated or corrupt")):
        read_attrs(path, "scores")


def test_other_format_mentions_both_formats(tmp_path: Path) -> None:
    path = tmp_path / "scores.h5"
    _write_scores(path)
    with pytest.raises(
        DataFileError, match=mentions(str(path), "'ddbench.stages.scores/1'", "'ddbench.dataset/1'")
    ):
        read_attrs(path, "dataset")


def test_hdf5_without_format_attribute(tmp_path: Path) -> None:
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("x", data=np.arange(3))
    with pytest.raises(
        DataFileError, match=mentions(str(path), "''", "'ddbench.stages.features/1'")
    ):
        read_attrs(path, "features")


@pytest.mark.parametrize("content", [b"", b"hello, not hdf5\n", b"\x89HDF\r\n\x1a\n" + b"\0" * 8])
def test_non_hdf5_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "fake.h5"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=mentions(str(path), "not a readable HDF5 file")):
        read_attrs(path, "scores")


# --------------------------------------------------------------------------- read_array checks


def test_read_array_checks_name_ndim_and_dtype(tmp_path: Path) -> None:
    path = tmp_path / "scores.h5"
    _write_scores(path)
    with open_h5(path, "scores") as f:
        with pytest.raises(
            DataFileError, match=mentions(str(path), "'probs'", "expected 3 dimensions")
        ):
            read_array(f, "probs", ndim=3)
        with pytest.raises(DataFileError, match=mentions(str(path), "'labels'", "int64", "float")):
            read_array(f, "labels", dtype=np.floating)
        with pytest.raises(DataFileError, match=mentions(str(path), "'probs'", "uint8")):
            read_array(f, "probs", ndim=2, dtype=np.uint8)
        with pytest.raises(DataFileError, match=mentions(str(path), "missing dataset", "'nope'")):
            read_array(f, "nope")
        # dtype *kinds* are accepted
        assert read_array(f, "labels", ndim=1, dtype=np.integer).dtype == np.int64
        assert read_array(f, "small/counts", dtype=np.signedinteger).dtype == np.int32


# --------------------------------------------------------------------------- atomic writes


def test_atomic_path_failure_keeps_previous_content(tmp_path: Path) -> None:
    target = tmp_path / "data.h5"
    _write_scores(target)
    before = file_sha256(target)
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            assert tmp.parent == tmp_path
            assert tmp != target
            tmp.write_bytes(b"half-written garbage")
            raise RuntimeError("boom")
    assert file_sha256(target) == before
    assert read_attrs(target, "scores")["seed"] == 7
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5"]


def test_atomic_path_failure_without_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "new.json"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("{")
            raise KeyboardInterrupt  # BaseException: cleaned up too
    assert list(tmp_path.iterdir()) == []


def test_write_h5_failure_keeps_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "data.h5"
    _write_scores(target)
    before = file_sha256(target)
    with pytest.raises(TypeError):
        write_h5(target, "scores", {"bad": np.array([object()])}, created_by="t")
    assert file_sha256(target) == before
    assert _leftovers(tmp_path) == []


def test_atomic_path_success_replaces(tmp_path: Path) -> None:
    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    write_json(target, {"b": np.int64(2), "c": np.float32(0.5), "d": np.arange(2)})
    written = json.loads(target.read_text())
    assert written.pop("content_sha256") == json_content_sha256({"b": 2, "c": 0.5, "d": [0, 1]})
    assert written == {"b": 2, "c": 0.5, "d": [0, 1]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]


def test_written_files_respect_umask(tmp_path: Path) -> None:
    umask = os.umask(0)
    os.umask(umask)
    target = tmp_path / "x.json"
    write_json(target, {"a": 1})
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_content_hash_is_recorded_and_detects_a_changed_value(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    arrays = {"images": np.random.default_rng(0).random((70, 1, 8, 8), dtype=np.float32)}
    arrays["labels"] = np.arange(70)
    write_h5(path, "condensed", arrays, created_by="test")
    recorded, actual = h5_content_sha256(path)
    assert recorded == actual and len(recorded) == 64
    with h5py.File(path, "r+") as f:
        f["labels"][3] = 4  # same shape and dtype, one value changed in place
    assert h5_content_sha256(path)[1] != recorded


def test_content_hash_does_not_depend_on_block_size(tmp_path: Path) -> None:
    from ddbench.data.h5io import _ContentDigest

    array = np.arange(1000, dtype=np.int64).reshape(100, 10)
    whole, blocks = _ContentDigest(), _ContentDigest()
    whole.add("x", array)
    blocks.add("x", array, chunk_rows=7)
    assert whole.hexdigest() == blocks.hexdigest()
