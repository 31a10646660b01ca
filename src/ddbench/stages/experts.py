"""Expert trajectories: networks trained on the real training split, parameters kept per epoch.

Trajectory-matching methods (`mtt`, `datm`) read them. They depend on the dataset and the
experts' spec only, never on IPC or seed of the grid, so one folder
(`results/{dataset}/experts/{name}/`) serves every condensed set that names it:

    experts.json     format, recipe, dataset, model, parameter table, per-expert file hashes
    expert_{i}.h5    `params`: float32 [epochs + 1, P], the flat parameter vector at
                     initialisation (row 0) and after every epoch (row e); attributes
                     `param_names` / `param_shapes` (JSON) give the layout of a flat vector

A flat vector lists `model.named_parameters()` in order, each flattened (buffers such as the
input normalisation are not trajectories; they come from the model). The folder is written
into a temporary sibling and renamed into place, so a killed job leaves no half folder.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ddbench.data.h5io import (
    DataFileError,
    config_sha256,
    decode_attr,
    file_sha256,
    open_h5,
    write_folder,
    write_h5,
    write_json,
)
from ddbench.errors import ConfigError

EXPERTS_FORMAT = "ddbench.experts/1"
EXPERTS_JSON = "experts.json"
DEFAULTS = {
    "kind": "trajectories",
    "model": "convnet-d3-w128-in",
    "small_stem": None,
    "n_experts": 5,
    "epochs": 50,
    "batch_size": 256,
    "lr": 0.01,
    "momentum": 0.0,
    "weight_decay": 0.0,
    "dsa": True,
    "zca": False,
    "seed": 0,
}


def expert_file(i: int) -> str:
    """File name of expert `i` inside an experts folder."""
    return f"expert_{i}.h5"


def expert_seed(seed: int, i: int) -> int:
    """The seed of expert `i`: derived from (spec seed, i), independent across experts."""
    return int(np.random.SeedSequence([int(seed), int(i)]).generate_state(1)[0])


def flat_params(model) -> np.ndarray:
    """The model's parameters as one float32 vector (named_parameters order)."""
    import torch

    with torch.no_grad():
        return torch.cat([p.detach().reshape(-1).float().cpu() for p in model.parameters()]).numpy()


def expert_protocol(name: str, spec: dict):
    """The training recipe of every expert: SGD at a constant lr, DSA or no augmentation."""
    from ddbench.training.protocols import resolve_protocol

    return resolve_protocol(
        name,
        {
            "preset": "teacher",
            "epochs": int(spec["epochs"]),
            "batch_size": int(spec["batch_size"]),
            "optimizer": "sgd",
            "lr": float(spec["lr"]),
            "momentum": float(spec["momentum"]),
            "weight_decay": float(spec["weight_decay"]),
            "schedule": "constant",
            "augment": "dsa" if spec["dsa"] else "none",
        },
    )


def train_experts(
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Train `n_experts` experts of `spec` on the training split; write the experts folder.

    Returns the summary written as experts.json.
    """
    from ddbench.data.datasets import load_dataset
    from ddbench.training.engine import resolve_device, set_determinism

    set_determinism(int(spec.get("seed", 0)), threads)
    dev = resolve_device(device)
    return build_experts(load_dataset(dataset_path), name, spec, out_dir, device=dev)


def build_experts(data, name: str, spec: dict, out_dir: str | os.PathLike, *, device=None) -> dict:
    """Train the experts of `spec` on `data` (an ImageData) and write the folder `out_dir`."""
    import torch

    from ddbench.stages.teachers import make_model
    from ddbench.training.engine import data_source, library_versions, peak_rss_mb, train

    spec = {**DEFAULTS, **spec}
    if spec["zca"]:
        raise ConfigError(
            f"config error at experts.{name}.zca: ZCA whitening is not implemented; set it to false"
        )
    seed = int(spec["seed"])
    dev = device or torch.device("cpu")
    protocol = expert_protocol(name, spec)
    images = data_source(data)  # uint8 batches, converted per batch (streamed when large)
    labels = torch.from_numpy(data.train_labels)
    t0 = time.perf_counter()

    def write(folder: Path) -> dict:
        experts = []
        table = None
        for i in range(int(spec["n_experts"])):
            s = expert_seed(seed, i)
            torch.manual_seed(s)
            model = make_model(spec, data)
            if table is None:
                table = [(n, list(p.shape)) for n, p in model.named_parameters()]
            rows = [flat_params(model)]

            def record(_epoch, m, rows=rows):
                rows.append(flat_params(m))

            result = train(
                model,
                images,
                labels,
                protocol,
                s,
                n_full=len(images),
                device=dev,
                desc=f"expert {name} {i + 1}/{spec['n_experts']}",
                on_epoch_end=record,
            )
            traj = np.stack(rows).astype(np.float32)
            path = folder / expert_file(i)
            write_h5(
                path,
                "expert",
                {"params": traj},
                created_by=f"train_experts:{name}",
                params=spec,
                seed=s,
                attrs={
                    "dataset": data.name,
                    "experts": name,
                    "expert": i,
                    "model": spec["model"],
                    "param_names": json.dumps([n for n, _ in table]),
                    "param_shapes": json.dumps([sh for _, sh in table]),
                },
            )
            experts.append(
                {
                    "file": expert_file(i),
                    "seed": s,
                    "final_train_loss": result.final_train_loss,
                    "sha256": file_sha256(path),
                }
            )
        summary = {
            "format": EXPERTS_FORMAT,
            "experts": name,
            "dataset": data.name,
            "kind": spec["kind"],
            "model": spec["model"],
            "small_stem": spec["small_stem"],
            "recipe": protocol.to_dict(),
            "spec": spec,
            "n_experts": int(spec["n_experts"]),
            "epochs": int(spec["epochs"]),
            "n_params": int(sum(int(np.prod(sh)) for _, sh in table)),
            "param_names": [n for n, _ in table],
            "param_shapes": [sh for _, sh in table],
            "image_shape": [data.in_chans, data.image_size, data.image_size],
            "num_classes": data.num_classes,
            "expert_files": experts,
            "seed": seed,
            "train_seconds": time.perf_counter() - t0,
            "peak_rss_mb": peak_rss_mb(),
            "config_sha256": config_sha256(spec),
            "versions": library_versions(),
        }
        write_json(folder / EXPERTS_JSON, summary)
        return summary

    out: dict = {}
    write_folder(out_dir, lambda folder: out.update(write(folder)))
    return out


@dataclass
class ExpertTrajectories:
    """A checked experts folder. Trajectories are read from their files on demand (one row at
    a time through `params`), so a paper-sized buffer (100 experts × 51 vectors) never sits in
    memory at once."""

    folder: Path
    info: dict
    files: list[Path] = field(default_factory=list)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def model(self) -> str:
        return self.info["model"]

    @property
    def n_experts(self) -> int:
        return len(self.files)

    @property
    def epochs(self) -> int:
        """Epochs per expert (each trajectory holds epochs + 1 vectors)."""
        return int(self.info["epochs"])

    @property
    def names(self) -> list[str]:
        return list(self.info["param_names"])

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [tuple(s) for s in self.info["param_shapes"]]

    def _read(self, expert: int, rows) -> np.ndarray:
        import h5py

        path = self.files[expert]
        try:
            with h5py.File(path, "r") as f:
                out = np.asarray(f["params"][rows], dtype=np.float32)
        except (OSError, KeyError) as exc:
            raise DataFileError(f"{path}: cannot read params (corrupt?): {exc}") from None
        if not np.isfinite(out).all():
            raise DataFileError(f"{path}: params contain NaN or infinite values")
        return out

    def trajectory(self, expert: int) -> np.ndarray:
        """Every flat vector of `expert`: float32 [epochs + 1, P]."""
        return self._read(expert, slice(None))

    def params(self, expert: int, epoch: int) -> np.ndarray:
        """The flat parameter vector of `expert` after `epoch` epochs (0 = initialisation)."""
        if not 0 <= epoch <= self.epochs:
            raise IndexError(f"epoch {epoch} outside 0..{self.epochs}")
        key = (expert, epoch)
        if key not in self._cache:
            if len(self._cache) >= 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = self._read(expert, epoch)
        return self._cache[key]

    def make_model(self, data):
        """A fresh model of the experts' architecture for `data` (functional use)."""
        from ddbench.stages.teachers import make_model

        return make_model({"model": self.model, "small_stem": self.info.get("small_stem")}, data)

    def unflatten(self, flat) -> dict:
        """name -> tensor views of a flat torch vector (keeps its autograd graph).

        One `torch.split`, not a slice per parameter: the backward of a slice writes a
        zero-filled gradient of the whole vector, so with P parameter tensors a slice per
        tensor costs P full-vector writes per backward (ResNet-18: 62 × 11 M floats, a TM-loss
        step 10-18x slower than with split's single concatenation, `bench/tm_loss_step.py`);
        the gradients are the same values."""
        sizes = [int(np.prod(shape)) if shape else 1 for shape in self.shapes]
        if sum(sizes) != flat.numel():
            raise ValueError(
                f"flat vector has {flat.numel()} values, the experts' model {sum(sizes)}"
            )
        parts = flat.split(sizes)
        return {
            n: part.view(shape)
            for n, shape, part in zip(self.names, self.shapes, parts, strict=True)
        }

    def load_into(self, model, flat) -> None:
        """Copy a flat vector (numpy or torch) into `model`'s parameters in place."""
        import torch

        flat = torch.as_tensor(np.asarray(flat, dtype=np.float32))
        params = self.unflatten(flat)
        with torch.no_grad():
            for n, p in model.named_parameters():
                p.copy_(params[n])


def load_experts(folder: str | os.PathLike, *, dataset: str | None = None) -> ExpertTrajectories:
    """Open an experts folder, checking experts.json and every expert file's format, shape and
    recorded dataset (the vectors themselves are read, and checked finite, when used).

    Raises DataFileError naming the file on anything missing, corrupt or inconsistent.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DataFileError(f"experts folder {root} does not exist")
    meta = root / EXPERTS_JSON
    if not meta.is_file():
        raise DataFileError(f"{meta} is missing: {root} is not a complete experts folder")
    try:
        info = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{meta} is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != EXPERTS_FORMAT:
        got = info.get("format") if isinstance(info, dict) else None
        raise DataFileError(f"{meta}: format {got!r}, expected {EXPERTS_FORMAT!r}")
    for key in ("model", "epochs", "n_params", "param_names", "param_shapes", "expert_files"):
        if key not in info:
            raise DataFileError(f"{meta}: missing key {key!r}")
    if dataset is not None and info.get("dataset") != dataset:
        raise DataFileError(
            f"{meta}: experts were trained on dataset {info.get('dataset')!r}, not {dataset!r}"
        )
    if not info["expert_files"]:
        raise DataFileError(f"{meta}: lists no expert files")
    want = (int(info["epochs"]) + 1, int(info["n_params"]))
    files = []
    for entry in info["expert_files"]:
        path = root / str(entry["file"])
        with open_h5(path, "expert") as f:
            if "params" not in f:
                raise DataFileError(f"{path}: missing dataset 'params'")
            got = tuple(f["params"].shape)
            recorded = decode_attr(f.attrs["dataset"]) if "dataset" in f.attrs else None
        if got != want:
            raise DataFileError(
                f"{path}: params have shape {list(got)}, experts.json says {list(want)} "
                "(epochs + 1, parameters)"
            )
        if recorded is not None and str(recorded) != str(info.get("dataset")):
            raise DataFileError(
                f"{path}: records dataset {recorded!r}, experts.json {info.get('dataset')!r}"
            )
        files.append(path)
    return ExpertTrajectories(folder=root, info=info, files=files)
