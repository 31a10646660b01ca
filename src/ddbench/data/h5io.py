"""Atomic HDF5 writing and format-checked reading for every file ddbench produces."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from ddbench import __version__

FORMATS = {
    "dataset": "ddbench.dataset/1",
    "condensed": "ddbench.condensed/1",
    "scores": "ddbench.stages.scores/1",
    "features": "ddbench.stages.features/1",
    "clusters": "ddbench.clusters/1",
    "pool": "ddbench.pool/1",
    "expert": "ddbench.expert/1",
}


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


from ddbench.errors import DataFileError  # noqa: E402  (re-exported for readers)


def config_sha256(params: Any) -> str:
    """Stable SHA-256 of a JSON-serialisable parameter structure."""
    text = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path in the target's folder; rename it onto `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for pattern in (f".{path.name}.*.tmp", f".{path.name}.*.tmp.paused"):  # left by a killed writer
        for stale in path.parent.glob(pattern):
            stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        _fault_pause(path, Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; results are shared files
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_folder(out_dir: str | os.PathLike, write) -> None:
    """`write(tmp)` fills a temporary folder beside `out_dir`, which is then renamed into place.

    A killed writer leaves only a hidden `.{name}.*.tmp` folder (removed by the next writer),
    never a folder that looks complete; an existing target is replaced only after success.
    """
    import shutil

    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*.tmp"):  # left by a killed writer
        shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        write(tmp)
        os.chmod(tmp, 0o755)
        if out.exists():
            old = out.with_name(f".{out.name}.old.tmp")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fault_pause(path: Path, tmp: Path) -> None:
    """Fault injection for the interruption tests: pause between writing and renaming.

    Active only when DDBENCH_FAULT_PAUSE_WRITE names a substring of the target path; a
    marker file `<tmp>.paused` tells the test that the file is half-way (written, not renamed).
    """
    pattern = os.environ.get("DDBENCH_FAULT_PAUSE_WRITE")
    if pattern and pattern in str(path):
        Path(f"{tmp}.paused").write_text(str(path))
        import time

        time.sleep(float(os.environ.get("DDBENCH_FAULT_PAUSE_SECONDS", "30")))


CONTENT_KEY = "content_sha256"


def json_content_sha256(obj: dict) -> str:
    """SHA-256 of a JSON object's content, its own `content_sha256` field left out.

    Computed on the JSON text's canonical form (sorted keys, no spaces), so it is the same
    before writing and after reading back.
    """
    body = {k: v for k, v in obj.items() if k != CONTENT_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=_json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON atomically; an object gets `content_sha256` of its content (see verify)."""
    if isinstance(obj, dict):
        obj = json.loads(json.dumps(obj, default=_json_default))  # numpy scalars -> JSON types
        obj[CONTENT_KEY] = json_content_sha256(obj)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(obj: Any):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON-serialisable: {type(obj).__name__}")


def folder_manifest(folder: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, str]:
    """Relative path -> SHA-256 of every file below `folder` (recorded so `verify` can check it)."""
    folder = Path(folder)
    return {
        p.relative_to(folder).as_posix(): file_sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() not in skip
    }


def write_h5(
    path: str | os.PathLike,
    kind: str,
    datasets: dict[str, np.ndarray],
    *,
    created_by: str,
    params: Any = None,
    seed: int | None = None,
    attrs: dict[str, Any] | None = None,
    compress: bool = True,
) -> None:
    """Write `datasets` (path inside file -> array) atomically with ddbench provenance attributes."""
    fmt = FORMATS[kind]
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = fmt
            f.attrs["ddbench_version"] = __version__
            f.attrs["created_by"] = created_by
            f.attrs["config_sha256"] = config_sha256(params if params is not None else {})
            f.attrs["params"] = json.dumps(params if params is not None else {}, sort_keys=True)
            f.attrs["seed"] = -1 if seed is None else int(seed)
            for key, value in (attrs or {}).items():
                f.attrs[key] = _attr_value(value)
            digest = _ContentDigest()
            for name in sorted(datasets):
                array = np.asarray(datasets[name])
                big = compress and array.size > 4096
                opts = {"compression": "gzip", "compression_opts": 4} if big else {}
                f.create_dataset(name, data=array, **opts)
                digest.add(name, array)
            f.attrs[CONTENT_KEY] = digest.hexdigest()


class _ContentDigest:
    """SHA-256 over datasets in name order: name, dtype, shape, then the C-order bytes."""

    def __init__(self) -> None:
        self._h = hashlib.sha256()

    def add(self, name: str, array, chunk_rows: int | None = None) -> None:
        """Add one dataset (a NumPy array or an h5py dataset, read in row blocks)."""
        shape = tuple(int(d) for d in array.shape)
        dtype = np.dtype(array.dtype)
        self._h.update(f"{name.strip('/')}\0{dtype.str}\0{shape}\n".encode())
        if not shape or shape[0] == 0:
            if shape == ():
                self._h.update(np.ascontiguousarray(array[()], dtype=dtype).tobytes())
            return
        row_bytes = max(1, dtype.itemsize * int(np.prod(shape[1:], dtype=np.int64)))
        step = chunk_rows or max(1, (64 << 20) // row_bytes)  # about 64 MB a block
        for start in range(0, shape[0], step):
            block = np.ascontiguousarray(array[start : start + step], dtype=dtype)
            self._h.update(memoryview(block).cast("B"))

    def hexdigest(self) -> str:
        """The digest so far."""
        return self._h.hexdigest()


def h5_content_sha256(path: str | os.PathLike) -> tuple[str | None, str]:
    """(recorded, recomputed) content SHA-256 of a ddbench HDF5 file.

    Recorded is None for files written before content hashes existed. Reads every dataset
    in blocks, so memory stays bounded; raises DataFileError if the file cannot be read.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            names: list[str] = []
            f.visititems(lambda n, obj: names.append(n) if isinstance(obj, h5py.Dataset) else None)
            digest = _ContentDigest()
            for name in sorted(names):
                digest.add(name, f[name])
            recorded = f.attrs.get(CONTENT_KEY)
    except OSError as exc:
        raise DataFileError(
            f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}"
        ) from None
    return (None if recorded is None else str(decode_attr(recorded))), digest.hexdigest()


def _attr_value(value: Any):
    if isinstance(value, (dict, list, tuple)) and not (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(v, (int, float)) for v in value)
    ):
        return json.dumps(value, sort_keys=True)
    if value is None:
        return "null"
    return value


def read_attrs(path: str | os.PathLike, kind: str) -> dict[str, Any]:
    """Open `path`, check its `format` against `kind`, return its root attributes."""
    with open_h5(path, kind) as f:
        return {k: decode_attr(v) for k, v in f.attrs.items()}


def decode_attr(value: Any):
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@contextmanager
def open_h5(path: str | os.PathLike, kind: str):
    """Open an HDF5 file for reading after checking it exists, is HDF5 and has the expected format."""
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise DataFileError(
            f"{path}: not a readable HDF5 file (truncated or corrupt?): {exc}"
        ) from None
    try:
        found = decode_attr(f.attrs.get("format", ""))
        want = FORMATS[kind]
        if found != want:
            raise DataFileError(
                f"{path}: format is {found!r}, expected {want!r} (is this the right file?)"
            )
        yield f
    finally:
        f.close()


def read_array(f: h5py.File, name: str, *, ndim: int | None = None, dtype=None) -> np.ndarray:
    """Read dataset `name` from an open file, checking rank and dtype kind."""
    if name not in f:
        raise DataFileError(f"{f.filename}: missing dataset {name!r}")
    try:
        array = f[name][()]
    except OSError as exc:
        raise DataFileError(f"{f.filename}: cannot read {name!r} (corrupt?): {exc}") from None
    if ndim is not None and array.ndim != ndim:
        raise DataFileError(
            f"{f.filename}: {name!r} has shape {array.shape}, expected {ndim} dimensions"
        )
    if dtype is not None and not np.issubdtype(array.dtype, dtype):
        raise DataFileError(f"{f.filename}: {name!r} has dtype {array.dtype}, expected {dtype}")
    return array
