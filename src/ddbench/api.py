"""Evaluate anyone's condensed set, with the workflow's engine and recipes, outside the workflow.

`evaluate(images, labels, ..., dataset=..., protocol=..., seeds=...)` (exported as
`ddbench.evaluate`) and the `ddbench evaluate SET` command train a student on a given set
under each protocol of a config, with the same recipe resolution, engine and per-seed JSON
records as the workflow's `evaluate` jobs. What a protocol needs comes from the working
directory's results tree when it is there (the prepared dataset `resources/datasets/`, the
teachers `results/{dataset}/teachers/`), else it is built with the config's recipe and kept
there for the next call, so a later `snakemake` run reuses it.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ddbench.errors import ConfigError, DataFileError
from ddbench.workflow.paths import target_path


def _config(config: str | os.PathLike | dict | None) -> dict:
    from ddbench.config import load_config, validate_config

    if isinstance(config, dict):
        return validate_config(copy.deepcopy(config), read_sources=False, check_device=False)
    path = Path(config) if config is not None else _default_config()
    return load_config(path)


def _default_config() -> Path:
    here = Path("config/config.yaml")
    return here if here.is_file() else Path(__file__).resolve().parents[2] / "config/config.yaml"


def _dataset_file(config: dict, dataset: str, workdir: Path) -> Path:
    """The prepared dataset in the working directory, prepared from the config when missing."""
    from ddbench.data.datasets import prepare_dataset

    if dataset not in config["datasets"]:
        known = ", ".join(config["datasets"])
        raise ConfigError(f"dataset {dataset!r} is not in the config (configured: {known})")
    path = workdir / target_path("dataset", dataset=dataset)
    if not path.is_file():
        print(f"preparing {path} from the config's source", file=sys.stderr)
        prepare_dataset(dataset, config["datasets"][dataset], path)
    return path


def _teacher_files(
    config: dict, dataset: str, names, dataset_path: Path, workdir: Path, device: str
) -> list[str]:
    """The protocol's teachers from the results tree, trained with the config's recipe if absent."""
    from ddbench.stages.teachers import train_teacher

    out = []
    for name in names:
        pt = workdir / target_path("teacher", dataset=dataset, name=name)
        if not pt.is_file():
            print(f"training teacher {name} (kept at {pt})", file=sys.stderr)
            info = workdir / target_path("teacher_info", dataset=dataset, name=name)
            train_teacher(dataset_path, name, config["teachers"][name], pt, info, device=device)
        out.append(str(pt))
    return out


def _channel_axis(images: np.ndarray, channels: int) -> int:
    if images.ndim == 4 and images.shape[1] == channels:
        return 1
    if images.ndim == 4 and images.shape[-1] == channels:
        return 3
    raise DataFileError(
        f"images of shape {images.shape}: cannot find the {channels}-channel axis (expected "
        "[n, C, H, W] or [n, H, W, C])"
    )


def undo_normalisation(images: np.ndarray, mean, std, source: str) -> np.ndarray:
    """x * std + mean per channel (images stored as (x − mean) / std), checked to land in [0, 1]."""
    mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    if mean.shape != std.shape or mean.ndim != 1:
        raise DataFileError(f"{source}: --normalized needs as many means as stds, one per channel")
    axis = _channel_axis(images, len(mean))
    shape = [1, 1, 1, 1]
    shape[axis] = len(mean)
    out = images.astype(np.float64) * std.reshape(shape) + mean.reshape(shape)
    lo, hi = float(out.min()), float(out.max())
    if lo < -0.02 or hi > 1.02:
        raise DataFileError(
            f"{source}: after undoing the declared normalisation the pixels span [{lo:.3g}, "
            f"{hi:.3g}], not [0, 1]: check the mean and std (per channel, on [0, 1] pixels)"
        )
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def resize_to(images: np.ndarray, size: int, channels: int, source: str) -> np.ndarray:
    """[n, C, H, W] (or NHWC) floats resized to size x size (bilinear, antialiased), with a notice."""
    import torch
    import torch.nn.functional as F

    axis = _channel_axis(images, channels)
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    if axis == 3:
        x = x.permute(0, 3, 1, 2)
    if tuple(x.shape[2:]) == (size, size):
        return x.numpy()
    print(
        f"notice: {source}: images are {tuple(x.shape[2:])}, the dataset is {size}x{size}: "
        "resized (bilinear, antialiased)",
        file=sys.stderr,
    )
    y = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return y.clamp(0.0, 1.0).numpy()


def _as_set(
    images,
    labels,
    soft_labels,
    dataset_path: Path,
    source: str,
    normalized=None,
    resize=True,
    *,
    whitened: bool = False,
    attrs: dict | None = None,
):
    """A checked CondensedSet of the given arrays (tensors or NumPy) for the dataset."""
    from ddbench.data.datasets import load_dataset
    from ddbench.methods.external import to_condensed_arrays

    data = load_dataset(dataset_path, train_images=False)
    pixels = _numpy(images)
    if pixels.ndim == 3 and data.in_chans == 1:
        pixels = pixels[:, None]
    if whitened:
        if normalized is not None:
            raise DataFileError(
                f"{source}: a ZCA-whitened set is not normalised afterwards; leave out "
                "--normalized (or --zca)"
            )
        shape_ok = pixels.ndim == 4 and (
            pixels.shape[2:] == (data.image_size,) * 2
            or pixels.shape[1:3] == (data.image_size,) * 2
        )
        if not shape_ok:
            raise DataFileError(
                f"{source}: images of shape {tuple(pixels.shape)} are not "
                f"{data.image_size}x{data.image_size}; a ZCA-whitened set is not resized "
                "(whiten images of the dataset's resolution)"
            )
    elif pixels.dtype == np.uint8 and normalized is None:
        pixels = pixels.astype(np.float32) / np.float32(255.0)
    if normalized is not None:
        pixels = undo_normalisation(pixels, normalized[0], normalized[1], source)
    if resize and pixels.ndim == 4 and not whitened:
        pixels = resize_to(pixels, data.image_size, data.in_chans, source)
    arrays = {"images": pixels}
    if attrs:
        arrays["attrs"] = dict(attrs)
    if labels is not None:
        arrays["labels"] = _numpy(labels)
    if soft_labels is not None:
        arrays["soft_labels"] = _numpy(soft_labels)
    if "labels" not in arrays and "soft_labels" not in arrays:
        raise DataFileError(f"{source}: give labels or soft_labels")
    if "labels" in arrays:
        classes = np.asarray(arrays["labels"]).astype(np.int64)
        counts = np.bincount(classes, minlength=data.num_classes)
        ipc = int(counts.max()) if len(counts) else 0
    else:  # classes from the soft labels (argmax, else MTT/DATM's class blocks)
        ipc = max(1, len(arrays["soft_labels"]) // data.num_classes)
    return to_condensed_arrays(Path(source), arrays, data, ipc, whitened=whitened), data


def _numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def evaluate(
    images,
    labels=None,
    soft_labels=None,
    *,
    dataset: str,
    protocol: str | list[str] | None = None,
    student: str | None = None,
    seeds: list[int] | tuple[int, ...] = (0,),
    config: str | os.PathLike | dict | None = None,
    workdir: str | os.PathLike = ".",
    out_dir: str | os.PathLike | None = None,
    name: str = "mine",
    device: str | None = None,
    normalized: tuple[list[float], list[float]] | None = None,
    resize: bool = True,
    zca: bool = False,
    zca_epsilon: float | None = None,
    syn_lr: float | None = None,
    temperature: float | None = None,
    attrs: dict | None = None,
) -> pd.DataFrame:
    """Train and test a student on the set under each protocol and seed; one row per run.

    images: [n, C, H, W] or [n, H, W, C], floats in [0, 1] or uint8; labels: [n] class
    indices (or give soft_labels [n, K]; their argmax is the class). Exactly IPC images per
    class. `protocol` None = every protocol of the config; `student` None = its first student.
    `normalized=(mean, std)` declares images stored as (x − mean) / std per channel: undone
    first. Images of another resolution are resized to the dataset's (bilinear, antialiased)
    with a notice, unless resize=False. `zca=True`: the set is already ZCA-whitened (as MTT,
    DATM and KIP store theirs); the dataset's ZCA whitening is fitted on its train split
    (kornia's recipe, epsilon `zca_epsilon`, default 0.1) and applied to the test images, and
    the student's input normalisation is the identity. `syn_lr`: the learning rate learned with
    the set (read by protocols with `lr: from_set`); `temperature`: the temperature of the
    stored soft labels (read by `labels: stored`; default 1, logits are turned into
    probabilities at it); `attrs`: further scalars kept with the set (as read from a file).
    The per-seed JSON records (the workflow's format) go to `out_dir`
    (default `<workdir>/evaluations/<name>/`). Returns protocol, seed, accuracy, IPC, student,
    budget and the record's path.
    """
    from ddbench.training.evaluate import evaluate_set

    cfg = _config(config)
    workdir = Path(workdir)
    device = device or cfg["device"]
    protocols = [protocol] if isinstance(protocol, str) else list(protocol or cfg["protocols"])
    for p in protocols:
        if p not in cfg["protocols"]:
            raise ConfigError(
                f"protocol {p!r} is not in the config (configured: {', '.join(cfg['protocols'])})"
            )
    student = student or next(iter(cfg["students"]))
    if student not in cfg["students"]:
        raise ConfigError(
            f"student {student!r} is not in the config (configured: {', '.join(cfg['students'])})"
        )
    dataset_path = _dataset_file(cfg, dataset, workdir)
    set_attrs = dict(attrs or {})
    if syn_lr is not None:
        set_attrs["syn_lr"] = float(syn_lr)
    if temperature is not None:
        set_attrs["soft_label_temperature"] = float(temperature)
    for key in ("syn_lr", "soft_label_temperature"):
        value = set_attrs.get(key)
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise DataFileError(f"{name}: {key} is {value!r}; it must be a positive number")
    cset, _ = _as_set(
        images,
        labels,
        soft_labels,
        dataset_path,
        name,
        normalized,
        resize,
        whitened=zca,
        attrs=set_attrs,
    )
    from ddbench.training.protocols import resolve_protocol

    resolved_all = {p: resolve_protocol(p, cfg["protocols"][p]) for p in protocols}
    _check_set_protocols(name, cset, resolved_all, zca)
    out_dir = Path(out_dir) if out_dir is not None else workdir / "evaluations" / name
    set_path = out_dir / f"set-ipc{cset.ipc}.h5"
    cset.method = name
    cset.save(set_path, created_by="ddbench.evaluate", seed=0)
    whitening = None
    if zca:
        from ddbench.data.datasets import load_dataset
        from ddbench.training.evaluate import ZCA_EPSILON, fit_zca

        eps = ZCA_EPSILON if zca_epsilon is None else float(zca_epsilon)
        data = load_dataset(dataset_path)
        print(
            f"fitting ZCA whitening on the {len(data.train_labels)} training images of "
            f"{dataset} (epsilon {eps:g})",
            file=sys.stderr,
        )
        whitening = fit_zca(data, eps)
        data.close()
    rows = []
    for p in protocols:
        resolved = resolved_all[p]
        teachers = _teacher_files(cfg, dataset, resolved.teachers, dataset_path, workdir, device)
        for seed in seeds:
            out = out_dir / p / student / f"s{int(seed)}.json"
            metrics = evaluate_set(
                dataset_path,
                set_path,
                resolved,
                student,
                cfg["students"][student],
                int(seed),
                teachers,
                out,
                device=device,
                threads=cfg["eval_threads"],
                zca=whitening,
            )
            rows.append(
                {
                    "protocol": p,
                    "seed": int(seed),
                    "accuracy": metrics["accuracy"],
                    "ipc": cset.ipc,
                    "student": student,
                    "budget": metrics["budget"],
                    "path": str(out),
                }
            )
    return pd.DataFrame(rows)


def _check_set_protocols(name: str, cset, protocols: dict, zca: bool) -> None:
    """Refuse, before any training, protocols the set cannot serve (one line each)."""
    for p, resolved in protocols.items():
        if resolved.labels == "stored" and cset.soft_labels is None:
            raise DataFileError(
                f"{name}: protocol {p!r} trains on the set's own soft labels (labels: stored), "
                "but the set has none; pass soft_labels [n, K] (a .pt/.npz entry, "
                "soft_labels.npy in a folder, DATM's labels_best.pt) or choose another protocol"
            )
        if resolved.lr_from_set and "syn_lr" not in cset.extra_attrs:
            raise DataFileError(
                f"{name}: protocol {p!r} uses the set's learned learning rate (lr: from_set), "
                "but the set has no syn_lr; pass --syn-lr (syn_lr= in Python), a .pt entry "
                "syn_lr or lr_best.pt beside images_best.pt, or choose another protocol"
            )
        if zca and resolved.labels in ("soft", "kd"):
            raise ConfigError(
                f"protocol {p!r} labels images with teachers trained on unwhitened images; "
                "a ZCA-whitened set (--zca) takes protocols with labels hard or stored"
            )


def baseline_accuracies(
    workdir: Path, dataset: str, protocol: str, student: str, method: str, ipc: int
) -> list[float]:
    """Accuracies of a method's evaluations at the same cell in the working directory's results."""
    import json

    folder = (
        workdir
        / Path(
            target_path(
                "eval",
                dataset=dataset,
                protocol=protocol,
                student=student,
                method=method,
                ipc=ipc,
                seed=0,
            )
        ).parent
    )
    values = []
    for f in sorted(folder.glob("s*.json")):
        try:
            values.append(float(json.loads(f.read_text())["accuracy"]))
        except (ValueError, KeyError, OSError):
            continue
    return values


def summary_markdown(
    result: pd.DataFrame, *, workdir: Path, dataset: str, baseline: str = "random"
) -> str:
    """mean ± std per protocol, beside the baseline at the same IPC where the results tree has it."""
    lines = [
        f"| protocol | student | budget | IPC | seeds | accuracy (%) | {baseline} (same IPC) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (p, st), part in result.groupby(["protocol", "student"], sort=False):
        acc = part["accuracy"].to_numpy()
        std = float(acc.std(ddof=1)) if len(acc) > 1 else 0.0
        ipc = int(part["ipc"].iloc[0])
        base = baseline_accuracies(workdir, dataset, p, st, baseline, ipc)
        base_txt = (
            f"{np.mean(base):.2f} ± {np.std(base, ddof=1) if len(base) > 1 else 0.0:.2f} ({len(base)} seeds)"
            if base
            else "–"
        )
        lines.append(
            f"| {p} | {st} | {part['budget'].iloc[0]} | {ipc} | {len(acc)} | "
            f"{acc.mean():.2f} ± {std:.2f} | {base_txt} |"
        )
    return "\n".join(lines)
