"""Run a configured method for one IPC and seed, and write the checked condensed set."""

from __future__ import annotations

import os

import numpy as np

from .datasets import load_dataset
from .h5io import DataFileError
from .methods import Context, get_method_class


def run_method(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    ipc: int,
    seed: int,
    out: str | os.PathLike,
    *,
    features: str | None = None,
    scores: str | None = None,
    teacher: str | None = None,
    prior: str | None = None,
    external: str | None = None,
    crops: str | None = None,
    patches: str | None = None,
    clusters: str | None = None,
    pool: str | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Condense the dataset with method `name` (config `spec`) at `ipc`, seeded by `seed`.

    `external` is the resolved file or folder of a method that reads a set made elsewhere;
    `crops`, `patches`, `clusters` and `pool` are files the method reads itself (their paths
    go to `ctx.extras` as `<name>_path`).
    """
    data = load_dataset(dataset_path)
    files = {"crops": crops, "patches": patches, "clusters": clusters, "pool": pool}
    extras = {f"{k}_path": str(v) for k, v in files.items() if v}
    params = {k: v for k, v in spec.items() if k != "kind"}
    method = get_method_class(spec["kind"])(**params)
    ctx = Context(data=data, dataset=data.name, device=device, extras=extras)
    if features:
        from .features import load_features

        ctx.features = load_features(features, len(data.train_labels))
        ctx.extras["features_path"] = features
    if scores:
        from .scores import load_dynamics

        ctx.scores = load_dynamics(scores)
        if not np.array_equal(ctx.scores["labels"], data.train_labels):
            raise DataFileError(
                f"{scores}: scores were computed for another training split than {dataset_path}"
            )
    if teacher or prior or method.requires & {"teacher", "prior"}:
        from .engine import resolve_device, set_determinism

        set_determinism(seed, threads)
        ctx.device = resolve_device(device)
    if teacher:
        from .teachers import load_teacher

        ctx.teacher = load_teacher(teacher, data).to(ctx.device)
    if prior:
        ctx.extras["prior_path"] = prior
    if external:
        ctx.extras["external_path"] = str(external)
    cset = method.condense(ctx, int(ipc), int(seed))
    cset.method = name
    cset.validate(data.num_classes, (data.in_chans, data.image_size, data.image_size))
    cset.save(out, created_by=f"condense:{name}", seed=int(seed))
    return {"method": name, "ipc": int(ipc), "n": int(len(cset.labels))}
