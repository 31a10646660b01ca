"""Teachers: trained on the full training split, saved as a checked checkpoint plus a JSON recipe."""

from __future__ import annotations

import hashlib
import io
import os
import time
from pathlib import Path

import torch

from ddbench.data.datasets import ImageData, load_dataset
from ddbench.data.h5io import DataFileError, atomic_path, config_sha256, write_json
from ddbench.training.engine import (
    Classifier,
    accuracy,
    build_classifier,
    data_source,
    library_versions,
    peak_rss_mb,
    resolve_device,
    set_determinism,
    train,
)
from ddbench.training.protocols import teacher_protocol

CHECKPOINT_FORMAT = "ddbench.checkpoint/1"


def train_teacher(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    out_pt: str | os.PathLike,
    out_json: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Train the teacher `name` (config `spec`) on the full training split and save it."""
    seed = int(spec.get("seed", 0))
    set_determinism(seed, threads)
    dev = resolve_device(device)
    data = load_dataset(dataset_path)
    model = make_model(spec, data)
    protocol = teacher_protocol(name, spec)
    labels = torch.from_numpy(data.train_labels)
    t0 = time.perf_counter()
    result = train(
        model,
        data_source(data),  # uint8 read and made float per batch (streamed for large splits)
        labels,
        protocol,
        seed,
        n_full=len(labels),
        device=dev,
        desc=f"teacher {name}",
    )
    acc = accuracy(model, data_source(data, "test"), torch.from_numpy(data.test_labels))
    model.cpu()
    weights_sha = save_checkpoint(model, spec, data, out_pt)
    summary = {
        "teacher": name,
        "dataset": data.name,
        "model": spec["model"],
        "recipe": protocol.to_dict(),
        "seed": seed,
        "test_accuracy": acc,
        "final_train_loss": result.final_train_loss,
        "train_seconds": time.perf_counter() - t0,
        "images_per_s": result.images_per_s,
        "peak_rss_mb": peak_rss_mb(),
        "config_sha256": config_sha256(spec),
        "weights_file": Path(out_pt).name,
        "weights_sha256": weights_sha,
        "versions": library_versions(),
    }
    write_json(out_json, summary)
    return summary


def make_model(spec: dict, data: ImageData) -> Classifier:
    """Build the classifier a teacher or student spec names, for this dataset."""
    kwargs = {}
    if spec.get("small_stem") is not None:
        kwargs["small_stem"] = spec["small_stem"]
    return build_classifier(
        spec["model"],
        data.num_classes,
        data.in_chans,
        data.image_size,
        data.mean,
        data.std,
        **kwargs,
    )


def save_checkpoint(model: Classifier, spec: dict, data: ImageData, path: str | os.PathLike) -> str:
    """Save weights and the architecture description atomically; returns the file's SHA-256."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "model": spec["model"],
        "small_stem": spec.get("small_stem"),
        "num_classes": data.num_classes,
        "in_chans": data.in_chans,
        "image_size": data.image_size,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    return save_torch(payload, path)


def save_torch(payload: dict, path: str | os.PathLike) -> str:
    """`torch.save` atomically and byte-reproducibly; returns the file's SHA-256.

    Saving to a file path names the archive's entries after the (random) temporary file,
    so two identical runs would differ in bytes; saving through a buffer names them
    `archive/…` always.
    """
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def load_teacher(path: str | os.PathLike, data: ImageData) -> Classifier:
    """Load a teacher checkpoint safely (weights only) and check it fits the dataset."""
    from ddbench.training.models import load_state_checked

    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: checkpoint does not exist")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or unsafe pickle content
        raise DataFileError(f"{path}: not a readable ddbench checkpoint: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise DataFileError(f"{path}: not a {CHECKPOINT_FORMAT} checkpoint")
    want = (data.num_classes, data.in_chans, data.image_size)
    got = (payload["num_classes"], payload["in_chans"], payload["image_size"])
    if want != got:
        raise DataFileError(
            f"{path}: checkpoint is for (classes, channels, size) = {got}, dataset has {want}"
        )
    model = make_model({"model": payload["model"], "small_stem": payload.get("small_stem")}, data)
    try:
        load_state_checked(model, payload["state_dict"], path)
    except ValueError as exc:
        raise DataFileError(str(exc)) from None
    return model.eval()
