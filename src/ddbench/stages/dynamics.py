"""Training dynamics: R proxy runs on the full training split, recording compact per-sample statistics.

At every record point (once per epoch, or every `record_every_steps` optimiser steps) each
training sample's softmax is reduced batch by batch to p(y|x), correct, EL2N and margin
(ddbench.stages.scores documents the file); `store: full` also keeps the whole softmax.
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from ddbench.data.datasets import load_dataset
from ddbench.data.h5io import write_h5
from ddbench.stages.scores import COMPACT_FIELDS, compact_stats
from ddbench.stages.teachers import make_model
from ddbench.training.engine import data_source, resolve_device, set_determinism, train
from ddbench.training.protocols import teacher_protocol

STORES = ("compact", "full")


def record_dynamics(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    out: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Train `spec["runs"]` proxies for `spec["epochs"]` epochs, recording the dynamics at each point.

    Spec keys besides the training ones: `record_every_steps` (k: record after every k
    optimiser steps; absent or null = after every epoch) and `store` (`compact`, the default,
    or `full`, which also keeps the softmax [R, P, N, K] that EL2N-SL needs). The records are
    taken in eval mode on un-augmented training images, so EL2N, forgetting events and CAD
    all read the same, faithful predictions.
    """
    data = load_dataset(dataset_path)
    dev = resolve_device(device)
    runs, epochs = int(spec.get("runs", 2)), int(spec.get("epochs", 10))
    base_seed = int(spec.get("seed", 0))
    every = spec.get("record_every_steps")
    store = spec.get("store") or "compact"
    if store not in STORES:
        raise ValueError(f"scorers.{name}.store: {store!r} is not one of {STORES}")
    images = data_source(data)  # uint8 batches, converted per batch (streamed when large)
    labels = torch.from_numpy(data.train_labels)
    n = len(labels)
    protocol = teacher_protocol(name, {**spec, "epochs": epochs})
    steps_per_epoch = math.ceil(n / protocol.effective_batch(n))
    total = protocol.total_steps(n, n)
    interval = int(every) if every else steps_per_epoch
    if interval < 1:
        raise ValueError(f"scorers.{name}.record_every_steps: {every} is not a positive integer")
    points = total // interval
    if points < 1:
        raise ValueError(
            f"scorers.{name}.record_every_steps: {interval} steps exceed the proxy's {total} "
            f"steps ({epochs} epochs of {steps_per_epoch}); nothing would be recorded"
        )
    stats = {key: np.zeros((runs, points, n), dtype) for key, dtype in COMPACT_FIELDS.items()}
    probs = np.zeros((runs, points, n, data.num_classes), np.float32) if store == "full" else None
    y = data.train_labels

    for r in range(runs):
        seed = base_seed + 1000 * r
        set_determinism(seed, threads)
        model = make_model(spec, data)
        protocol = teacher_protocol(name, {**spec, "epochs": epochs})

        @torch.no_grad()
        def record(point: int, m, r=r, bs=protocol.eval_batch_size) -> None:
            m.eval()
            for i in range(0, n, bs):
                p = F.softmax(m(images.rows(i, min(i + bs, n), dev)).float(), dim=1).cpu().numpy()
                for key, value in compact_stats(p, y[i : i + bs]).items():
                    stats[key][r, point, i : i + bs] = value
                if probs is not None:
                    probs[r, point, i : i + bs] = p
            m.train()

        def on_step(step: int, m) -> None:
            if step % interval == 0 and step // interval <= points:
                record(step // interval - 1, m)

        hooks = {"on_step_end": on_step} if every else {"on_epoch_end": lambda e, m: record(e, m)}
        train(
            model,
            images,
            labels,
            protocol,
            seed,
            n_full=n,
            device=dev,
            desc=f"dynamics {name} run {r + 1}/{runs}",
            **hooks,
        )
    arrays = {
        **stats,
        "labels": data.train_labels,
        "steps": interval * np.arange(1, points + 1, dtype=np.int64),
        "steps_per_epoch": np.int64(steps_per_epoch),
    }
    if probs is not None:
        arrays["probs"] = probs
    write_h5(
        out,
        "scores",
        arrays,
        created_by="ddbench.stages.dynamics.record_dynamics",
        params=spec,
        seed=base_seed,
        attrs={
            "scorer": name,
            "dataset": data.name,
            "runs": runs,
            "epochs": epochs,
            "points": points,
            "steps_per_epoch": steps_per_epoch,
            "record_interval_steps": interval,
            "num_classes": data.num_classes,
            "store": store,
        },
    )
    return {"runs": runs, "epochs": epochs, "points": points, "samples": int(n)}
