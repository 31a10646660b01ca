"""Embeddings of the training split in a teacher's penultimate layer (IPC-independent target)."""

from __future__ import annotations

import os

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5


def extract_features(
    dataset_path: str | os.PathLike,
    teacher_path: str | os.PathLike,
    name: str,
    out: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Embed every training image with the teacher; store `/features` [N, D] and `/logits` [N, K]."""
    from ddbench.data.datasets import load_dataset
    from ddbench.stages.teachers import load_teacher
    from ddbench.training.engine import (
        data_source,
        embed,
        predict,
        resolve_device,
        set_determinism,
    )

    set_determinism(0, threads)
    data = load_dataset(dataset_path)
    teacher = load_teacher(teacher_path, data).to(resolve_device(device))
    images = data_source(data)  # read per batch: the split is never float all at once
    feats = embed(teacher, images).numpy().astype(np.float32)
    logits = predict(teacher, images).numpy().astype(np.float32)
    write_h5(
        out,
        "features",
        {"features": feats, "logits": logits, "labels": data.train_labels},
        created_by="ddbench.stages.features.extract_features",
        params={"extractor": name},
        attrs={"extractor": name, "dataset": data.name},
    )
    return {"shape": list(feats.shape)}


def load_features(path: str | os.PathLike, n_train: int, name: str = "features") -> np.ndarray:
    """Read `/features` (or `/logits`: the teacher's outputs), checking it covers the training split."""
    with open_h5(path, "features") as f:
        feats = read_array(f, name, ndim=2, dtype=np.floating)
    if len(feats) != n_train:
        raise DataFileError(f"{path}: {len(feats)} feature rows for {n_train} training images")
    if not np.isfinite(feats).all():
        raise DataFileError(f"{path}: features contain NaN or infinite values")
    return feats
