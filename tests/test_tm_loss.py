"""TM-loss analysis: the loss, the per-set JSON target, the table and figure, the plan."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ddbench.analysis import tm_loss as tm
from ddbench.config import ConfigError, load_config, validate_config
from ddbench.data.h5io import DataFileError
from ddbench.methods.base import CondensedSet
from ddbench.stages.experts import build_experts
from ddbench.testing import tiny_dataset
from ddbench.workflow import Plan, target_path

ROOT = Path(__file__).resolve().parents[1]
CONVNET = {"model": "convnet-d2-w8-in", "n_experts": 2, "epochs": 3, "batch_size": 12, "lr": 0.05}
OTHER = {**CONVNET, "model": "convnet-d1-w4-none"}  # a second, different architecture
SPEC = {"start_epochs": [0, 1], "syn_steps": 3, "expert_epochs": 2, "batch": 4}


def _data():
    return tiny_dataset(num_classes=3, per_class=12, image_size=8)


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    root = tmp_path_factory.mktemp("experts")
    data = _data()
    out = {}
    for name, spec in (("conv", CONVNET), ("other", {**OTHER, "dsa": False})):
        build_experts(data, name, {**spec, "dsa": False}, root / name)
        out[name] = root / name
    return out


def _set(data, ipc=2, soft=False, method="m"):
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(data.num_classes), ipc)
    images = rng.random((len(labels), data.in_chans, data.image_size, data.image_size))
    soft_labels = None
    if soft:
        z = rng.normal(size=(len(labels), data.num_classes))
        soft_labels = (np.exp(z) / np.exp(z).sum(1, keepdims=True)).astype(np.float32)
    return CondensedSet(
        images=images.astype(np.float32),
        labels=labels,
        method=method,
        kind="random",
        params={},
        ipc=ipc,
        dataset=data.name,
        soft_labels=soft_labels,
    )


def _saved_set(tmp_path, data, **kw):
    path = tmp_path / target_path("condensed", dataset=data.name, method="m", ipc=2, seed=0)
    path.parent.mkdir(parents=True)
    _set(data, **kw).save(path, created_by="test", seed=0)
    return path


# ------------------------------------------------------------------ the loss
def test_one_step_linear_model_matches_hand_computation():
    """Logits = W x; one step on the whole set gives the hand-computed ratio."""
    rng = np.random.default_rng(0)
    w0, w_star = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    x, y, lr = rng.normal(size=(5, 4)), np.array([0, 1, 2, 1, 0]), 0.3
    z = x @ w0.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    w1 = w0 - lr * (p - np.eye(3)[y]).T @ x / len(x)
    expected = ((w1 - w_star) ** 2).sum() / ((w0 - w_star) ** 2).sum()

    def forward(flat, xb):
        return xb @ flat.view(3, 4).T

    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    got = tm.tm_loss(
        forward,
        t(w0).reshape(-1),
        t(w_star).reshape(-1),
        t(x),
        torch.tensor(y),
        syn_lr=lr,
        syn_steps=1,
        batch=None,
        generator=torch.Generator().manual_seed(0),
    )
    assert got == pytest.approx(expected, rel=1e-10)


def test_minibatches_are_seeded_permutation_slices():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)

    def draw(s):
        gen = torch.Generator().manual_seed(s)
        return [b[1].tolist() for b in tm.minibatches(x, y, 5, 4, gen)]

    a = draw(3)
    assert a == draw(3) and a != draw(4)
    # the first two batches of 4 and half the third are one permutation of the 10 images
    flat = a[0] + a[1] + a[2][:2]
    assert sorted(flat) == list(range(10))
    assert all(len(b) == 4 for b in a)


def test_zero_lr_gives_loss_exactly_one_and_is_deterministic(experts, tmp_path):
    data = _data()
    cset = _saved_set(tmp_path, data)
    out = tmp_path / target_path("tm_loss", dataset="tiny", method="m", ipc=2, seed=0)
    r0 = tm.compute_tm_loss(data, cset, experts, out, spec={**SPEC, "syn_lr": 0.0}, seed=0)
    assert {row["loss"] for row in r0["losses"]} == {1.0}
    r1 = tm.compute_tm_loss(data, cset, experts, out, spec=SPEC, seed=0)
    r2 = tm.compute_tm_loss(data, cset, experts, out, spec=SPEC, seed=0)
    assert r1["losses"] == r2["losses"]
    assert all(np.isfinite(row["loss"]) and row["loss"] != 1.0 for row in r1["losses"])
    # every architecture and start epoch, the experts' lr when syn_lr is null
    assert [(r["experts"], r["start_epoch"]) for r in r1["losses"]] == [
        ("conv", 0),
        ("conv", 1),
        ("other", 0),
        ("other", 1),
    ]
    assert r1["architectures"]["conv"]["syn_lr"] == CONVNET["lr"]
    assert r1["labels_used"] == "hard"


def test_json_target_records_identity_and_refuses_a_mismatched_path(experts, tmp_path):
    data = _data()
    cset = _saved_set(tmp_path, data, soft=True)
    out = tmp_path / target_path("tm_loss", dataset="tiny", method="m", ipc=2, seed=0)
    tm.compute_tm_loss(data, cset, experts, out, spec=SPEC, seed=0)
    rec = json.loads(out.read_text())
    assert (rec["dataset"], rec["method"], rec["ipc"], rec["seed"]) == ("tiny", "m", 2, 0)
    assert rec["labels_used"] == "soft" and "content_sha256" in rec
    hard = tm.compute_tm_loss(data, cset, experts, out, spec={**SPEC, "labels": "hard"}, seed=0)
    assert hard["labels_used"] == "hard"
    # the collected form reads back, one row per architecture and start epoch
    frame = tm.read_tm_loss([out])
    assert len(frame) == 4 and set(frame["experts"]) == {"conv", "other"}
    wrong = tmp_path / target_path("tm_loss", dataset="tiny", method="other", ipc=2, seed=0)
    with pytest.raises(DataFileError, match="not what its path says"):
        tm.compute_tm_loss(data, cset, experts, wrong, spec=SPEC, seed=0)
    assert not wrong.exists()
    copied = tmp_path / target_path("tm_loss", dataset="tiny", method="m", ipc=2, seed=1)
    copied.parent.mkdir(parents=True, exist_ok=True)
    copied.write_text(out.read_text())
    with pytest.raises(DataFileError, match="seed"):
        tm.read_tm_loss([copied])


def test_start_epoch_beyond_the_experts_is_refused(experts, tmp_path):
    data = _data()
    cset = _saved_set(tmp_path, data)
    out = tmp_path / target_path("tm_loss", dataset="tiny", method="m", ipc=2, seed=0)
    with pytest.raises(ConfigError, match="start epoch 2"):
        tm.compute_tm_loss(data, cset, experts, out, spec={**SPEC, "start_epochs": [2]}, seed=0)


# ------------------------------------------------------------------ table and figure
def _hand_table():
    rows = []
    for arch, model in (("conv", "convnet-d3-w16-in"), ("res", "timm:resnet18")):
        for i, method in enumerate(["random", "dc", "mtt", "datm"]):
            for seed in (0, 1):
                for t in (0, 2):
                    rows.append(
                        {
                            "dataset": "d",
                            "method": method,
                            "ipc": 1,
                            "seed": seed,
                            "labels_used": "hard",
                            "experts": arch,
                            "model": model,
                            "start_epoch": t,
                            "loss": 1.0 - 0.2 * i + 0.01 * seed + 0.05 * t,
                        }
                    )
    accuracy = pd.DataFrame(
        {
            "dataset": "d",
            "method": ["random", "dc", "mtt", "datm"],
            "ipc": 1,
            "accuracy_mean": [50.0, 55.0, 61.0, 60.0],
            "accuracy_std": [1.0, 0.5, 0.7, 0.2],
        }
    )
    return pd.DataFrame(rows), accuracy


def test_summary_has_per_start_and_mean_rows():
    frame, accuracy = _hand_table()
    summary = tm.tm_loss_summary(frame, accuracy)
    row = summary[
        (summary["method"] == "dc")
        & (summary["experts"] == "conv")
        & (summary["start_epoch"] == "t=2")
    ].iloc[0]
    assert row["loss_mean"] == pytest.approx(0.8 + 0.005 + 0.1)
    assert row["seeds"] == 2 and row["accuracy_mean"] == 55.0
    mean = summary[(summary["method"] == "dc") & (summary["start_epoch"] == "mean")]
    assert len(mean) == 2 and mean["loss_mean"].iloc[0] == pytest.approx(0.8 + 0.005 + 0.05)
    assert list(summary["start_epoch"].unique()) == ["t=0", "t=2", "mean"]


def test_figure_puts_both_correlations_in_each_panel_title(tmp_path):
    frame, accuracy = _hand_table()
    points = tm.figure_points(tm.tm_loss_summary(frame, accuracy))
    svg, png = tmp_path / "f.svg", tmp_path / "f.png"
    titles = tm.plot_tm_loss_vs_accuracy(points, "d", "hl", "convnet", svg, png)
    assert set(titles) == {"conv", "res"}
    conv = points[points.experts == "conv"]
    rho, r = tm.correlations(conv.loss_mean, conv.accuracy_mean)
    assert rho == pytest.approx(-0.8) and r < -0.8
    for name, model in (("conv", "convnet-d3-w16-in"), ("res", "timm:resnet18")):
        assert model in titles[name]
        assert (
            f"Spearman ρ = {rho:+.2f}" in titles[name] and f"Pearson r = {r:+.2f}" in titles[name]
        )
    assert svg.stat().st_size > 0 and png.stat().st_size > 0
    assert "Spearman" in svg.read_text()
    # fewer than three points: no correlation, said so
    titles = tm.plot_tm_loss_vs_accuracy(points.head(2), "d", "hl", "convnet", svg, png)
    assert "n/a" in next(iter(titles.values()))


def test_table_files(tmp_path):
    frame, accuracy = _hand_table()
    summary = tm.tm_loss_summary(frame, accuracy)
    from ddbench.analysis.tables import write_table_stem

    write_table_stem(tmp_path / "tm_loss", summary, tm.tm_loss_blocks(summary, "hl", "s"), "TM")
    md = (tmp_path / "tm_loss.md").read_text()
    assert "IPC 1 mean" in md and "accuracy (%) under `hl` / `s`" in md
    csv = pd.read_csv(tmp_path / "tm_loss.csv")
    assert {
        "method",
        "ipc",
        "experts",
        "start_epoch",
        "loss_mean",
        "loss_std",
        "accuracy_mean",
    } <= set(csv)


# ------------------------------------------------------------------ config and plan
def _smoke_with_tm_loss(**extra):
    config = load_config(ROOT / "config/smoke.yaml")
    config = copy.deepcopy(config)
    config["experts"]["small"] = {**config["experts"]["convnet"], "model": "convnet-d1-w4-none"}
    config["tm_loss"] = {
        "experts": ["convnet", "small"],
        "start_epochs": [0],
        "expert_epochs": 1,
        **extra,
    }
    return config


def test_config_checks():
    config = validate_config(_smoke_with_tm_loss(), check_sources=False)
    assert config["tm_loss"]["syn_steps"] == 20  # schema defaults filled in
    bad = _smoke_with_tm_loss()
    bad["tm_loss"]["experts"] = ["convnet", "missing"]
    with pytest.raises(ConfigError, match=r"tm_loss.experts\[1\]"):
        validate_config(bad, check_sources=False)
    same = _smoke_with_tm_loss()
    same["experts"]["small"]["model"] = same["experts"]["convnet"]["model"]
    with pytest.raises(ConfigError, match="compares architectures"):
        validate_config(same, check_sources=False)
    late = _smoke_with_tm_loss(start_epochs=[100])
    with pytest.raises(ConfigError, match="tm_loss.start_epochs"):
        validate_config(late, check_sources=False)
    unknown = _smoke_with_tm_loss(protocol="nope")
    with pytest.raises(ConfigError, match="tm_loss.protocol"):
        validate_config(unknown, check_sources=False)


def test_plan_has_one_target_per_condensed_set_only_when_configured():
    plain = Plan(validate_config(load_config(ROOT / "config/smoke.yaml"), check_sources=False))
    assert plain.tm_loss_targets() == [] and plain.collected("tm_loss") == []
    assert not [t for t in plain.all_targets() if "tm_loss" in t]
    plan = Plan(validate_config(_smoke_with_tm_loss(), check_sources=False))
    cells = plan.condensed_cells()
    want = {target_path("tm_loss", dataset=d, method=m, ipc=i, seed=s) for d, m, i, s in cells}
    assert set(plan.tm_loss_targets()) == want and len(want) == len(cells)
    tops = [t for t in plan.all_targets() if "tm_loss" in t]
    assert "results/tables/tm_loss.md" in tops
    assert "results/figures/digits-tm_loss_vs_accuracy.png" in tops
    d, m, i, s = cells[0]
    wc = type("W", (), {"dataset": d, "method": m, "ipc": str(i), "seed": str(s)})()
    inputs = plan.tm_loss_inputs(wc)
    assert inputs["experts"] == [
        target_path("experts", dataset=d, name="convnet"),
        target_path("experts", dataset=d, name="small"),
    ]
    assert plan.tm_loss_accuracy() == (
        next(iter(plan.config["protocols"])),
        next(iter(plan.config["students"])),
    )


def test_dry_run_schedules_a_tm_loss_job_per_condensed_set():
    sys.path.insert(0, str(ROOT / "tests"))
    from dag_jobs import job_list_of

    config = _smoke_with_tm_loss()
    plan = Plan(validate_config(copy.deepcopy(config), check_sources=False))
    jobs = job_list_of(config)
    got = sorted(line.split("\t")[1] for line in jobs if line.startswith("tm_loss\t"))
    assert got == sorted(plan.tm_loss_targets())
    rules = {line.split("\t")[0] for line in jobs}
    assert {"collect_tm_loss", "tm_loss_table", "figure_tm_loss_vs_accuracy"} <= rules
    assert sum(line.startswith("train_experts\t") for line in jobs) == 2
    # without the key: the recorded smoke DAG has none of these rules
    from dag_jobs import golden

    assert not [line for line in golden("smoke") if "tm_loss" in line]


def test_spearman_interval_known_values():
    import math

    lo, hi = tm.spearman_interval(0.5, 13)
    half = 1.959964 * math.sqrt(1.06 / 10)
    assert lo == pytest.approx(math.tanh(math.atanh(0.5) - half), abs=1e-6)
    assert hi == pytest.approx(math.tanh(math.atanh(0.5) + half), abs=1e-6)
    assert lo == pytest.approx(-0.0887, abs=1e-3) and hi == pytest.approx(0.8302, abs=1e-3)
    # too few points for an interval; a perfect rank correlation has no spread to widen
    assert all(math.isnan(v) for v in tm.spearman_interval(0.9, 3))
    assert tm.spearman_interval(-1.0, 8) == (-1.0, -1.0)


def test_correlations_within_each_ipc_and_pooled(tmp_path):
    """Within each IPC, lower loss goes with *lower* accuracy; across IPCs the larger sets
    have both lower loss and higher accuracy, so the pooled sign flips. The table must show
    both, and say which is which."""
    rows = []
    for ipc, base_loss, base_acc in ((1, 2.0, 30.0), (10, 1.0, 70.0)):
        for i in range(5):
            rows.append(
                {
                    "dataset": "d",
                    "experts": "conv",
                    "model": "convnet-d3-w16-in",
                    "method": f"m{i}",
                    "ipc": ipc,
                    "start_epoch": "mean",
                    "loss_mean": base_loss + 0.1 * i,
                    "accuracy_mean": base_acc + 2.0 * i,
                }
            )
    points = pd.DataFrame(rows)
    corr = tm.correlation_summary(points).set_index("scope")
    assert list(corr.index) == ["IPC 1", "IPC 10", "all IPCs"]
    assert corr.loc["IPC 1", "spearman"] == pytest.approx(1.0)
    assert corr.loc["IPC 10", "n"] == 5
    assert corr.loc["all IPCs", "spearman"] < 0 and corr.loc["all IPCs", "n"] == 10
    lo, hi = corr.loc["all IPCs", ["spearman_lo", "spearman_hi"]]
    assert lo < corr.loc["all IPCs", "spearman"] < hi
    # the figure's title gives the pooled ρ and the within-IPC ones
    points = points.assign(loss_std=0.0, accuracy_std=0.0)
    svg, png = tmp_path / "f.svg", tmp_path / "f.png"
    title = tm.plot_tm_loss_vs_accuracy(points, "d", "hl", "convnet", svg, png)["conv"]
    pooled = corr.loc["all IPCs", "spearman"]
    assert f"Spearman ρ = {pooled:+.2f}" in title
    assert "within IPC: 1: ρ = +1.00, 10: ρ = +1.00" in title


def test_table_has_the_correlation_block(tmp_path):
    frame, accuracy = _hand_table()
    summary = tm.tm_loss_summary(frame, accuracy)
    from ddbench.analysis.tables import write_table_stem

    write_table_stem(tmp_path / "tm_loss", summary, tm.tm_loss_blocks(summary, "hl", "s"), "TM")
    md = (tmp_path / "tm_loss.md").read_text()
    block = md.split("correlation of TM loss with accuracy")[1]
    assert "conv (convnet-d3-w16-in)" in block and "res (timm:resnet18)" in block
    # one IPC in the hand table: no pooled column; ρ = -0.80 as in the figure test
    assert "IPC 1 (n = 4)" in block and "all IPCs" not in block and "-0.80" in block
