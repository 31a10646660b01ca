"""Evaluation: train a student on a condensed set (or the full split) under a protocol, test it."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import torch

from ddbench.data.datasets import load_dataset
from ddbench.data.h5io import config_sha256, file_sha256, write_json
from ddbench.methods.base import CondensedSet
from ddbench.stages.teachers import load_teacher, make_model, save_torch
from ddbench.training.engine import (
    accuracy,
    library_versions,
    peak_rss_mb,
    resolve_device,
    set_determinism,
    train,
)
from ddbench.training.protocols import Protocol


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
) -> dict:
    """Train a student under `protocol` and write its last-epoch test accuracy and costs.

    `condensed_path=None` trains on the whole training split (the reference row); then a
    budget in `epochs` is replaced by `reference_epochs`.
    """
    dev = resolve_device(device)
    data = load_dataset(dataset_path, train_images=condensed_path is None)
    if condensed_path is None:
        images = torch.from_numpy(data.train_float())
        labels = torch.from_numpy(data.train_labels)
        method, ipc, source_sha, source_params_sha = "full_train", None, None, None
        if protocol.full_epochs is None:
            protocol = replace(protocol, epochs=int(reference_epochs or 1))
    else:
        cset = CondensedSet.load(
            condensed_path, data.num_classes, (data.in_chans, data.image_size, data.image_size)
        )
        images = torch.from_numpy(cset.images)
        labels = torch.from_numpy(cset.labels)
        method, ipc, source_sha = cset.method, cset.ipc, file_sha256(condensed_path)
        source_params_sha = cset.config_sha256
    teachers = [load_teacher(p, data) for p in teacher_paths]
    set_determinism(seed, threads)
    student = make_model(student_spec, data)
    result = train(
        student,
        images,
        labels,
        protocol,
        seed,
        n_full=len(data.train_labels),
        teachers=teachers,
        device=dev,
        desc=f"{protocol.name}/{student_name}/{method}",
    )
    acc = accuracy(
        student.cpu(),
        torch.from_numpy(data.test_float()),
        torch.from_numpy(data.test_labels),
        protocol.eval_batch_size,
    )
    soft_bytes = len(images) * data.num_classes * 4 if protocol.labels == "soft" else 0
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
        "config_sha256": config_sha256(
            {"protocol": protocol.to_dict(), "student": student_spec, "seed": seed}
        ),
        "condensed_sha256": source_sha,
        "condensed_config_sha256": source_params_sha,
        "device": str(dev),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "versions": library_versions(),
    }
    if checkpoint_out:
        state = {k: v.detach().cpu() for k, v in student.state_dict().items()}
        metrics["checkpoint_sha256"] = save_torch(state, checkpoint_out)
        metrics["checkpoint"] = str(Path(checkpoint_out).name)
    write_json(out_json, metrics)
    return metrics
