"""Corrupt or wrong inputs stop with one clear message naming the file; nothing downstream is written."""

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import run_snakemake

from ddbench.data.datasets import load_dataset, prepare_dataset
from ddbench.data.h5io import DataFileError, write_h5
from ddbench.methods.base import CondensedSet
from ddbench.stages.teachers import make_model, save_checkpoint
from ddbench.training.evaluate import evaluate_set
from ddbench.training.protocols import resolve_protocol

ROOT = Path(__file__).resolve().parents[1]
STUDENT = {"model": "convnet-d2-w8-in"}


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path


def good_set(data, ipc=1) -> CondensedSet:
    idx = np.concatenate([np.flatnonzero(data.train_labels == c)[:ipc] for c in range(10)])
    return CondensedSet(
        images=data.train_float()[idx],
        labels=data.train_labels[idx],
        method="m",
        kind="random",
        params={},
        ipc=ipc,
        dataset="digits",
    )


def write_variant(path: Path, data, variant: str) -> str:
    """Write a broken condensed set; return the phrase its error must contain."""
    cs = good_set(data)
    if variant == "truncated":
        cs.save(path, created_by="test", seed=0)
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
        return "truncated or corrupt"
    if variant == "other_format":
        write_h5(path, "features", {"features": np.zeros((3, 4), np.float32)}, created_by="test")
        return "expected 'ddbench.condensed/1'"
    if variant == "wrong_shape":
        cs.images = np.repeat(cs.images, 3, axis=1)
        phrase = "shape"
    elif variant == "labels_out_of_range":
        cs.labels = cs.labels.copy()
        cs.labels[0] = 12
        phrase = "labels outside 0..9"
    elif variant == "nan_pixels":
        cs.images = cs.images.copy()
        cs.images[0, 0, 0, 0] = np.nan
        phrase = "NaN or infinite"
    elif variant == "inf_pixels":
        cs.images = cs.images.copy()
        cs.images[1, 0, 2, 2] = np.inf
        phrase = "NaN or infinite"
    elif variant == "wrong_ipc":
        cs.labels = cs.labels.copy()
        cs.labels[1] = 0
        phrase = "exactly 1 images per class"
    else:
        raise AssertionError(variant)
    cs.save(path, created_by="test", seed=0)
    return phrase


VARIANTS = [
    "truncated",
    "other_format",
    "wrong_shape",
    "labels_out_of_range",
    "nan_pixels",
    "inf_pixels",
    "wrong_ipc",
]


@pytest.mark.parametrize("variant", VARIANTS)
def test_broken_condensed_set_stops_evaluation(digits, tmp_path, variant):
    data = load_dataset(digits)
    bad = tmp_path / f"{variant}.h5"
    phrase = write_variant(bad, data, variant)
    out = tmp_path / "metrics.json"
    protocol = resolve_protocol("hl", {"preset": "hl", "epochs": 1})
    with pytest.raises(DataFileError) as err:
        evaluate_set(digits, bad, protocol, "s", STUDENT, 0, [], out, device="cpu")
    assert str(bad) in str(err.value) and phrase in str(err.value)
    assert not out.exists()


def test_checkpoint_of_another_architecture_stops_evaluation(digits, tmp_path):
    data = load_dataset(digits)
    good = tmp_path / "set.h5"
    good_set(data).save(good, created_by="test", seed=0)
    ckpt = tmp_path / "teacher.pt"
    save_checkpoint(
        make_model({"model": "convnet-d2-w8-in"}, data), {"model": "convnet-d2-w8-in"}, data, ckpt
    )
    import torch

    payload = torch.load(ckpt, weights_only=True)
    payload["model"] = "convnet-d3-w8-in"  # the weights no longer fit the declared architecture
    torch.save(payload, ckpt)
    out = tmp_path / "metrics.json"
    protocol = resolve_protocol("sl", {"preset": "sl", "epochs": 1, "teachers": ["t"]})
    with pytest.raises(DataFileError, match=str(ckpt)):
        evaluate_set(digits, good, protocol, "s", STUDENT, 0, [str(ckpt)], out, device="cpu")
    assert not out.exists()


def test_truncated_dataset_file_is_named(digits, tmp_path):
    bad = tmp_path / "digits.h5"
    shutil.copy(digits, bad)
    bad.write_bytes(bad.read_bytes()[:4096])
    with pytest.raises(DataFileError, match=str(bad)):
        load_dataset(bad)


@pytest.mark.workflow
def test_workflow_job_fails_with_one_clear_line_and_writes_nothing(smoke_run, tmp_path):
    work, config = smoke_run
    copy = tmp_path / "w"
    for sub in ("resources", "results", "benchmarks", ".snakemake"):
        shutil.copytree(work / sub, copy / sub, symlinks=True)
    cfg = copy / "config.yaml"
    shutil.copy(work / "config.yaml", cfg)
    target = copy / "results/digits/condensed/random/ipc1/s0.h5"
    with h5py.File(target, "r+") as f:
        f["images"][0, 0, 0, 0] = np.nan
    proc = run_snakemake(copy, cfg, "--cores", "2", "--keep-going", check=False)
    assert proc.returncode != 0, proc.stderr[-2000:]
    with h5py.File(target, "r") as f:  # the broken set is reported, not silently remade
        assert np.isnan(f["images"][0, 0, 0, 0])
    evals = list((copy / "results/digits/eval").glob("*/convnet/random/ipc1/s0.json"))
    assert evals == []  # every evaluation of the broken set failed and left no metrics
    log = (copy / "logs/digits/eval/hl/convnet/random/ipc1/s0.log").read_text()
    errors = [line for line in log.splitlines() if line.startswith("ERROR:")]
    rel = "results/digits/condensed/random/ipc1/s0.h5"  # paths are relative to the working dir
    assert len(errors) == 1 and rel in errors[0] and "NaN" in errors[0]
    assert "Traceback" not in log
