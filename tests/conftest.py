"""Shared fixtures: a tiny in-memory dataset and fake training dynamics (no files, no torch)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml

from ddbench.data.datasets import ImageData

ROOT = Path(__file__).resolve().parents[1]

CLASSES = ["a", "b", "c"]
IMAGE_SIZE = 6
CHANNELS = 1


def make_image_data(counts: Sequence[int] = (12, 12, 12), seed: int = 0) -> ImageData:
    """`counts[c]` random uint8 6x6x1 training images of class c, labels interleaved (not sorted)."""
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(n, c, dtype=np.int64) for c, n in enumerate(counts)])
    labels = labels[rng.permutation(len(labels))]
    n = len(labels)
    train = rng.integers(0, 256, size=(n, IMAGE_SIZE, IMAGE_SIZE, CHANNELS), dtype=np.uint8)
    # 36 random bytes per image: all images distinct, so an image identifies its index
    assert len({img.tobytes() for img in train}) == n
    test_labels = np.arange(2 * len(counts), dtype=np.int64) % len(counts)
    test = rng.integers(
        0, 256, size=(len(test_labels), IMAGE_SIZE, IMAGE_SIZE, CHANNELS), dtype=np.uint8
    )
    return ImageData(
        name="tiny",
        train_images=train,
        train_labels=labels,
        test_images=test,
        test_labels=test_labels,
        classes=list(CLASSES[: len(counts)]),
        mean=[0.5] * CHANNELS,
        std=[0.25] * CHANNELS,
    )


def make_dynamics(
    labels: np.ndarray, runs: int = 2, epochs: int = 5, num_classes: int = 3, seed: int = 0
) -> dict[str, np.ndarray]:
    """Fake dynamics: random softmax outputs, float32 probs [R, E, N, K] and int64 labels [N]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(runs, epochs, len(labels), num_classes)) * 2.0
    probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
    probs /= probs.sum(axis=-1, keepdims=True)
    return {"probs": probs.astype(np.float32), "labels": np.asarray(labels, dtype=np.int64)}


@pytest.fixture
def tiny_data() -> ImageData:
    """3 classes ("a", "b", "c") x 12 training images of 6x6x1 uint8."""
    return make_image_data()


@pytest.fixture
def fake_dynamics() -> Callable[..., dict[str, np.ndarray]]:
    """Factory: fake_dynamics(labels, runs=2, epochs=5, num_classes=3, seed=0) -> dynamics dict."""
    return make_dynamics


@pytest.fixture
def tiny_dynamics(tiny_data: ImageData) -> dict[str, np.ndarray]:
    """Fake dynamics for `tiny_data`'s training labels."""
    return make_dynamics(tiny_data.train_labels, num_classes=tiny_data.num_classes)


@pytest.fixture
def tiny_features(tiny_data: ImageData) -> np.ndarray:
    """Random float32 [N, 8] features for `tiny_data`'s training images."""
    rng = np.random.default_rng(1)
    return rng.normal(size=(len(tiny_data.train_labels), 8)).astype(np.float32)


def snakemake_command(
    workdir: Path, configfile: Path, *args: str, targets: Sequence[str] = ()
) -> list[str]:
    """`python -m snakemake` on this checkout's Snakefile in `workdir` with `configfile`, then `args`.

    The one place tests build a Snakemake command line (`run_snakemake` runs it; tests that must
    kill a run pass it to `subprocess.Popen`). `--configfile` takes every value that follows it,
    so a target must come after an option with one value (`"--cores", "2", target`) or go in
    `targets`, which come right after the Snakefile: before `--configfile` and anything in `args`
    that also takes every following value (`--set-resources`).
    """
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        *targets,
        "--directory",
        str(workdir),
        "--configfile",
        str(configfile),
        *args,
    ]


def run_snakemake(
    workdir: Path,
    configfile: Path,
    *args: str,
    targets: Sequence[str] = (),
    check: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cwd: Path | None = ROOT,
) -> subprocess.CompletedProcess:
    """Run `snakemake_command(workdir, configfile, *args, targets=targets)`, output captured as text.

    `check`: raise AssertionError with the ends of stdout and stderr when Snakemake fails.
    `env`: the whole environment (None: this process's). `cwd=None`: the current directory.
    """
    proc = subprocess.run(
        snakemake_command(workdir, configfile, *args, targets=targets),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        )
    return proc


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> tuple[Path, dict]:
    """The smoke grid (config/smoke.yaml) run once per session in a temp folder: (workdir, config)."""
    work = tmp_path_factory.mktemp("smoke")
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run_snakemake(work, cfg, "--cores", "2")
    return work, config
