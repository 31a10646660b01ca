"""Parallel, resumable preparation of image-folder datasets into chunked uint8 HDF5.

`prepare_image_folder` writes the same dataset file as the serial path of
`ddbench.data.datasets.prepare_dataset` (same datasets, dtypes, attributes, `content_sha256`
and `source_sha256`; mean and std equal up to float rounding) without holding a split in
memory:

- the files are listed and checked by `ddbench.data.sources.plan_imagefolder` (the image-folder
  source's own rules: layout, class order, caps) and decoded by `sources.read_image` in a pool
  of `workers` processes, one HDF5 chunk (`chunk_rows` images) per task, results consumed in
  dataset order; at most `2 x workers` chunks are in flight, so memory is O(chunk x workers);
- `/train/images` and `/test/images` are chunked along N (whole images per chunk, no
  compression) and allocated when created, so writing pixels never changes the file's
  metadata;
- mean and std come from exact integer histograms of the training pixels (per channel);
- the file is written as `.<name>.partial` beside the output and renamed onto it at the end:
  a failed or killed job never leaves an output file.

Resuming: every few seconds (and at the end of each split) the partial file and a sidecar of
per-file SHA-256 digests (`.<name>.partial.sha256`) are flushed to disk, then a checkpoint
(`.<name>.partial.json`: how many images of each split are written, the histograms so far and
a fingerprint of the parameters and the file list) is replaced atomically. A rerun with the
same parameters and file list resumes after the last checkpoint; anything else (another
parameter, a changed file list, a missing or unreadable partial file) starts again from the
first image. Files whose content changes between a kill and the rerun are not detected: the
dataset then holds what was decoded, and `source_sha256` records exactly those bytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from collections import deque
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np

from ddbench import __version__
from ddbench.data.h5io import (
    _UMASK,
    CONTENT_KEY,
    FORMATS,
    _attr_value,
    config_sha256,
    h5_content_sha256,
    write_json,
)
from ddbench.data.sources import (
    ImageFolderPlan,
    SourceError,
    _manifest_sha256,
    plan_imagefolder,
    read_image,
)

# Source kinds prepared here; every other kind goes through sources.load_source.
PARALLEL_KINDS = ("imagefolder",)
CREATED_BY = "ddbench.data.datasets.prepare_dataset"  # the same file, whichever path wrote it
PARTIAL_FORMAT = "ddbench.prepare.partial/1"
SPLITS = ("train", "test")
CHUNK_BYTES = 4 << 20  # target size of one HDF5 chunk (one pool task)
CHUNK_ROWS = (64, 256)  # bounds on the images per chunk
DEFAULT_MAX_WORKERS = 4
CHECKPOINT_SECONDS = 10.0
DIGEST = 32  # bytes of one SHA-256


def default_workers() -> int:
    """min(4, the CPUs this process may run on)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(DEFAULT_MAX_WORKERS, cpus))


def chunk_rows(image_bytes: int, n: int) -> int:
    """Images per HDF5 chunk: about CHUNK_BYTES, within CHUNK_ROWS, at most the split's size."""
    lo, hi = CHUNK_ROWS
    return max(1, min(n, hi, max(lo, CHUNK_BYTES // max(1, image_bytes))))


def partial_paths(out: str | os.PathLike) -> dict[str, Path]:
    """The files a preparation keeps beside `out` until it finishes: h5, digests, checkpoint."""
    out = Path(out)
    base = out.parent / f".{out.name}.partial"
    return {
        "h5": base,
        "digests": base.with_name(base.name + ".sha256"),
        "state": base.with_name(base.name + ".json"),
    }


def prepare_image_folder(
    name: str,
    spec: dict,
    out: str | os.PathLike,
    *,
    workers: int | None = None,
    resume: bool = True,
    checkpoint_seconds: float = CHECKPOINT_SECONDS,
) -> dict:
    """Decode an image-folder source with a pool of processes into the dataset HDF5 `out`."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    workers = int(workers or spec.get("workers") or default_workers())
    params = {k: v for k, v in spec.items() if k != "workers"}  # not part of the identity
    plan = plan_imagefolder(params)
    shape = (plan.size, plan.size, plan.channels)
    rows = {s: chunk_rows(int(np.prod(shape)), len(plan.files[s])) for s in SPLITS}
    fingerprint = _fingerprint(name, params, plan, rows)
    paths = partial_paths(out)

    state = _resume_state(paths, fingerprint, plan) if resume else None
    if state is None:
        _remove(paths)
        state = _start(paths, fingerprint, plan, shape, rows)
    else:
        done = ", ".join(f"{s} {state['done'][s]}/{len(plan.files[s])}" for s in SPLITS)
        print(f"prepare {name}: resuming from {paths['h5']} ({done})", file=sys.stderr)

    _decode_all(plan, paths, state, rows, workers, checkpoint_seconds)
    source_sha256 = _finish(name, params, plan, paths, state, out)
    return {
        "name": name,
        "train": len(plan.files["train"]),
        "test": len(plan.files["test"]),
        "classes": len(plan.classes),
        "shape": list(shape),
        "source_sha256": source_sha256,
        "workers": workers,
    }


# --------------------------------------------------------------------------- decoding


def decode_chunk(files: list[str], size: int, mode: str) -> tuple[np.ndarray, bytes, np.ndarray]:
    """Decode files: (uint8 [n,H,W,C] images, their n SHA-256 digests, [C,256] pixel histogram)."""
    channels = 1 if mode == "L" else 3
    images = np.empty((len(files), size, size, channels), dtype=np.uint8)
    digests = bytearray()
    for i, file in enumerate(files):
        images[i], sha = read_image(Path(file), size, mode)
        digests += bytes.fromhex(sha)
    hist = np.stack(
        [np.bincount(images[..., c].ravel(), minlength=256) for c in range(channels)]
    ).astype(np.int64)
    return images, bytes(digests), hist


def _tasks(plan: ImageFolderPlan, state: dict, rows: dict[str, int]):
    """(split, start, stop) of every chunk not written yet, in dataset order."""
    for split in SPLITS:
        n = len(plan.files[split])
        for start in range(state["done"][split], n, rows[split]):
            yield split, start, min(n, start + rows[split])


def _decode_all(
    plan: ImageFolderPlan,
    paths: dict[str, Path],
    state: dict,
    rows: dict[str, int],
    workers: int,
    checkpoint_seconds: float,
) -> None:
    from tqdm import tqdm

    total = sum(len(plan.files[s]) for s in SPLITS)
    offset = {"train": 0, "test": len(plan.files["train"])}  # rows in the digest sidecar
    tasks = list(_tasks(plan, state, rows))
    if not tasks:
        return
    pool = None
    if workers > 1:
        import multiprocessing

        # fork: the workers need nothing but this module, and spawn/forkserver would re-run a
        # Snakemake script's __main__. The pool is made before any thread (tqdm's) starts.
        pool = multiprocessing.get_context("fork").Pool(workers)
    last_checkpoint = time.monotonic()
    try:
        with (
            h5py.File(paths["h5"], "r+") as f,
            open(paths["digests"], "r+b") as digests,
            tqdm(
                total=total,
                initial=sum(state["done"].values()),
                desc=f"{plan.root.name} decode ({workers} worker{'s' * (workers > 1)})",
                unit="img",
                file=sys.stderr,
                mininterval=5,
            ) as bar,
        ):
            hist = np.array(state["hist"], dtype=object)  # Python ints: exact at any size

            def submit(task):
                split, start, stop = task
                args = ([str(p) for p in plan.files[split][start:stop]], plan.size, plan.mode)
                return pool.apply_async(decode_chunk, args) if pool else args

            queue = deque()
            pending = iter(tasks)
            for task in pending:
                queue.append((task, submit(task)))
                if len(queue) >= 2 * workers:
                    break
            written = dict(state["done"])  # checkpointed or not
            try:
                while queue:
                    (split, start, stop), job = queue.popleft()
                    images, sums, chunk_hist = job.get() if pool else decode_chunk(*job)
                    next_task = next(pending, None)
                    if next_task is not None:
                        queue.append((next_task, submit(next_task)))
                    f[f"{split}/images"][start:stop] = images
                    digests.seek((offset[split] + start) * DIGEST)
                    digests.write(sums)
                    if split == "train":
                        hist = hist + chunk_hist.astype(object)
                    written[split] = stop
                    bar.update(stop - start)
                    split_end = stop == len(plan.files[split])
                    if split_end or time.monotonic() - last_checkpoint >= checkpoint_seconds:
                        _checkpoint(f, digests, paths, state, written, hist)
                        last_checkpoint = time.monotonic()
                    _fault_after_chunk(written)
            except BaseException:
                # a decoding error or an interrupt: keep what is written for the next run
                if written != state["done"]:
                    _checkpoint(f, digests, paths, state, written, hist)
                raise
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _fault_after_chunk(written: dict[str, int]) -> None:
    """Test hook: raise once DDBENCH_FAULT_PREPARE_AFTER images have been written."""
    limit = os.environ.get("DDBENCH_FAULT_PREPARE_AFTER")
    if limit is not None and sum(written.values()) >= int(limit):
        raise RuntimeError(f"fault injected after {sum(written.values())} images")


def _checkpoint(
    f: h5py.File,
    digests,
    paths: dict[str, Path],
    state: dict,
    written: dict[str, int] | None = None,
    hist: np.ndarray | None = None,
) -> None:
    """Make what is written durable, then record how far it goes (atomically)."""
    f.flush()
    os.fsync(f.id.get_vfd_handle())
    digests.flush()
    os.fsync(digests.fileno())
    if written is not None:
        state["done"] = dict(written)
        state["hist"] = hist.tolist()
    write_json(paths["state"], state)


# --------------------------------------------------------------------------- partial files


def _fingerprint(name: str, params: dict, plan: ImageFolderPlan, rows: dict[str, int]) -> str:
    """SHA-256 of what the partial file's content depends on (parameters and the file list)."""
    digest = hashlib.sha256()
    head = {
        "format": PARTIAL_FORMAT,
        "version": __version__,
        "name": name,
        "params": config_sha256(params),
        "source": plan.source,
        "classes": plan.classes,
        "rows": rows,
    }
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for split in SPLITS:
        digest.update(f"\n{split}\n".encode())
        for path in plan.files[split]:
            digest.update(path.relative_to(plan.root).as_posix().encode() + b"\0")
        digest.update(plan.labels[split].tobytes())
    return digest.hexdigest()


def _remove(paths: dict[str, Path]) -> None:
    for path in paths.values():
        path.unlink(missing_ok=True)


def _start(
    paths: dict[str, Path],
    fingerprint: str,
    plan: ImageFolderPlan,
    shape: tuple[int, int, int],
    rows: dict[str, int],
) -> dict:
    """Create the partial file (images allocated, labels written), the sidecar and checkpoint 0."""
    with h5py.File(paths["h5"], "w") as f:
        for split in SPLITS:
            n = len(plan.files[split])
            dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
            dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)  # no metadata change while writing
            f.create_dataset(
                f"{split}/images",
                shape=(n, *shape),
                dtype=np.uint8,
                chunks=(rows[split], *shape),
                dcpl=dcpl,
                fill_time="never",
            )
            f.create_dataset(f"{split}/labels", data=plan.labels[split].astype(np.int64))
    total = sum(len(plan.files[s]) for s in SPLITS)
    with open(paths["digests"], "wb") as fh:
        fh.truncate(total * DIGEST)
    state = {
        "format": PARTIAL_FORMAT,
        "fingerprint": fingerprint,
        "done": dict.fromkeys(SPLITS, 0),
        "hist": [[0] * 256 for _ in range(plan.channels)],
    }
    with h5py.File(paths["h5"], "r+") as f, open(paths["digests"], "r+b") as fh:
        _checkpoint(f, fh, paths, state)
    return state


def _resume_state(paths: dict[str, Path], fingerprint: str, plan: ImageFolderPlan) -> dict | None:
    """The checkpoint of a partial file that this preparation can continue, else None."""
    if not all(p.exists() for p in paths.values()):
        return None
    try:
        state = json.loads(paths["state"].read_text())
        if state.get("format") != PARTIAL_FORMAT or state.get("fingerprint") != fingerprint:
            return None
        total = sum(len(plan.files[s]) for s in SPLITS)
        if paths["digests"].stat().st_size != total * DIGEST:
            return None
        with h5py.File(paths["h5"], "r") as f:
            for split in SPLITS:
                done = int(state["done"][split])
                if not 0 <= done <= len(plan.files[split]):
                    return None
                if f[f"{split}/images"].shape[0] != len(plan.files[split]):
                    return None
        if len(state["hist"]) != plan.channels:
            return None
    except (OSError, ValueError, KeyError, TypeError):  # unreadable: start again
        return None
    return state


# --------------------------------------------------------------------------- finishing


def normalisation(hist: list[list[int]]) -> tuple[list[float], list[float]]:
    """Per-channel mean and std (floor 1e-3) of pixels / 255 from their [C,256] histogram.

    Exact rational arithmetic on the integer counts, rounded once to float: equal to
    `(images / 255).mean/std` up to that rounding.
    """
    means, stds = [], []
    for counts in hist:
        n = sum(counts)
        s1 = sum(v * c for v, c in enumerate(counts))
        s2 = sum(v * v * c for v, c in enumerate(counts))
        means.append(float(Fraction(s1, 255 * n)))
        var = Fraction(n * s2 - s1 * s1, (255 * n) ** 2)
        stds.append(max(math.sqrt(var), 1e-3))
    return means, stds


def _source_sha256(plan: ImageFolderPlan, digests: Path) -> str:
    """`sources._manifest_sha256` of every decoded file (relative path -> file SHA-256)."""
    raw = np.fromfile(digests, dtype=np.uint8).reshape(-1, DIGEST)
    files = [*plan.files["train"], *plan.files["test"]]
    entries = {
        path.relative_to(plan.root).as_posix(): raw[i].tobytes().hex()
        for i, path in enumerate(files)
    }
    return _manifest_sha256(entries)


def _finish(
    name: str,
    params: dict,
    plan: ImageFolderPlan,
    paths: dict[str, Path],
    state: dict,
    out: Path,
) -> str:
    """Write the attributes of `write_h5` and the content hash, then rename onto `out`."""
    mean, std = normalisation(state["hist"])
    source_sha256 = _source_sha256(plan, paths["digests"])
    attrs = {
        "format": FORMATS["dataset"],
        "ddbench_version": __version__,
        "created_by": CREATED_BY,
        "config_sha256": config_sha256(params),
        "params": json.dumps(params, sort_keys=True),
        "seed": -1,
        "name": name,
        "classes": json.dumps(list(plan.classes)),
        "mean": mean,
        "std": std,
        "source": plan.source,
        "source_sha256": source_sha256,
    }
    with h5py.File(paths["h5"], "r+") as f:
        for key, value in attrs.items():
            f.attrs[key] = _attr_value(value)
    _, content = h5_content_sha256(paths["h5"])  # read back in blocks: bounded memory
    with h5py.File(paths["h5"], "r+") as f:
        f.attrs[CONTENT_KEY] = content
        f.flush()
        os.fsync(f.id.get_vfd_handle())
    os.chmod(paths["h5"], 0o666 & ~_UMASK)  # as atomic_path: results are shared files
    os.replace(paths["h5"], out)
    paths["digests"].unlink(missing_ok=True)
    paths["state"].unlink(missing_ok=True)
    return source_sha256


__all__ = [
    "PARALLEL_KINDS",
    "SourceError",
    "chunk_rows",
    "decode_chunk",
    "default_workers",
    "normalisation",
    "partial_paths",
    "prepare_image_folder",
]
