"""Memory of each rule's jobs, sized from its dataset: the formula the rules and profiles/slurm use.

For a job of rule r on a dataset with N training and M test images of H x W x C uint8 pixels and
K classes, in a config whose largest `batch_size` is B:

    mem_mb = round_up_100(1.25 x (floor_r
                                  + split_r x held(N·H·W·C) + test_r x held(M·H·W·C)
                                  + sample_r x N + class_r x N·K
                                  + batch_r x B·H·W·C·4) / 2^20) x attempt

- floor_r: the job's fixed cost in MB (the torch stack is 0.7-0.8 GB RSS, measured);
- held(bytes): a split's uint8 bytes while it is held in memory, i.e. up to the in-memory switch
  of the dataset reader (DDBENCH_IN_MEMORY_MAX_BYTES, default 512 MiB); a larger split is read
  in batches and counts 0. split_r / test_r cover the uint8 copy, its float32 copy (4x) and
  temporaries: 6 for the training stages (measured: +230-340 MB for +55 MB of uint8 pixels),
  2 for evaluation-type jobs (+72-96 MB for the same);
- sample_r x N: per-sample outputs that grow with the split whatever the reader does (labels,
  dynamics records, feature vectors up to 2 048 float32 = 8 KiB, the file list of an image
  folder);
- class_r x N·K: per-sample per-class arrays (soft labels / logits of the whole split);
- batch_r x B·H·W·C·4: activations and gradients of a batch, as a multiple of its float32 input;
- 1.25: margin; x attempt: a job killed for memory asks for 2x, then 3x.

N, M, H, W, C and K come from the prepared dataset file once it exists (Snakemake evaluates a
job's resources again when its inputs are ready), before that from the config (known sizes of
digits, Fashion-MNIST and CIFAR; for image folders `image_size`, `channels`, `classes` and the
per-class caps, else ImageNet-1K's 1 300 / 50 images per class and 1 000 classes). No data file
is listed or decoded.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache

from ddbench.workflow.paths import target_path

MIB = 1 << 20
MARGIN = 1.25
IN_MEMORY_ENV = "DDBENCH_IN_MEMORY_MAX_BYTES"  # the dataset reader's in-memory switch
DEFAULT_IN_MEMORY_MAX_BYTES = 512 << 20
DEFAULT_BATCH = 256


@dataclass(frozen=True)
class DatasetSize:
    """What a job's memory depends on: split sizes, image shape and class count."""

    n_train: int
    n_test: int
    height: int
    width: int
    channels: int
    classes: int

    @property
    def image_bytes(self) -> int:
        """H x W x C: bytes of one uint8 image."""
        return self.height * self.width * self.channels


@dataclass(frozen=True)
class RuleMemory:
    """The coefficients of one rule in the formula (module docstring)."""

    floor_mb: float
    split: float = 0.0  # x held training uint8 bytes
    test: float = 0.0  # x held test uint8 bytes
    sample: float = 0.0  # bytes per training sample
    per_class: float = 0.0  # bytes per training sample and class
    batch: float = 0.0  # x the float32 bytes of one batch


# prepare_dataset: image folders are decoded chunk by chunk (ddbench.data.prepare; per worker two
# 4 MiB chunks in flight, counted in RuleMemory.floor_mb by `memory_mb`) and keep ~1 KiB per
# file (path, digest, manifest line); the other sources are read whole and their mean/std taken
# over a float64 copy (1 + 8 + 8 bytes per pixel).
PREPARE_FOLDER = RuleMemory(floor_mb=400, sample=1024)
PREPARE_IN_MEMORY = RuleMemory(floor_mb=400, split=17, test=2)
RULES: dict[str, RuleMemory] = {
    "train_teacher": RuleMemory(1000, split=6, test=6, sample=64, batch=64),
    "train_experts": RuleMemory(1000, split=6, test=6, sample=64, batch=64),
    "extract_features": RuleMemory(1000, split=6, test=1, sample=8192, per_class=4, batch=16),
    "compute_scores": RuleMemory(1000, split=6, test=1, sample=1024, per_class=4, batch=64),
    "evaluate_full_train": RuleMemory(1000, split=6, test=6, sample=64, batch=128),
    "condense": RuleMemory(1000, split=6, test=0, sample=8192, batch=64),
    "evaluate": RuleMemory(1000, split=0, test=6, sample=8, batch=128),
    "quality": RuleMemory(1000, split=2, test=2, sample=8192, batch=16),
    "train_prior": RuleMemory(1500, split=6, test=0, sample=64, batch=256),
    "generate_pool": RuleMemory(1500, split=1, test=0, sample=8, batch=256),
    "cluster_patches": RuleMemory(1000, split=1, test=0, sample=8192, batch=16),
}

# Sizes of the built-in sources that are known without reading them: (train, test, H, W, C, K).
KNOWN_SIZES = {
    "fashion_mnist": (60000, 10000, 28, 28, 1, 10),
    "cifar10": (50000, 10000, 32, 32, 3, 10),
    "cifar100": (50000, 10000, 32, 32, 3, 100),
}
DIGITS = 1797
IMAGENET_TRAIN_PER_CLASS, IMAGENET_TEST_PER_CLASS, IMAGENET_CLASSES = 1300, 50, 1000


def in_memory_max_bytes() -> int:
    """The reader's in-memory switch (DDBENCH_IN_MEMORY_MAX_BYTES, default 512 MiB).

    The same rule as `ddbench.data.datasets.in_memory_max_bytes` (not imported: this module is
    read at every DAG parse and stays free of h5py); a bad value is refused the same way.
    """
    text = os.environ.get(IN_MEMORY_ENV, "").strip()
    try:
        return int(float(text)) if text else DEFAULT_IN_MEMORY_MAX_BYTES
    except ValueError:
        raise ValueError(f"{IN_MEMORY_ENV}={text!r} is not a number of bytes") from None


def estimate_size(spec: dict) -> DatasetSize:
    """A dataset's size from its config entry alone (an upper bound for image folders)."""
    kind = spec.get("kind")
    cap_train, cap_test = spec.get("max_train_per_class"), spec.get("max_test_per_class")
    if kind == "digits":
        n_test = math.ceil(DIGITS * float(spec.get("test_fraction", 0.25)))
        n_train, n_test, h, w, c, k = DIGITS - n_test, n_test, 8, 8, 1, 10
    elif kind in KNOWN_SIZES:
        n_train, n_test, h, w, c, k = KNOWN_SIZES[kind]
    else:  # image folders and plugins: ImageNet-1K-sized unless the config says less
        h = w = int(spec.get("image_size") or 64)
        c = int(spec.get("channels") or 3)
        k = len(spec["classes"]) if spec.get("classes") else IMAGENET_CLASSES
        n_train = k * (cap_train or IMAGENET_TRAIN_PER_CLASS)
        n_test = k * (cap_test or IMAGENET_TEST_PER_CLASS)
        cap_train = cap_test = None
    if cap_train:
        n_train = min(n_train, k * cap_train)
    if cap_test:
        n_test = min(n_test, k * cap_test)
    return DatasetSize(n_train, n_test, h, w, c, k)


@lru_cache(maxsize=256)
def _file_size(path: str, mtime_ns: int) -> DatasetSize:
    import h5py

    with h5py.File(path, "r") as f:
        n_train, h, w, c = f["train/images"].shape
        n_test = f["test/images"].shape[0]
        classes = json.loads(f.attrs["classes"])
    return DatasetSize(int(n_train), int(n_test), int(h), int(w), int(c), len(classes))


def dataset_size(spec: dict, path: str | os.PathLike | None = None) -> DatasetSize:
    """Read from the prepared file `path` when it exists and is readable, else `estimate_size`."""
    if path is not None:
        try:
            return _file_size(str(path), os.stat(path).st_mtime_ns)
        except (OSError, KeyError, ValueError, TypeError):
            pass
    return estimate_size(spec)


def config_batch(config: dict) -> int:
    """The largest `batch_size` of the config's teachers, scorers, priors and protocols (B)."""
    sizes = [
        entry["batch_size"]
        for section in ("teachers", "scorers", "priors", "protocols")
        for entry in (config.get(section) or {}).values()
        if isinstance(entry, dict) and isinstance(entry.get("batch_size"), int)
    ]
    return max(sizes, default=DEFAULT_BATCH)


def rule_memory(rule: str, spec: dict | None = None) -> RuleMemory:
    """The coefficients of `rule` (prepare_dataset: by source kind)."""
    if rule == "prepare_dataset":
        from ddbench.data.prepare import PARALLEL_KINDS

        return PREPARE_FOLDER if (spec or {}).get("kind") in PARALLEL_KINDS else PREPARE_IN_MEMORY
    return RULES[rule]


def memory_mb(
    rule: str,
    size: DatasetSize,
    batch: int = DEFAULT_BATCH,
    *,
    spec: dict | None = None,
    workers: int = 1,
    attempt: int = 1,
    cap: int | None = None,
) -> int:
    """The formula of the module docstring, in MB (a multiple of 100)."""
    r = rule_memory(rule, spec)
    cap = in_memory_max_bytes() if cap is None else cap

    def held(n: int) -> int:
        nbytes = n * size.image_bytes
        return nbytes if nbytes <= cap else 0

    floor = r.floor_mb + (8 * workers if r is PREPARE_FOLDER else 0)
    grows = (
        r.split * held(size.n_train)
        + r.test * held(size.n_test)
        + r.sample * size.n_train
        + r.per_class * size.n_train * size.classes
        + r.batch * batch * size.image_bytes * 4
    )
    return int(math.ceil(MARGIN * (floor + grows / MIB) / 100) * 100) * attempt


def dataset_mem_mb(config: dict, rule: str):
    """Snakemake resource callable: `memory_mb` of the job's dataset, times the attempt."""
    batch = config_batch(config)

    def value(wildcards, threads, attempt):
        spec = config["datasets"][wildcards.dataset]
        path = target_path("dataset", dataset=wildcards.dataset)
        size = dataset_size(spec, None if rule == "prepare_dataset" else path)
        return memory_mb(rule, size, batch, spec=spec, workers=threads, attempt=attempt)

    return value
