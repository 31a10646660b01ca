"""Run a configured method for one IPC and seed, and write the checked condensed set."""

from __future__ import annotations

import os

import numpy as np

from ddbench.data.datasets import load_dataset
from ddbench.data.h5io import DataFileError
from ddbench.methods import Context, get_method_class


def run_method(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    ipc: int,
    seed: int,
    out: str | os.PathLike,
    *,
    inputs: dict[str, str] | None = None,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Condense the dataset with method `name` (config `spec`) at `ipc`, seeded by `seed`.

    `inputs` maps each shared input the method declared (ddbench.workflow.inputs: teacher,
    features, scores, crops, patches, prior, clusters, pool, external) to its file or folder;
    each is handed over as its kind says: a loaded teacher, features, training dynamics, and
    every path in `ctx.extras["<name>_path"]`.
    """
    from ddbench.workflow.inputs import input_kind

    inputs = {k: str(v) for k, v in (inputs or {}).items() if v}
    data = load_dataset(dataset_path)
    params = {k: v for k, v in spec.items() if k != "kind"}
    method = get_method_class(spec["kind"])(**params)
    kinds = {need: input_kind(need) for need in inputs}  # an unknown input is an error
    ctx = Context(data=data, dataset=data.name, device=device)
    if set(inputs) & {"teacher", "prior"} or method.requires & {"teacher", "prior"}:
        from ddbench.training.engine import resolve_device, set_determinism

        set_determinism(seed, threads)
        ctx.device = resolve_device(device)
    for need, path in inputs.items():
        load = kinds[need].load
        if load == "teacher":
            from ddbench.stages.teachers import load_teacher

            ctx.teacher = load_teacher(path, data).to(ctx.device)
        elif load == "features":
            from ddbench.stages.features import load_features

            ctx.features = load_features(path, len(data.train_labels))
        elif load == "scores":
            from ddbench.stages.scores import load_dynamics

            ctx.scores = load_dynamics(path)
            if not np.array_equal(ctx.scores["labels"], data.train_labels):
                raise DataFileError(
                    f"{path}: scores were computed for another training split than {dataset_path}"
                )
        ctx.extras[f"{need}_path"] = path
    cset = method.condense(ctx, int(ipc), int(seed))
    cset.method = name
    cset.validate(data.num_classes, (data.in_chans, data.image_size, data.image_size))
    cset.save(out, created_by=f"condense:{name}", seed=int(seed))
    return {"method": name, "ipc": int(ipc), "n": int(len(cset.labels))}
