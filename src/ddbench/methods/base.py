"""Method contract, registry and the condensed-set file (no torch at import time)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ddbench.data.datasets import ImageData
from ddbench.data.h5io import DataFileError, config_sha256, open_h5, read_array, write_h5
from ddbench.errors import ConfigError
from ddbench.registry import load_entry_points
from ddbench.workflow.paths import check_identity

METHODS: dict[str, type[Method]] = {}
_PLUGINS_LOADED = False
ENTRY_POINT_GROUP = "ddbench.methods"


def register_method(kind: str):
    """Class decorator: make a Method available under `kind` in configs."""

    def wrap(cls):
        if kind in METHODS and METHODS[kind] is not cls:
            raise ValueError(f"method kind {kind!r} is registered twice")
        cls.kind = kind
        METHODS[kind] = cls
        return cls

    return wrap


def _load_plugins() -> None:
    global _PLUGINS_LOADED
    if not _PLUGINS_LOADED:
        _PLUGINS_LOADED = True
        load_entry_points(ENTRY_POINT_GROUP, "method")


def list_methods() -> list[str]:
    """Registered method kinds: built-ins and plugins."""
    _load_plugins()
    return sorted(METHODS)


def get_method_class(kind: str) -> type[Method]:
    """The class registered for `kind`."""
    _load_plugins()
    if kind not in METHODS:
        raise KeyError(f"unknown method kind {kind!r} (registered: {', '.join(sorted(METHODS))})")
    return METHODS[kind]


@dataclass
class Context:
    """Everything a method may read; only what it declared in `requires` is filled in."""

    data: ImageData
    dataset: str
    features: np.ndarray | None = None
    scores: dict[str, np.ndarray] | None = None
    teacher: Any = None
    device: Any = "cpu"
    extras: dict[str, Any] = field(default_factory=dict)


class Method:
    """Base class: `__init__` stores parameters; `condense` builds a CondensedSet."""

    kind: ClassVar[str] = ""
    # Which shared inputs the workflow must wire: names declared in ddbench.workflow.inputs
    # (teacher, features, scores, crops, prior, patches, clusters, pool, external);
    # `input_names` gives the configured variant behind each.
    requires: ClassVar[frozenset[str]] = frozenset()
    # JSON schema of the parameters (without `kind`), checked at config time.
    param_schema: ClassVar[dict] = {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }

    def __init__(self, **params):
        self.params = params

    def input_names(self) -> dict[str, str]:
        """Names of the configured variants this method reads (need -> name).

        Each kind of input names its variant through one parameter (ddbench.workflow.inputs:
        `teacher`, `features`, `scorer`, `crops`, `prior`); a kind whose inputs depend on
        other parameters (clusters, an optional teacher) overrides this.
        """
        from ddbench.workflow.inputs import named_inputs

        return named_inputs(self.requires, self.params)

    def check_params(self) -> None:
        """Checks a JSON schema cannot express; raise ValueError("param: what is wrong")."""

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        raise NotImplementedError


@dataclass
class CondensedSet:
    """A condensed set: float32 [n,C,H,W] images in [0,1], labels, optional soft labels/indices."""

    images: np.ndarray
    labels: np.ndarray
    method: str
    kind: str
    params: dict
    ipc: int
    dataset: str
    soft_labels: np.ndarray | None = None
    source_indices: np.ndarray | None = None
    extra_attrs: dict = field(default_factory=dict)
    seed: int | None = None  # as recorded in the file (set by `load`)
    config_sha256: str | None = None  # hash of the parameters that made it (set by `load`)

    def validate(
        self, num_classes: int, image_shape: tuple[int, int, int], where: str = ""
    ) -> None:
        """Check shapes, dtype, value range, label range and exact class-balanced IPC."""
        where = where or f"condensed set {self.method}/ipc{self.ipc}"
        imgs = self.images
        if imgs.dtype != np.float32:
            raise DataFileError(f"{where}: images have dtype {imgs.dtype}, expected float32")
        if imgs.ndim != 4 or tuple(imgs.shape[1:]) != tuple(image_shape):
            raise DataFileError(
                f"{where}: images have shape {imgs.shape}, expected [n, {', '.join(map(str, image_shape))}]"
            )
        if not np.isfinite(imgs).all():
            raise DataFileError(f"{where}: images contain NaN or infinite values")
        if imgs.size and (imgs.min() < 0.0 or imgs.max() > 1.0):
            raise DataFileError(
                f"{where}: pixel values outside [0, 1] (min {imgs.min():.3g}, max {imgs.max():.3g})"
            )
        if len(self.labels) != len(imgs):
            raise DataFileError(f"{where}: {len(imgs)} images but {len(self.labels)} labels")
        if len(self.labels) and (self.labels.min() < 0 or self.labels.max() >= num_classes):
            raise DataFileError(f"{where}: labels outside 0..{num_classes - 1}")
        counts = np.bincount(self.labels, minlength=num_classes)
        if (counts != self.ipc).any():
            bad = {int(c): int(n) for c, n in enumerate(counts) if n != self.ipc}
            raise DataFileError(
                f"{where}: expected exactly {self.ipc} images per class, got {bad} for classes"
            )
        if self.soft_labels is not None:
            sl = self.soft_labels
            if sl.shape != (len(imgs), num_classes) or not np.isfinite(sl).all():
                raise DataFileError(
                    f"{where}: soft labels have shape {sl.shape} or non-finite values"
                )

    def save(self, path: str | os.PathLike, *, created_by: str, seed: int) -> None:
        """Write atomically as `ddbench.condensed/1`; the set then carries the recorded seed
        and parameter hash, as `load` returns them."""
        arrays = {
            "images": np.ascontiguousarray(self.images, dtype=np.float32),
            "labels": np.asarray(self.labels, dtype=np.int64),
        }
        if self.soft_labels is not None:
            arrays["soft_labels"] = np.asarray(self.soft_labels, dtype=np.float32)
        if self.source_indices is not None:
            arrays["source_indices"] = np.asarray(self.source_indices, dtype=np.int64)
        recipe = {"method": self.method, "kind": self.kind, **self.params}
        write_h5(
            path,
            "condensed",
            arrays,
            created_by=created_by,
            params=recipe,
            seed=seed,
            attrs={
                "method": self.method,
                "kind": self.kind,
                "params": json.dumps(self.params, sort_keys=True),
                "ipc": int(self.ipc),
                "dataset": self.dataset,
                **self.extra_attrs,
            },
        )
        self.seed, self.config_sha256 = int(seed), config_sha256(recipe)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        num_classes: int | None = None,
        image_shape: tuple[int, int, int] | None = None,
    ) -> CondensedSet:
        """Read and, when the dataset is given, validate a condensed-set file.

        A file at a workflow path (`results/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.h5`)
        must record the same dataset, method, IPC and seed, or DataFileError names both.
        """
        path = Path(path)
        with open_h5(path, "condensed") as f:
            images = read_array(f, "images", ndim=4, dtype=np.floating).astype(np.float32)
            labels = read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64)
            soft = (
                read_array(f, "soft_labels", ndim=2).astype(np.float32)
                if "soft_labels" in f
                else None
            )
            idx = read_array(f, "source_indices", ndim=1) if "source_indices" in f else None
            attrs = dict(f.attrs)
        try:
            cset = cls(
                images=images,
                labels=labels,
                method=str(attrs["method"]),
                kind=str(attrs["kind"]),
                params=json.loads(attrs["params"]),
                ipc=int(attrs["ipc"]),
                dataset=str(attrs["dataset"]),
                soft_labels=soft,
                source_indices=idx,
            )
            cset.seed = int(attrs["seed"]) if "seed" in attrs else None
            cset.config_sha256 = str(attrs["config_sha256"]) if "config_sha256" in attrs else None
        except KeyError as exc:
            raise DataFileError(f"{path}: missing attribute {exc}") from None
        check_identity(
            path,
            {"dataset": cset.dataset, "method": cset.method, "ipc": cset.ipc, "seed": cset.seed},
        )
        if num_classes is not None and image_shape is not None:
            cset.validate(num_classes, image_shape, where=str(path))
        return cset


def select_indices(
    data: ImageData, order_per_class: list[np.ndarray], ipc: int, method: Method
) -> CondensedSet:
    """A coreset from ranked training indices per class: the first `ipc` of each ranking.

    `method` names the kind; the workflow sets the variant name on the returned set.
    """
    chosen = []
    for c, order in enumerate(order_per_class):
        if len(order) < ipc:
            raise ConfigError(
                f"class {data.classes[c]!r} has {len(order)} training images, fewer than IPC {ipc}"
            )
        chosen.append(np.asarray(order[:ipc], dtype=np.int64))
    idx = np.concatenate(chosen)
    images = data.train_images[idx].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return CondensedSet(
        images=np.ascontiguousarray(images),
        labels=data.train_labels[idx].astype(np.int64),
        method=method.kind,
        kind=method.kind,
        params=dict(method.params),
        ipc=ipc,
        dataset=data.name,
        source_indices=idx,
    )
