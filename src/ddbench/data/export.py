"""Export a condensed set as an image folder that other tools (and `external`) can read.

Layout of ``OUT_DIR``::

    000_T-shirt_top/0000.png ...   one sub-folder per class: 3-digit index, '_', class name with
                                   characters outside [A-Za-z0-9._-] replaced by '_' (index only,
                                   '000', when the class names are not known)
    labels.csv                     index,file,label,class: one row per image, in the set's order
    soft_labels.npy                float32 [n, K], rows in labels.csv order (only if the set has them)
    meta.json                      the set's provenance attributes and the quantisation error

Images are written losslessly as 8-bit PNG (grey ``L`` or ``RGB``): float pixels are rounded
to the nearest k/255, so export quantises to 8 bit. A set whose pixels already lie on that
grid (every coreset of a uint8 dataset) survives export and re-import bit for bit.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ddbench.data.h5io import DataFileError, file_sha256, read_attrs
from ddbench.methods.base import CondensedSet
from ddbench.methods.external import safe_class_name


def class_folder_names(num_classes: int, classes: list[str] | None = None) -> list[str]:
    """Sub-folder name per class: zero-padded index, plus '_' and the safe class name if known."""
    width = max(3, len(str(num_classes - 1)))
    if classes is None:
        return [f"{c:0{width}d}" for c in range(num_classes)]
    return [f"{c:0{width}d}_{safe_class_name(name)}" for c, name in enumerate(classes)]


def find_dataset_file(h5_path: str | os.PathLike, dataset: str) -> Path | None:
    """The workflow's `resources/datasets/{dataset}.h5` in a folder above the set, if any."""
    for parent in Path(h5_path).resolve().parents:
        candidate = parent / "resources" / "datasets" / f"{dataset}.h5"
        if candidate.is_file():
            return candidate
    return None


def export_set(
    h5_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    dataset: str | os.PathLike | None = None,
) -> dict:
    """Write the condensed set `h5_path` as PNG class folders + labels.csv (+ soft_labels.npy).

    Class names come from `dataset` (a prepared dataset file) or, when not given, from the
    workflow's `resources/datasets/{dataset}.h5` found above the set; else folders are
    named by index only. `out_dir` must not exist yet; it appears complete or not at all.
    """
    from PIL import Image

    h5_path, out_dir = Path(h5_path), Path(out_dir)
    cset = CondensedSet.load(h5_path)
    n, c = len(cset.images), cset.images.shape[1]
    if c not in (1, 3):
        raise DataFileError(f"{h5_path}: {c} channels; PNG export supports 1 (grey) or 3 (RGB)")
    classes = None
    dataset_file = (
        Path(dataset) if dataset is not None else find_dataset_file(h5_path, cset.dataset)
    )
    if dataset_file is not None:
        from ddbench.data.datasets import load_dataset

        data = load_dataset(dataset_file, train_images=False)
        shape = (data.in_chans, data.image_size, data.image_size)
        cset.validate(data.num_classes, shape, where=str(h5_path))
        classes = list(data.classes)
        num_classes = data.num_classes
    else:
        num_classes = (
            cset.soft_labels.shape[1]
            if cset.soft_labels is not None
            else int(cset.labels.max()) + 1
        )
        cset.validate(num_classes, tuple(cset.images.shape[1:]), where=str(h5_path))
    if out_dir.exists():
        raise DataFileError(f"{out_dir}: already exists; export writes a new folder")
    folders = class_folder_names(num_classes, classes)
    quantised = np.rint(cset.images * 255.0).clip(0, 255).astype(np.uint8)
    # error as re-imported (uint8 / 255 in float32): 0 for sets on the 8-bit grid
    reimported = quantised.astype(np.float32) / np.float32(255.0)
    max_error = float(np.abs(reimported - cset.images).max(initial=0.0))
    width = max(4, len(str(cset.ipc - 1)))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for folder in folders:
            (tmp / folder).mkdir()
        seen = np.zeros(num_classes, dtype=np.int64)
        rows = []
        for i in range(n):
            label = int(cset.labels[i])
            rel = f"{folders[label]}/{seen[label]:0{width}d}.png"
            seen[label] += 1
            pixels = quantised[i].transpose(1, 2, 0)
            img = Image.fromarray(
                pixels[..., 0] if c == 1 else pixels, mode="L" if c == 1 else "RGB"
            )
            img.save(tmp / rel, format="PNG")
            name = classes[label] if classes is not None else str(label)
            rows.append({"index": i, "file": rel, "label": label, "class": name})
        with open(tmp / "labels.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=["index", "file", "label", "class"])
            writer.writeheader()
            writer.writerows(rows)
        if cset.soft_labels is not None:
            np.save(tmp / "soft_labels.npy", cset.soft_labels.astype(np.float32))
        meta = {
            "exported_from": str(h5_path),
            "exported_from_sha256": file_sha256(h5_path),
            "attrs": read_attrs(h5_path, "condensed"),
            "classes": classes,
            "max_quantisation_error": max_error,
        }
        (tmp / "meta.json").write_text(
            json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
        )
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {
        "out_dir": str(out_dir),
        "images": n,
        "classes": num_classes,
        "ipc": cset.ipc,
        "soft_labels": cset.soft_labels is not None,
        "max_quantisation_error": max_error,
    }


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
