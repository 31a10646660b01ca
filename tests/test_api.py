"""Evaluate anyone's set: `ddbench evaluate SET` and `ddbench.evaluate(...)` on the smoke config."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import ddbench
from ddbench.errors import DataFileError

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config/smoke.yaml"


def _digits_set(ipc: int = 2):
    d = load_digits()
    x = torch.tensor(d.images[:300] / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(d.target[:300])
    idx = torch.cat([torch.nonzero(y == c)[:ipc, 0] for c in range(10)])
    return x[idx], y[idx]


def test_command_evaluates_an_images_labels_pair_and_reuses_the_results_tree(tmp_path):
    torch.save(_digits_set(), tmp_path / "mine.pt")  # a tuple, as many repos save sets
    cmd = [sys.executable, "-m", "ddbench", "evaluate", "mine.pt", "--dataset", "digits"]
    cmd += ["--config", str(SMOKE), "--protocol", "hl", "--protocol", "slkd", "--seeds", "0,1"]
    first = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    rows = [line for line in first.stdout.splitlines() if line.startswith("| hl ")]
    assert len(rows) == 1 and "| 2 | 2 |" in rows[0]  # IPC 2, two seeds
    assert "preparing" in first.stderr and "training teacher convnet" in first.stderr
    rec = json.loads((tmp_path / "evaluations/mine/hl/convnet/s1.json").read_text())
    assert (
        rec["seed"] == 1
        and rec["ipc"] == 2
        and rec["n_train"] == 20
        and 0 <= rec["accuracy"] <= 100
    )
    teacher = tmp_path / "results/digits/teachers/convnet.pt"
    stamp = teacher.stat().st_mtime_ns
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "preparing" not in again.stderr and "training teacher" not in again.stderr
    assert teacher.stat().st_mtime_ns == stamp  # kept from the first call, not retrained
    assert again.stdout == first.stdout  # same set, seeds and recipe: the same numbers


def test_python_api_on_arrays_matches_the_command(tmp_path):
    x, y = _digits_set()
    result = ddbench.evaluate(
        x.numpy(), y.numpy(), dataset="digits", protocol="hl", seeds=[0], config=SMOKE,
        workdir=tmp_path,
    )  # fmt: skip
    assert list(result["protocol"]) == ["hl"] and result["ipc"].iloc[0] == 2
    torch.save({"images": x, "labels": y}, tmp_path / "mine.pt")
    cmd = [sys.executable, "-m", "ddbench", "evaluate", "mine.pt", "--dataset", "digits"]
    cmd += ["--config", str(SMOKE), "--protocol", "hl", "--seeds", "0", "--out-dir", "cli"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rec = json.loads((tmp_path / "cli/hl/convnet/s0.json").read_text())
    assert rec["accuracy"] == pytest.approx(result["accuracy"].iloc[0], abs=1e-9)


def test_unbalanced_or_misshaped_sets_are_refused_naming_the_problem(tmp_path):
    x, y = _digits_set()
    with pytest.raises(DataFileError, match="images per class"):
        ddbench.evaluate(
            x[:-1], y[:-1], dataset="digits", protocol="hl", config=SMOKE, workdir=tmp_path
        )
    with pytest.raises(DataFileError, match="shape"):
        ddbench.evaluate(
            np.zeros((20, 3, 8, 8), np.float32), y, dataset="digits", protocol="hl",
            config=SMOKE, workdir=tmp_path,
        )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "ddbench", "evaluate", "missing.pt", "--dataset", "digits",
         "--config", str(SMOKE)],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "missing.pt" in proc.stderr and "Traceback" not in proc.stderr


def test_declared_normalisation_is_undone_and_a_wrong_one_is_refused():
    from ddbench.api import undo_normalisation

    x, _ = _digits_set()
    x = x.numpy()
    stored = (x - 0.5) / 0.25
    np.testing.assert_allclose(undo_normalisation(stored, [0.5], [0.25], "s.pt"), x, atol=1e-6)
    with pytest.raises(DataFileError, match=r"s\.pt: after undoing .* not \[0, 1\]"):
        undo_normalisation(stored, [0.1], [2.0], "s.pt")


def test_other_resolutions_are_resized_with_a_notice(tmp_path):
    x, y = _digits_set()
    big = torch.nn.functional.interpolate(x, size=(16, 16), mode="nearest")
    torch.save((big, y), tmp_path / "big.pt")
    cmd = [sys.executable, "-m", "ddbench", "evaluate", "big.pt", "--dataset", "digits"]
    cmd += ["--config", str(SMOKE), "--protocol", "hl", "--seeds", "0"]
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "notice: big: images are (16, 16), the dataset is 8x8: resized" in proc.stderr
    refused = subprocess.run([*cmd, "--no-resize"], cwd=tmp_path, capture_output=True, text=True)
    assert refused.returncode == 2 and "shape" in refused.stderr
