"""Evaluation: train a student on a condensed set (or the full split) under a protocol, test it.

Also the set-dependent parts of a protocol (`labels: stored`, `lr: from_set`) and the ZCA
whitening of MTT/DATM/KIP-style sets (`fit_zca`, `ZCAWhitening`).
"""

from __future__ import annotations

import hashlib
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ddbench.data.datasets import ImageData, load_dataset
from ddbench.data.h5io import DataFileError, config_sha256, file_sha256, read_attrs, write_json
from ddbench.methods.base import CondensedSet
from ddbench.stages.teachers import load_teacher, make_model, save_torch
from ddbench.training.engine import (
    accuracy,
    data_source,
    library_versions,
    peak_rss_mb,
    resolve_device,
    set_determinism,
    train,
)
from ddbench.training.protocols import PRESETS, Protocol

# kornia.enhance.ZCAWhitening's default, which the MTT, DATM and KIP code fits on the train split
ZCA_EPSILON = 0.1
# largest C*H*W fitted: the covariance and its eigenvectors are D x D float64 (1.1 GiB each here)
ZCA_MAX_FEATURES = 3 * 64 * 64


@dataclass(frozen=True)
class ZCAWhitening:
    """ZCA whitening fitted on a train split: x -> (flatten(x) - mean) @ matrix, per image."""

    mean: np.ndarray  # [D] float64, D = C*H*W
    matrix: np.ndarray  # [D, D] float64, symmetric: U diag(1/sqrt(S + epsilon)) U^T
    epsilon: float
    n_fit: int

    def __call__(self, images: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Whitened float32 copy of float images [n, C, H, W] in [0, 1]."""
        shape = images.shape
        flat = images.reshape(shape[0], -1)
        out = np.empty(flat.shape, dtype=np.float32)
        for i in range(0, len(flat), batch_size):
            part = flat[i : i + batch_size].astype(np.float64) - self.mean
            out[i : i + batch_size] = part @ self.matrix
        return out.reshape(shape)

    def sha256(self) -> str:
        """Fingerprint of the transform (mean and matrix bytes), for the evaluation record."""
        digest = hashlib.sha256(np.ascontiguousarray(self.mean).tobytes())
        digest.update(np.ascontiguousarray(self.matrix).tobytes())
        return digest.hexdigest()


def fit_zca(data: ImageData, epsilon: float = ZCA_EPSILON, batch_size: int = 1024) -> ZCAWhitening:
    """ZCA whitening of the train split as kornia's ZCAWhitening fits it (MTT/DATM/KIP).

    Each [0, 1] image is flattened; the per-feature mean is subtracted; the unbiased covariance
    (N - 1) is accumulated batch by batch in float64 (the split is streamed, never held as
    floats); its eigen-decomposition gives matrix = U diag(1 / sqrt(S + epsilon)) U^T
    (eigenvalues clipped at 0). Deterministic: fixed batch order, float64, numpy's eigh.
    """
    if epsilon <= 0:
        raise ValueError(f"ZCA epsilon must be > 0, got {epsilon}")
    n = len(data.train_labels)
    if n < 2:
        raise ValueError("ZCA needs at least two training images")
    dim = data.in_chans * data.image_size * data.image_size
    if dim > ZCA_MAX_FEATURES:
        raise ValueError(
            f"ZCA of {data.name!r} would need a {dim} x {dim} matrix "
            f"({dim * dim * 8 / 2**30:.0f} GiB); it is offered up to {ZCA_MAX_FEATURES} "
            "features (64 x 64 RGB), as the MTT/DATM/KIP repos use it on small images"
        )
    total = np.zeros(dim, dtype=np.float64)
    gram = np.zeros((dim, dim), dtype=np.float64)
    for x, _ in data.iter_batches("train", batch_size):
        flat = x.reshape(len(x), -1).astype(np.float64)
        total += flat.sum(axis=0)
        gram += flat.T @ flat
    mean = total / n
    cov = (gram - n * np.outer(mean, mean)) / (n - 1)
    cov = (cov + cov.T) / 2.0
    eigval, eigvec = np.linalg.eigh(cov)
    scale = 1.0 / np.sqrt(np.clip(eigval, 0.0, None) + float(epsilon))
    matrix = (eigvec * scale) @ eigvec.T
    return ZCAWhitening(
        mean=mean, matrix=(matrix + matrix.T) / 2.0, epsilon=float(epsilon), n_fit=n
    )


@dataclass(frozen=True)
class SetProtocol:
    """What a protocol becomes for one set: the engine's protocol and the set's labels."""

    protocol: Protocol  # labels in hard / soft / kd and a numeric lr: what the engine runs
    soft_labels: torch.Tensor | None
    notes: dict


def protocol_for_set(
    protocol: Protocol, cset: CondensedSet | None, attrs: dict, where: str
) -> SetProtocol:
    """Resolve `labels: stored` and `lr: from_set` against the set; refuse a set lacking them.

    `cset=None` is the whole training split (the reference row): its stored labels are its hard
    labels and its learning rate is the preset's.
    """
    notes: dict = {}
    soft = None
    engine = protocol
    if protocol.labels == "stored":
        if cset is None:
            engine = replace(engine, labels="hard")
            notes["labels_used"] = "hard (the full training split stores no soft labels)"
        elif cset.soft_labels is None:
            raise DataFileError(
                f"{where}: protocol {protocol.name!r} trains on the set's own soft labels "
                "(labels: stored), but the set stores none; give the set soft_labels [n, K] "
                "or evaluate it under a protocol with hard or teacher labels"
            )
        else:
            temperature = attrs.get("soft_label_temperature", cset.params.get("temperature", 1.0))
            engine = replace(engine, labels="soft", temperature=float(temperature))
            soft = torch.from_numpy(np.ascontiguousarray(cset.soft_labels, dtype=np.float32))
            notes["labels_used"] = "stored"
            notes["soft_label_temperature"] = float(temperature)
    if protocol.lr_from_set:
        if cset is None:
            lr = float(PRESETS[protocol.preset]["lr"])
            notes["lr_used"] = lr
            notes["lr_source"] = f"preset {protocol.preset} (the full split has no syn_lr)"
        elif "syn_lr" not in attrs:
            raise DataFileError(
                f"{where}: protocol {protocol.name!r} uses the set's learned learning rate "
                "(lr: from_set), but the set carries no syn_lr; store it with the set (a .pt "
                "entry syn_lr, lr_best.pt beside images_best.pt, or --syn-lr) or give the "
                "protocol a number"
            )
        else:
            lr = float(attrs["syn_lr"])
            notes["lr_used"] = lr
            notes["lr_source"] = "set (syn_lr)"
        engine = replace(engine, lr=lr)
    return SetProtocol(engine, soft, notes)


def decode_set(images, labels, soft_labels, attrs: dict, where: str):
    """The images a student trains on for a set that records `decode_factor` f > 1.

    Every stored image is cut into f × f parts, each upsampled bilinearly to full size
    (`ddbench.methods.idm.partition_expand`, parts of image n in rows n·f² … (n+1)·f² − 1), and
    each part takes its stored image's label (and soft label). A set without the attribute, or
    with f = 1, is returned unchanged. Returns (images, labels, soft_labels, notes).
    """
    raw = attrs.get("decode_factor", 1)
    try:
        factor = int(raw)
    except (TypeError, ValueError):
        factor = -1
    if factor < 1 or factor != raw:
        raise DataFileError(f"{where}: decode_factor must be a positive integer, got {raw!r}")
    if factor == 1:
        return images, labels, soft_labels, {}
    from ddbench.methods.idm import partition_expand

    reps = factor * factor
    decoded = partition_expand(images, factor).contiguous()
    labels = labels.repeat_interleave(reps)
    if soft_labels is not None:
        soft_labels = soft_labels.repeat_interleave(reps, dim=0)
    notes = {"decode_factor": factor, "stored_images": int(len(images))}
    return decoded, labels, soft_labels, notes


def decode_condensed(cset, condensed_path, soft_labels=None):
    """`decode_set` for a loaded CondensedSet and its file (whose attributes say whether to
    decode): the torch (images, labels, soft_labels, notes) its students train on. For the
    analyses that measure a set (TM loss, quality); `soft_labels`: the targets to expand
    along with the images, or None."""
    return decode_set(
        torch.from_numpy(cset.images),
        torch.from_numpy(np.asarray(cset.labels, dtype=np.int64)),
        None if soft_labels is None else torch.as_tensor(soft_labels),
        read_attrs(condensed_path, "condensed"),
        str(condensed_path),
    )


def evaluate_set(
    dataset_path: str | os.PathLike,
    condensed_path: str | os.PathLike | None,
    protocol: Protocol,
    student_name: str,
    student_spec: dict,
    seed: int,
    teacher_paths: list[str],
    out_json: str | os.PathLike,
    *,
    checkpoint_out: str | os.PathLike | None = None,
    reference_epochs: int | None = None,
    device: str = "auto",
    threads: int | None = None,
    zca: ZCAWhitening | None = None,
) -> dict:
    """Train a student under `protocol` and write its last-epoch test accuracy and costs.

    `condensed_path=None` trains on the whole training split (the reference row); then a
    budget in `epochs` is replaced by `reference_epochs`. `zca`: the set is ZCA-whitened with
    this transform; the test images (and the full split) are whitened with it and the
    student's input normalisation is the identity.
    """
    dev = resolve_device(device)
    data = load_dataset(dataset_path, train_images=condensed_path is None)
    if zca is not None and protocol.labels in ("soft", "kd"):
        raise ValueError(
            f"protocol {protocol.name!r} labels images with teachers trained on unwhitened "
            "images; a ZCA-whitened set takes protocols with labels hard or stored"
        )
    if condensed_path is None:
        images = data_source(data, transform=zca)  # read per batch: the split never as float
        labels = torch.from_numpy(data.train_labels)
        method, ipc, source_sha, source_params_sha = "full_train", None, None, None
        if protocol.full_epochs is None:
            protocol = replace(protocol, epochs=int(reference_epochs or 1))
        resolved = protocol_for_set(protocol, None, {}, "the full training split")
    else:
        shape = (data.in_chans, data.image_size, data.image_size)
        cset = CondensedSet.load(condensed_path)
        if zca is None:
            cset.validate(data.num_classes, shape, where=str(condensed_path))
        else:  # whitened pixels may take any finite value
            if not np.isfinite(cset.images).all():
                raise DataFileError(f"{condensed_path}: images contain NaN or infinite values")
            clipped = replace(cset, images=np.clip(cset.images, 0.0, 1.0))
            clipped.validate(data.num_classes, shape, where=str(condensed_path))
        images = torch.from_numpy(cset.images)
        labels = torch.from_numpy(cset.labels)
        method, ipc, source_sha = cset.method, cset.ipc, file_sha256(condensed_path)
        source_params_sha = cset.config_sha256
        attrs = read_attrs(condensed_path, "condensed")
        resolved = protocol_for_set(protocol, cset, attrs, str(condensed_path))
        images, labels, soft, decoded = decode_set(
            images, labels, resolved.soft_labels, attrs, str(condensed_path)
        )
        if decoded:  # the student trains on the decoded images (IDM-style sets)
            resolved = replace(resolved, soft_labels=soft, notes={**resolved.notes, **decoded})
    teachers = [load_teacher(p, data) for p in teacher_paths]
    set_determinism(seed, threads)
    student = make_model(student_spec, data)
    if zca is not None:
        student.norm = torch.nn.Identity()  # inputs are whitened already
    result = train(
        student,
        images,
        labels,
        resolved.protocol,
        seed,
        n_full=len(data.train_labels),
        teachers=teachers,
        soft_labels=resolved.soft_labels,
        device=dev,
        desc=f"{protocol.name}/{student_name}/{method}",
    )
    if zca is not None:
        print(
            f"whitening {len(data.test_labels)} test images (ZCA, epsilon {zca.epsilon:g})",
            file=sys.stderr,
        )
    acc = accuracy(
        student.cpu(),
        data_source(data, "test", transform=zca),
        torch.from_numpy(data.test_labels),
        protocol.eval_batch_size,
    )
    soft_bytes = len(images) * data.num_classes * 4 if resolved.protocol.labels == "soft" else 0
    teacher_images = (
        result.steps * protocol.effective_batch(len(images)) * len(teachers)
        if protocol.labels == "kd"
        else 0
    )
    if protocol.labels == "soft":
        teacher_images = len(images) * len(teachers)
    metrics = {
        "dataset": data.name,
        "method": method,
        "ipc": ipc,
        "protocol": protocol.name,
        "preset": protocol.preset,
        "student": student_name,
        "student_model": student_spec["model"],
        "seed": int(seed),
        "accuracy": acc,
        "final_train_loss": result.final_train_loss,
        "steps": result.steps,
        "epochs": result.epochs,
        "budget": protocol.budget_text(),
        "n_train": int(len(images)),
        "wall_time_s": result.wall_time_s,
        "images_per_s": result.images_per_s,
        "peak_rss_mb": peak_rss_mb(),
        "soft_label_bytes": soft_bytes,
        "teacher_forward_images": teacher_images,
        "protocol_params": protocol.to_dict(),
        **resolved.notes,
        "config_sha256": config_sha256(
            {"protocol": protocol.to_dict(), "student": student_spec, "seed": seed}
        ),
        "condensed_sha256": source_sha,
        "condensed_config_sha256": source_params_sha,
        "device": str(dev),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": library_versions(),
    }
    if zca is not None:
        metrics["zca"] = {"epsilon": zca.epsilon, "n_fit": zca.n_fit, "sha256": zca.sha256()}
    if checkpoint_out:
        state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
        metrics["checkpoint_sha256"] = save_torch(state, checkpoint_out)
        metrics["checkpoint"] = str(Path(checkpoint_out).name)
    write_json(out_json, metrics)
    return metrics
