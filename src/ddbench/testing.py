"""Conformance checks for method kinds: run `check_method(kind, params)` in a plugin's tests."""

from __future__ import annotations

import copy
import hashlib
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ddbench.config import ConfigError, validate_schema
from ddbench.data.datasets import ImageData
from ddbench.methods import CondensedSet, Context, Method, get_method_class
from ddbench.workflow.inputs import INPUT_KINDS

# The inputs the workflow knows how to wire (ddbench.workflow.inputs), and those made by
# trained models: a kind needing one must be given `make_context`.
KNOWN_INPUTS = frozenset(INPUT_KINDS)
MODEL_INPUTS = frozenset(name for name, kind in INPUT_KINDS.items() if kind.needs_model)

ContextFactory = Callable[[ImageData, int, int], Context]


class ConformanceError(AssertionError):
    """A method kind breaks the method contract; the message names the kind and the check."""


def tiny_dataset(
    num_classes: int = 3,
    per_class: int = 12,
    image_size: int = 6,
    channels: int = 1,
    seed: int = 0,
) -> ImageData:
    """A small in-memory dataset of distinct random uint8 images, labels shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(num_classes, dtype=np.int64), per_class)
    labels = labels[rng.permutation(len(labels))]
    shape = (image_size, image_size, channels)
    train = rng.integers(0, 256, size=(len(labels), *shape), dtype=np.uint8)
    test_labels = np.arange(2 * num_classes, dtype=np.int64) % num_classes
    test = rng.integers(0, 256, size=(len(test_labels), *shape), dtype=np.uint8)
    return ImageData(
        name="tiny",
        train_images=train,
        train_labels=labels,
        test_images=test,
        test_labels=test_labels,
        classes=[f"class{c}" for c in range(num_classes)],
        mean=[0.5] * channels,
        std=[0.25] * channels,
    )


def fake_dynamics(
    labels: np.ndarray, num_classes: int, runs: int = 2, epochs: int = 4, seed: int = 5
) -> dict[str, np.ndarray]:
    """Random softmax training dynamics shaped like a scorer's file: probs [R,E,N,K], labels."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(runs, epochs, len(labels), num_classes)) * 2.0
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return {"probs": probs.astype(np.float32), "labels": np.asarray(labels, dtype=np.int64)}


def default_context(workdir: Path) -> ContextFactory:
    """Contexts with random features, fake dynamics and, for `external`, a written .npz set."""

    def make(data: ImageData, ipc: int, seed: int) -> Context:
        ctx = Context(data=data, dataset=data.name)
        rng = np.random.default_rng(11)
        ctx.features = rng.normal(size=(len(data.train_labels), 8)).astype(np.float32)
        ctx.scores = fake_dynamics(data.train_labels, data.num_classes)
        idx = np.concatenate([i[:ipc] for i in data.class_indices()])
        path = workdir / f"external_ipc{ipc}.npz"
        np.savez(path, images=data.train_images[idx], labels=data.train_labels[idx])
        ctx.extras["external_path"] = str(path)
        return ctx

    return make


def _fail(kind: str, check: str, detail: str) -> ConformanceError:
    return ConformanceError(f"method kind {kind!r} fails '{check}': {detail}")


def _digest(*arrays: np.ndarray | None) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is not None:
            h.update(str(a.dtype).encode() + str(a.shape).encode())
            h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def check_method(
    kind: str,
    params: dict | None = None,
    *,
    data: ImageData | None = None,
    ipcs: Sequence[int] = (1, 3),
    seeds: Sequence[int] = (0, 1),
    make_context: ContextFactory | None = None,
) -> list[str]:
    """Check a registered kind's contract on a small dataset; return the checks passed.

    Checks: registration, parameter schema and `check_params`, `__init__` stores the
    parameters only, `requires` within the inputs the workflow wires, exact class-balanced
    IPC, same set for the same seed, the dataset and parameters left unchanged, a valid
    float32 [n,C,H,W] set in [0,1], and an identical set after save and load. Kinds that
    need a model-made input (MODEL_INPUTS) pass `make_context(data, ipc, seed) -> Context`.
    Raises `ConformanceError` naming the first broken check.
    """
    params = {} if params is None else params
    data = tiny_dataset() if data is None else data
    passed: list[str] = []
    try:
        cls: type[Method] = get_method_class(kind)
    except KeyError as exc:
        raise _fail(kind, "registered", str(exc)) from None
    if getattr(cls, "kind", None) != kind:
        raise _fail(kind, "registered", f"class {cls.__name__} says kind {cls.kind!r}")
    passed.append("registered")

    unknown = set(cls.requires) - KNOWN_INPUTS
    if unknown:
        raise _fail(
            kind,
            "requires known inputs",
            f"declares {sorted(unknown)}; the workflow wires only {sorted(KNOWN_INPUTS)}",
        )
    if "external" in cls.requires and "path" not in cls.param_schema.get("properties", {}):
        raise _fail(kind, "requires known inputs", "requires external but has no `path` parameter")
    passed.append("requires known inputs")

    filled = copy.deepcopy(params)
    try:
        validate_schema(filled, cls.param_schema, prefix=f"methods.{kind}")
    except ConfigError as exc:
        raise _fail(kind, "parameter schema", str(exc)) from None
    before = copy.deepcopy(filled)
    method = cls(**copy.deepcopy(filled))
    state = set(vars(method))
    if state != {"params"} or method.params != before:
        raise _fail(
            kind,
            "__init__ stores params only",
            f"instance attributes {sorted(state)}, params {method.params!r} (expected {before!r})",
        )
    try:
        method.check_params()
    except ValueError as exc:
        raise _fail(kind, "check_params", str(exc)) from None
    passed += ["parameter schema", "__init__ stores params only"]

    if cls.requires & MODEL_INPUTS and make_context is None:
        raise ValueError(
            f"method kind {kind!r} requires {sorted(cls.requires & MODEL_INPUTS)}: "
            "pass make_context(data, ipc, seed) -> Context"
        )
    shape = (data.in_chans, data.image_size, data.image_size)
    data_digest = _digest(data.train_images, data.train_labels)
    with tempfile.TemporaryDirectory(prefix="ddbench-check-") as tmp:
        factory = make_context or default_context(Path(tmp))
        for ipc in ipcs:
            for seed in seeds:
                sets = []
                for _ in range(2):  # a fresh instance each time: no state carried over
                    m = cls(**copy.deepcopy(filled))
                    try:
                        cset = m.condense(factory(data, ipc, seed), ipc, seed)
                    except Exception as exc:
                        raise _fail(
                            kind,
                            "condense runs",
                            f"ipc {ipc}, seed {seed}: {type(exc).__name__}: {exc}",
                        ) from exc
                    if not isinstance(cset, CondensedSet):
                        raise _fail(kind, "returns a CondensedSet", f"got {type(cset).__name__}")
                    if m.params != before:
                        raise _fail(
                            kind, "params unchanged", f"condense changed them to {m.params!r}"
                        )
                    sets.append(cset)
                a, b = sets
                where = f"ipc {ipc}, seed {seed}"
                counts = np.bincount(a.labels, minlength=data.num_classes).tolist()
                if counts != [ipc] * data.num_classes or len(a.images) != len(a.labels):
                    raise _fail(
                        kind,
                        "exact class-balanced IPC",
                        f"{where}: per-class counts {counts}, {len(a.images)} images",
                    )
                if a.ipc != ipc or a.kind != kind or a.dataset != data.name:
                    raise _fail(
                        kind,
                        "set metadata",
                        f"{where}: ipc {a.ipc}, kind {a.kind!r}, dataset {a.dataset!r}",
                    )
                try:
                    a.validate(data.num_classes, shape)
                except ValueError as exc:
                    raise _fail(kind, "valid set", f"{where}: {exc}") from None
                if _digest(a.images, a.labels, a.soft_labels) != _digest(
                    b.images, b.labels, b.soft_labels
                ):
                    raise _fail(kind, "same seed, same set", f"{where}: two runs differ")
                if _digest(data.train_images, data.train_labels) != data_digest:
                    raise _fail(kind, "dataset unchanged", f"{where}: condense modified the data")
                path = Path(tmp) / f"set_ipc{ipc}_s{seed}.h5"
                a.method = f"check_{kind}"
                a.save(path, created_by="ddbench.testing.check_method", seed=seed)
                back = CondensedSet.load(path, data.num_classes, shape)
                if _digest(back.images, back.labels, back.soft_labels) != _digest(
                    a.images, a.labels, a.soft_labels
                ) or (back.method, back.kind, back.ipc) != (a.method, a.kind, a.ipc):
                    raise _fail(kind, "save/load round trip", f"{where}: the loaded set differs")
    passed += [
        "exact class-balanced IPC",
        "set metadata",
        "valid set",
        "same seed, same set",
        "dataset unchanged",
        "params unchanged",
        "save/load round trip",
    ]
    return passed


def tiny_unet_prior(
    data: ImageData,
    block_out_channels: Sequence[int] = (8, 16),
    num_train_timesteps: int = 100,
    seed: int = 0,
):
    """A real `unet` DiffusionPrior with a tiny randomly initialised UNet (tests of prior users)."""
    import torch

    from ddbench.stages.diffusion import UNET_DEFAULTS, UNetPrior, build_scheduler, build_unet
    from ddbench.stages.priors import unet_padding

    spec = {
        **UNET_DEFAULTS,
        "block_out_channels": list(block_out_channels),
        "norm_groups": 4,
        "num_train_timesteps": num_train_timesteps,
    }
    shape = (data.in_chans, data.image_size, data.image_size)
    torch.manual_seed(seed)
    unet = build_unet(spec, data.num_classes, shape)
    info = {
        "class_names": list(data.classes),
        "image_shape": list(shape),
        "pad": unet_padding(data.image_size, len(block_out_channels)),
    }
    return UNetPrior(unet, build_scheduler(spec), info, "cpu")
