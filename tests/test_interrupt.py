"""Kill the workflow with SIGKILL at six points (one mid-write of an HDF5 file per stage), resume,
and check that the results are bitwise identical to an uninterrupted run."""

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml
from conftest import run_snakemake, snakemake_command

from ddbench.data.h5io import DataFileError, open_h5

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.workflow
CORES = ("--cores", "2")  # every Snakemake run of these tests

# (target path fragment paused half-written, rule type it interrupts)
KILL_POINTS = [
    ("resources/datasets/digits.h5", "prepare_dataset"),
    ("teachers/convnet.pt", "train_teacher"),
    ("scores/dynamics.h5", "compute_scores"),
    ("condensed/herding/ipc1/s0.h5", "condense"),
    ("eval/slkd/convnet/el2n_easy/ipc1/s0.json", "evaluate"),
    ("tables/accuracy.csv", "accuracy_table"),
]


def tiny_config(path: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    cfg["ipcs"] = [1]
    cfg["methods"] = {k: cfg["methods"][k] for k in ("random", "herding", "el2n_easy")}
    cfg["protocols"] = {k: cfg["protocols"][k] for k in ("hl", "slkd")}
    cfg["teachers"] = {"convnet": cfg["teachers"]["convnet"]}
    cfg["reference"] = {"enabled": False}
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_to_end(work: Path, cfg: Path) -> None:
    run_snakemake(work, cfg, *CORES, "--unlock")
    proc = run_snakemake(work, cfg, *CORES, "--rerun-incomplete", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]


def run_and_kill(work: Path, cfg: Path, fragment: str, timeout: float = 240) -> bool:
    """Start the workflow with the write of `fragment` paused; SIGKILL everything once it pauses."""
    env = dict(os.environ, DDBENCH_FAULT_PAUSE_WRITE=fragment, DDBENCH_FAULT_PAUSE_SECONDS="120")
    run_snakemake(work, cfg, *CORES, "--unlock")
    proc = subprocess.Popen(
        snakemake_command(work, cfg, *CORES, "--rerun-incomplete"),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if list(work.rglob("*.paused")):
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                return True
            if proc.poll() is not None:
                return False
            time.sleep(0.1)
        raise AssertionError(f"the write of {fragment} never started")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def assert_no_partial_outputs(work: Path) -> None:
    """Every file at a target path is complete and readable; half-written data only in temp files."""
    for f in work.glob("results/**/*.h5"):
        kind = {"condensed": "condensed", "scores": "scores", "features": "features"}[
            f.relative_to(work).parts[2]
        ]
        with open_h5(f, kind):
            pass
    for f in work.glob("resources/datasets/*.h5"):
        with open_h5(f, "dataset"):
            pass
    for f in work.glob("results/**/*.json"):
        json.loads(f.read_text())
    for f in work.glob("results/**/*.pt"):
        torch.load(f, weights_only=True)


def fingerprint(work: Path) -> dict:
    """Everything that must be bitwise reproducible: arrays of every HDF5 file, weights, metrics."""
    out = {}
    for f in sorted(work.glob("r*/**/*.h5")):
        with h5py.File(f) as h:
            h.visititems(
                lambda name, obj, f=f: (
                    out.__setitem__(f"{f.relative_to(work)}:{name}", obj[()].tobytes())
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
    for f in sorted(work.glob("results/**/*.pt")):
        state = torch.load(f, weights_only=True)["state_dict"]
        out[str(f.relative_to(work))] = b"".join(v.numpy().tobytes() for v in state.values())
    for f in sorted(work.glob("results/**/eval/**/*.json")):
        m = json.loads(f.read_text())
        out[str(f.relative_to(work))] = (m["accuracy"], m["final_train_loss"], m["steps"])
    out["table"] = (work / "results/tables/accuracy.csv").read_text()
    return out


def test_sigkill_at_six_points_then_resume_is_bitwise_identical(tmp_path):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    cfg = tiny_config(tmp_path / "tiny.yaml")
    run_snakemake(clean, cfg, *CORES)

    survived = []
    for fragment, rule in KILL_POINTS:
        assert run_and_kill(killed, cfg, fragment), f"workflow finished before reaching {rule}"
        target = next(iter(killed.rglob("*.paused"))).read_text()
        assert not Path(target).exists(), f"{target} exists although its write was killed"
        assert_no_partial_outputs(killed)
        survived.append(rule)
    run_to_end(killed, cfg)
    assert survived == [r for _, r in KILL_POINTS]
    assert not list(killed.rglob("*.tmp")) or all(
        "paused" not in p.name for p in killed.rglob("*.tmp")
    )
    a, b = fingerprint(clean), fingerprint(killed)
    assert a.keys() == b.keys()
    different = [k for k in a if a[k] != b[k]]
    assert not different, f"differs after interruption: {different[:5]}"
    # and nothing is left to do
    proc = run_snakemake(killed, cfg, *CORES, "-n", check=False)
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_truncated_file_at_a_target_path_is_rejected_with_its_name(tmp_path):
    from ddbench.data.h5io import write_h5

    f = tmp_path / "s.h5"
    write_h5(f, "condensed", {"images": np.zeros((2, 1, 4, 4), np.float32)}, created_by="test")
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(DataFileError, match=str(f)):
        with open_h5(f, "condensed"):
            pass
