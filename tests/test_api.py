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
from ddbench.errors import ConfigError, DataFileError

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


def _config_with_set_protocols() -> dict:
    import yaml

    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["exclude"] = []
    cfg["protocols"] = {
        "hl": {"preset": "hl", "epochs": 40, "batch_size": 64},
        "stored": {"preset": "sl", "labels": "stored", "epochs": 40, "batch_size": 64},
        "set_lr": {"preset": "hl", "lr": "from_set", "epochs": 40, "batch_size": 64},
    }
    return cfg


def test_stored_soft_labels_train_the_student_at_the_sets_temperature(tmp_path):
    x, y = _digits_set()
    peaked = np.full((20, 10), 0.02, np.float32)
    peaked[np.arange(20), y.numpy()] = 0.82
    uniform = np.full((20, 10), 0.1, np.float32)  # carries no class information
    runs = {}
    for name, soft in (("peaked", peaked), ("uniform", uniform)):
        runs[name] = ddbench.evaluate(
            x, y, soft, dataset="digits", protocol="stored", config=_config_with_set_protocols(),
            workdir=tmp_path, name=name, temperature=2.0,
        )  # fmt: skip
    rec = json.loads(Path(runs["peaked"]["path"].iloc[0]).read_text())
    assert rec["labels_used"] == "stored" and rec["soft_label_temperature"] == 2.0
    assert rec["protocol_params"]["labels"] == "stored" and rec["teacher_forward_images"] == 0
    assert runs["uniform"]["accuracy"].iloc[0] < 20.0  # chance is 10 %: the labels are used
    assert runs["peaked"]["accuracy"].iloc[0] > runs["uniform"]["accuracy"].iloc[0] + 20.0


def test_from_set_lr_uses_the_sets_syn_lr(tmp_path):
    x, y = _digits_set()
    cfg = _config_with_set_protocols()
    res = ddbench.evaluate(
        x, y, dataset="digits", protocol=["set_lr", "hl"], config=cfg, workdir=tmp_path,
        syn_lr=0.01,
    )  # fmt: skip
    rec = json.loads(Path(res["path"].iloc[0]).read_text())
    assert rec["lr_used"] == 0.01 and rec["lr_source"] == "set (syn_lr)"
    # hl's lr is 0.01 too: the same recipe, so the same number, bit for bit on CPU
    assert res["accuracy"].iloc[0] == res["accuracy"].iloc[1]


def test_set_protocols_refuse_a_set_without_what_they_read(tmp_path):
    x, y = _digits_set()
    cfg = _config_with_set_protocols()
    with pytest.raises(DataFileError, match=r"^mine: protocol 'stored' .*labels: stored.*has none"):
        ddbench.evaluate(x, y, dataset="digits", protocol="stored", config=cfg, workdir=tmp_path)
    torch.save((x, y), tmp_path / "mine.pt")
    cmd = [sys.executable, "-m", "ddbench", "evaluate", "mine.pt", "--dataset", "digits"]
    proc = subprocess.run(cmd + ["--protocol", "set_lr", "--config", str(SMOKE)], cwd=tmp_path,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 2 and "not in the config" in proc.stderr  # smoke has no set_lr
    with pytest.raises(DataFileError, match=r"lr: from_set.*no syn_lr; pass --syn-lr"):
        ddbench.evaluate(x, y, dataset="digits", protocol="set_lr", config=cfg, workdir=tmp_path)


def test_zca_matches_kornias_recipe_and_is_deterministic():
    from ddbench.data.datasets import ImageData
    from ddbench.training.evaluate import fit_zca

    rng = np.random.default_rng(0)
    images = (rng.random((200, 4, 4, 2)) ** 2 * 255).astype(np.uint8)
    data = ImageData(
        name="toy", train_images=images, train_labels=np.zeros(200, np.int64),
        test_images=images[:5], test_labels=np.zeros(5, np.int64), classes=["a"],
        mean=[0.5, 0.5], std=[0.5, 0.5],
    )  # fmt: skip
    zca = fit_zca(data, epsilon=0.1, batch_size=64)
    x = (images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0).reshape(200, -1)
    cov = np.cov(x.astype(np.float64), rowvar=False)  # unbiased, as kornia's zca_mean
    s, u = np.linalg.eigh(cov)
    np.testing.assert_allclose(zca.matrix, u @ np.diag(1 / np.sqrt(s + 0.1)) @ u.T, atol=1e-8)
    white = zca(images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0).reshape(200, -1)
    np.testing.assert_allclose(np.cov(white, rowvar=False), u @ np.diag(s / (s + 0.1)) @ u.T,
                               atol=1e-5)  # fmt: skip
    again = fit_zca(data, epsilon=0.1, batch_size=64)
    assert again.sha256() == zca.sha256()


def test_zca_whitened_set_is_evaluated_on_whitened_test_images(tmp_path):
    from ddbench.data.datasets import load_dataset
    from ddbench.training.evaluate import fit_zca

    x, y = _digits_set()
    cfg = _config_with_set_protocols()
    ddbench.evaluate(x, y, dataset="digits", protocol="hl", config=cfg, workdir=tmp_path)
    zca = fit_zca(load_dataset(tmp_path / "resources/datasets/digits.h5"))
    white = zca(x.numpy())
    with pytest.raises(DataFileError, match=r"float pixel values range over"):
        ddbench.evaluate(white, y, dataset="digits", protocol="hl", config=cfg, workdir=tmp_path)
    res = ddbench.evaluate(
        white, y, dataset="digits", protocol="hl", config=cfg, workdir=tmp_path, zca=True,
        name="white",
    )  # fmt: skip
    rec = json.loads(Path(res["path"].iloc[0]).read_text())
    assert rec["zca"]["epsilon"] == 0.1 and rec["zca"]["sha256"] == zca.sha256()
    assert rec["accuracy"] > 40.0  # chance is 10 %: test images went through the same ZCA
    with pytest.raises(ConfigError, match=r"'slkd' labels images with teachers"):
        ddbench.evaluate(white, y, dataset="digits", protocol="slkd", config=SMOKE,
                         workdir=tmp_path, zca=True)  # fmt: skip
