"""Training dynamics: R proxy runs on the full training split, recording softmax outputs per epoch."""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn.functional as F

from ddbench.data.datasets import load_dataset
from ddbench.data.h5io import write_h5
from ddbench.stages.teachers import make_model
from ddbench.training.engine import predict, resolve_device, set_determinism, train
from ddbench.training.protocols import teacher_protocol


def record_dynamics(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    out: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Train `spec["runs"]` proxies for `spec["epochs"]` epochs; after every epoch record softmax(f(x)).

    The records are taken in eval mode on un-augmented training images, so EL2N at epoch e,
    forgetting events and CAD all read the same, faithful per-epoch predictions.
    """
    data = load_dataset(dataset_path)
    dev = resolve_device(device)
    runs, epochs = int(spec.get("runs", 2)), int(spec.get("epochs", 10))
    base_seed = int(spec.get("seed", 0))
    images = torch.from_numpy(data.train_float())
    labels = torch.from_numpy(data.train_labels)
    probs = np.zeros((runs, epochs, len(labels), data.num_classes), dtype=np.float32)
    for r in range(runs):
        seed = base_seed + 1000 * r
        set_determinism(seed, threads)
        model = make_model(spec, data)
        protocol = teacher_protocol(name, {**spec, "epochs": epochs})

        def record(epoch: int, m, r=r, protocol=protocol) -> None:
            logits = predict(m, images, protocol.eval_batch_size, device=dev)
            probs[r, epoch] = F.softmax(logits, dim=1).numpy()
            m.train()

        train(
            model,
            images,
            labels,
            protocol,
            seed,
            n_full=len(images),
            device=dev,
            desc=f"dynamics {name} run {r + 1}/{runs}",
            on_epoch_end=record,
        )
    write_h5(
        out,
        "scores",
        {"probs": probs, "labels": data.train_labels},
        created_by="ddbench.stages.dynamics.record_dynamics",
        params=spec,
        seed=base_seed,
        attrs={"scorer": name, "dataset": data.name, "runs": runs, "epochs": epochs},
    )
    return {"runs": runs, "epochs": epochs, "samples": int(len(labels))}
