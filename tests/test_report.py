"""Tables, figures and the Snakemake report: round trips from the JSONs, and the report in a browser."""

from __future__ import annotations

import json
import struct
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_snakemake

from ddbench.analysis.tables import (
    collect_results,
    cost_table,
    label_robust_score,
    read_benchmarks,
    read_metrics,
    write_accuracy_table,
    write_study_tables,
)

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CATEGORIES = ("Accuracy", "Cost", "Quality", "Galleries", "Studies")


# ------------------------------------------------------------------ synthetic evaluations
def _protocol(name: str, labels: str) -> dict:
    return {
        "name": name, "preset": name, "labels": labels, "optimizer": "sgd", "lr": 0.01,
        "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 256, "schedule": "cosine",
        "temperature": 4.0, "teachers": [] if labels == "hard" else ["t"], "augment": "dsa",
        "cutmix": 0.0, "rrc_scale": [0.08, 1.0], "epochs": 10, "full_epochs": None,
    }  # fmt: skip


def _write_evals(folder: Path) -> list[Path]:
    """Two protocols x three methods x two IPCs x three seeds, plus the whole-set reference."""
    rng = np.random.default_rng(0)
    paths = []
    for proto, labels in (("hl", "hard"), ("sl", "soft")):
        for method in ("random", "herding", "full_train"):
            for ipc in (None,) if method == "full_train" else (1, 10):
                for seed in (0, 1, 2):
                    m = {
                        "dataset": "toy", "method": method, "ipc": ipc, "protocol": proto,
                        "preset": proto, "student": "cnn", "student_model": "convnet-d2-w16-in",
                        "seed": seed, "accuracy": float(rng.uniform(10, 95)), "budget": "10 epochs",
                        "wall_time_s": 1.0, "soft_label_bytes": 40 * (ipc or 0) if labels == "soft" else 0,
                        "teacher_forward_images": 10 * (ipc or 0) if labels == "soft" else 0,
                        "protocol_params": _protocol(proto, labels),
                        "versions": {"ddbench": "0.1.0"}, "device": "cpu",
                    }  # fmt: skip
                    p = folder / f"{proto}_{method}_{ipc}_{seed}.json"
                    p.write_text(json.dumps(m))
                    paths.append(p)
    return paths


def test_accuracy_table_round_trips_to_the_eval_jsons(tmp_path):
    paths = _write_evals(tmp_path)
    out = tmp_path / "tables"
    write_accuracy_table(
        paths,
        out / "accuracy.csv",
        out / "accuracy.md",
        out / "accuracy.tex",
        out / "accuracy.html",
    )
    table = pd.read_csv(out / "accuracy.csv")
    raw = read_metrics(paths)
    assert len(table) == 2 * (2 * 2 + 1)  # (2 methods x 2 IPCs + reference) per protocol
    for row in table.itertuples():
        same = raw[(raw["protocol"] == row.protocol) & (raw["method"] == row.method)]
        same = same[same["ipc"].isna()] if pd.isna(row.ipc) else same[same["ipc"] == row.ipc]
        assert len(same) == 3 == row.seeds
        assert row.accuracy_mean == pytest.approx(same["accuracy"].mean(), abs=1e-4)
        assert row.accuracy_std == pytest.approx(same["accuracy"].std(ddof=1), abs=1e-4)
    md = (out / "accuracy.md").read_text()
    tex = (out / "accuracy.tex").read_text()
    html = (out / "accuracy.html").read_text()
    assert "whole training set" in md and "**" in md and "±" in md
    for token in (r"\toprule", r"\midrule", r"\bottomrule", r"\textbf{", r"$\pm$", r"\multicolumn"):
        assert token in tex
    assert "<b>" in html and "<table>" in html


def test_best_value_of_each_column_is_bold(tmp_path):
    paths = _write_evals(tmp_path)
    agg = write_accuracy_table(paths, tmp_path / "a.csv", tmp_path / "a.md", tmp_path / "a.tex")
    md = (tmp_path / "a.md").read_text()
    tex = (tmp_path / "a.tex").read_text()
    cond = agg[agg["method"] != "full_train"]
    for (_, _ipc), cell in cond.groupby(["protocol", "ipc"]):
        best = cell.loc[cell["accuracy_mean"].idxmax()]
        text = f"{best.accuracy_mean:.2f} ± {best.accuracy_std:.2f}"
        assert f"**{text}**" in md
        assert rf"\textbf{{{best.accuracy_mean:.2f} $\pm$ {best.accuracy_std:.2f}}}" in tex
        worst = cell.loc[cell["accuracy_mean"].idxmin()]
        assert f"**{worst.accuracy_mean:.2f} ±" not in md


def test_gain_and_lrs_round_trip_to_the_eval_jsons(tmp_path):
    paths = _write_evals(tmp_path)
    out = tmp_path / "tables"
    write_study_tables(
        paths, stems={"gain": out / "gain", "dd_ranking": out / "dd_ranking"}, baseline="random"
    )
    for ext in ("csv", "md", "tex", "html"):
        assert (out / f"gain.{ext}").stat().st_size > 0
        assert (out / f"dd_ranking.{ext}").stat().st_size > 0
    raw = read_metrics(paths)

    def acc(proto, method, ipc=None):
        sel = raw[(raw["protocol"] == proto) & (raw["method"] == method)]
        sel = sel[sel["ipc"].isna()] if ipc is None else sel[sel["ipc"] == ipc]
        return sel.sort_values("seed")["accuracy"].to_numpy()

    gain = pd.read_csv(out / "gain.csv")
    assert set(gain["method"]) == {"herding"}  # the baseline itself has no gain row
    for row in gain.itertuples():
        diff = acc(row.protocol, "herding", row.ipc) - acc(row.protocol, "random", row.ipc)
        assert row.gain_mean == pytest.approx(diff.mean(), abs=1e-4)
        assert row.gain_std == pytest.approx(diff.std(ddof=1), abs=1e-4)
    scores = pd.read_csv(out / "dd_ranking.csv")
    assert scores["lrs"].between(0, 1).all() and (scores["hard_protocol"] == "hl").all()
    for row in scores.itertuples():
        expected = label_robust_score(
            acc("hl", row.method, row.ipc).mean() / 100,
            acc("hl", "full_train").mean() / 100,
            acc(row.protocol, row.method, row.ipc).mean() / 100,
            acc(row.protocol, "random", row.ipc).mean() / 100,
        )[2]
        assert row.lrs == pytest.approx(expected, abs=1e-5)
    # no augmentation-free twin protocol: ARS is empty and says why
    assert scores["ars"].isna().all() and scores["ars_reason"].str.contains("twin").all()


def test_cost_table_reads_benchmark_seconds_and_rss(tmp_path):
    tsv = tmp_path / "benchmarks/toy/condensed/herding/ipc10/s0.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.5\t0:00:12\t321.5\t900\n")
    bench = read_benchmarks([tsv])
    metrics = read_metrics(_write_evals(tmp_path))
    cost = cost_table(bench, metrics)
    row = cost[(cost["method"] == "herding") & (cost["ipc"] == 10)].iloc[0]
    assert row["construct_s_mean"] == 12.5 and row["construct_max_rss_mb_mean"] == 321.5
    assert row["soft_label_bytes[sl]"] == 400 and row["soft_label_bytes[hl]"] == 0
    assert row["teacher_forward_images[sl]"] == 100


def test_collected_results_read_back_exactly_as_the_files(tmp_path):
    evals = _write_evals(tmp_path)
    tsv = tmp_path / "benchmarks/toy/condensed/herding/ipc10/s0.tsv"
    tsv.parent.mkdir(parents=True)
    tsv.write_text("s\th:m:s\tmax_rss\tmax_vms\n12.5\t0:00:12\t-\t900\n")
    assert collect_results(evals, tmp_path / "evals.jsonl") == len(evals)
    assert collect_results([tsv], tmp_path / "bench.jsonl") == 1
    direct, collected = read_metrics(evals), read_metrics([tmp_path / "evals.jsonl"])
    pd.testing.assert_frame_equal(direct, collected)
    assert set(collected["path"]) == {str(p) for p in evals}  # each row names its source file
    direct, collected = read_benchmarks([tsv]), read_benchmarks([tmp_path / "bench.jsonl"])
    pd.testing.assert_frame_equal(direct, collected)
    assert np.isnan(collected["construct_max_rss_mb"].iloc[0])  # "-" (not measured) stays NaN


# ------------------------------------------------------------------ which targets the grid asks for
def _dry_run(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    import yaml

    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    return run_snakemake(tmp_path, cfg, "-n", check=False)


def _planned_rules(proc: subprocess.CompletedProcess) -> set[str]:
    """Rule names of a dry run's "Job stats" table."""
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = out.split("Job stats:", 1)[1].splitlines()
    rules = set()
    for line in lines[3:]:
        parts = line.split()
        if not parts or parts[0] == "total":
            break
        rules.add(parts[0])
    return rules


def _tiny_config(**extra) -> dict:
    config = {
        "datasets": {"digits": {"kind": "digits"}},
        "ipcs": [2],
        "seeds": [0],
        "device": "cpu",
        "methods": {"random": {"kind": "random"}},
        "protocols": {"hl": {"preset": "hl", "epochs": 1}},
        "students": {"convnet": {"model": "convnet-d2-w16-in"}},
    }
    config.update(extra)
    return config


@pytest.mark.workflow
def test_no_teachers_means_no_quality_targets(tmp_path):
    rules = _planned_rules(_dry_run(tmp_path, _tiny_config()))
    assert {"condense", "evaluate", "accuracy_table", "study_tables", "figure_galleries"} <= rules
    assert not any("quality" in r or "tsne" in r or "prdc" in r for r in rules), rules
    assert not any("teacher_student" in r or "budget" in r for r in rules), rules


@pytest.mark.workflow
def test_studies_appear_when_the_grid_has_them(tmp_path):
    teacher = {"model": "convnet-d2-w16-in", "epochs": 1}
    sweep = {"preset": "sl", "teachers": ["a"]}
    config = _tiny_config(
        teachers={"a": teacher, "b": dict(teacher, seed=1)},
        protocols={
            "sl_short": dict(sweep, full_epochs=1),
            "sl_long": dict(sweep, full_epochs=4),
            "sl_b": {"preset": "sl", "epochs": 2, "teachers": ["b"]},
        },
        quality={"teacher": "b", "k": 3},
    )
    rules = _planned_rules(_dry_run(tmp_path, config))
    assert {"quality", "figure_tsne", "figure_budget_curves", "figure_teacher_student"} <= rules
    assert "teacher_student_table" in rules
    config["quality"] = {"teacher": "nope"}
    proc = _dry_run(tmp_path, config)
    assert proc.returncode != 0 and "quality.teacher" in proc.stdout + proc.stderr


# ------------------------------------------------------------------ the smoke run
def _report(work: Path, target: str) -> Path:
    out = work / target
    run_snakemake(work, work / "config.yaml", "--report", str(out))
    return out


def _condensed_sets(config: dict) -> list[tuple[str, int, int]]:
    return [(m, i, s) for m in config["methods"] for i in config["ipcs"] for s in config["seeds"]]


@pytest.mark.workflow
def test_smoke_quality_targets_report_nulls_with_reasons(smoke_run):
    work, config = smoke_run
    k = 5  # the schema default: smoke.yaml sets no `quality`
    for method, ipc, seed in _condensed_sets(config):
        q = json.loads(
            (work / f"results/digits/quality/{method}/ipc{ipc}/s{seed}.json").read_text()
        )
        assert q["teacher"] == next(iter(config["teachers"])) and q["k"] == k
        assert len(q["per_class"]) == 10
        assert 0 <= q["precision"] <= 1 and 0 <= q["coverage"] <= 1 and q["density"] >= 0
        if ipc <= k:
            assert q["recall"] is None and q["undefined"]["recall"]
        if ipc == 1:
            assert q["mmd2"] is None and q["undefined"]["mmd2"]
        # the smoke coresets' images are training images (dsa and mtt synthesise theirs)
        if config["methods"][method]["kind"] not in ("dsa", "mtt"):
            assert q["nn_pixel_min"] == 0.0 and q["exact_copy_fraction"] == 1.0


@pytest.mark.workflow
def test_smoke_tables_round_trip_to_the_eval_jsons(smoke_run):
    work, config = smoke_run
    table = pd.read_csv(work / "results/tables/accuracy.csv")
    for row in table.itertuples():
        if row.method == "full_train":
            path = work / f"results/digits/eval/{row.protocol}/{row.student}/full_train/s0.json"
        else:
            path = (
                work
                / f"results/digits/eval/{row.protocol}/{row.student}/{row.method}/ipc{int(row.ipc)}/s0.json"
            )
        assert row.accuracy_mean == pytest.approx(
            json.loads(path.read_text())["accuracy"], abs=1e-4
        )
    for name in ("accuracy", "gain", "dd_ranking", "cost", "quality", "teacher_student"):
        for ext in ("csv", "md", "tex", "html"):
            assert (work / f"results/tables/{name}.{ext}").stat().st_size > 100, (name, ext)
    scores = pd.read_csv(work / "results/tables/dd_ranking.csv")
    assert scores["lrs"].dropna().between(0, 1).all() and scores["lrs"].notna().all()
    quality = pd.read_csv(work / "results/tables/quality.csv")
    assert len(quality) == len(config["methods"]) * len(config["ipcs"])


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", data[16:24])


@pytest.mark.workflow
def test_smoke_figures_exist_as_svg_and_png(smoke_run):
    work, config = smoke_run
    fig = work / "results/figures"  # flat: results/figures/{dataset}-{figure}.{svg,png}
    names = ["label_gap", "accuracy_vs_cost", "prdc", "tsne_overview", "teacher_student"]
    names += [f"accuracy_vs_ipc-{p}-{s}" for p in config["protocols"] for s in config["students"]]
    for name in names:
        assert "<svg" in (fig / f"digits-{name}.svg").read_text()[:2000]
        w, h = _png_size(fig / f"digits-{name}.png")
        assert w > 200 and h > 100
    assert {p.name for p in fig.glob("*.svg")} == {f"digits-{n}.svg" for n in names}
    sets = _condensed_sets(config)
    assert sorted(p.name for p in (fig / "digits-galleries").glob("*.png")) == sorted(
        f"{m}_ipc{i}_s{s}.png" for m, i, s in sets
    )
    n_tsne = len(list((fig / "digits-tsne").glob("*.png")))
    assert n_tsne == len(config["methods"]) * len(config["ipcs"])
    assert not (fig / "digits-budget_curves.png").exists()  # smoke.yaml sweeps no budget


@pytest.mark.workflow
def test_report_html_and_zip_show_the_five_categories_in_chromium(smoke_run, tmp_path):
    work, _ = smoke_run
    html = _report(work, "results/report.html")
    archive = _report(work, "results/report.zip")
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
        assert any(n.endswith("report.html") for n in zf.namelist())
        assert any(n.endswith(".png") for n in zf.namelist())
    text = html.read_text()
    for category in CATEGORIES:
        assert category in text
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is missing (Debian package `chromium`): report not opened")
    flags = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--no-first-run",
    ]  # fmt: skip
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'profile1'}", f"--screenshot={shot}",
         "--window-size=1400,1000", html.as_uri()],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert shot.exists(), proc.stderr[-2000:]
    assert _png_size(shot) == (1400, 1000)
    assert shot.stat().st_size > 20_000  # a rendered page, not a blank one
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3].reshape(-1, 3)
    assert pixels.std() > 0.05 and len(np.unique((pixels * 255).astype(int), axis=0)) > 50
    dom = subprocess.run(
        [*flags, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", html.as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout  # fmt: skip
    for category in CATEGORIES:
        assert f">{category}<" in dom, category


def test_identical_values_across_seeds_print_a_zero_std():
    from ddbench.analysis.tables import _cell_text

    values = [0.1, 0.1, 0.1]
    std = float(np.std(values, ddof=1))  # floating-point noise, not 0 exactly in general
    assert _cell_text(0.1, 1.7e-17, 3, " ± ") == "0.100 ± 0.000"
    assert _cell_text(0.1, std, 3, " ± ") == "0.100 ± 0.000"
    assert _cell_text(0.1, 0.0004, 3, " ± ") == "0.100 ± 4.000e-04"  # a real small spread stays


# ------------------------------------------------------------------ figures: empty and partial inputs
@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> dict:
    """The frames the figure rules pass, from the synthetic evaluations (dataset `toy`)."""
    from ddbench.analysis.tables import (
        aggregate,
        protocol_params,
        read_quality,
        teacher_student_matrix,
    )

    m = read_metrics(_write_evals(tmp_path_factory.mktemp("evals")))
    agg = aggregate(m)
    bench = pd.DataFrame(
        [
            {
                "dataset": "toy",
                "method": method,
                "ipc": ipc,
                "seed": seed,
                "construct_s": 1.0 + seed,
            }
            | {"construct_max_rss_mb": float("nan")}
            for method in ("random", "herding")
            for ipc in (1, 10)
            for seed in (0, 1)
        ]
    ).astype({"ipc": "Int64"})
    folder = tmp_path_factory.mktemp("quality")
    for i, (method, ipc, seed) in enumerate(
        (me, ipc, s) for me in ("random", "herding") for ipc in (1, 10) for s in (0, 1)
    ):
        q = {"dataset": "toy", "method": method, "ipc": ipc, "seed": seed, "teacher": "t", "k": 3}
        q |= {"precision": 0.5, "recall": None if ipc == 1 else 0.3, "density": 1.0}
        q |= {"coverage": 0.2, "mmd2": 0.01}
        (folder / f"{i}.json").write_text(json.dumps(q))
    protos = protocol_params(m)
    teachers = {"hl": {**protos["hl"], "teachers": ["t1"]}, "sl": protos["sl"]}
    return {
        "metrics": m,
        "agg": agg,
        "one_seed": aggregate(m[m["seed"] == 0]),
        "cost": cost_table(bench, m),
        "quality": read_quality(sorted(folder.glob("*.json"))),
        "ts": teacher_student_matrix(agg, teachers),
    }


def _nan(frame: pd.DataFrame, **columns) -> pd.DataFrame:
    return frame.assign(**{c: np.nan for c in columns})


# name -> (draw(frames, svg, png), the empty-panel label expected, or None: data is drawn)
FIGURE_CASES = {
    # accuracy vs IPC
    "ipc: no rows": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(f["agg"].iloc[0:0], "toy", "hl", "cnn", *o),
        "no evaluations for toy/hl/cnn",
    ),
    "ipc: other dataset": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(f["agg"], "other", "hl", "cnn", *o),
        "no evaluations for other/hl/cnn",
    ),
    "ipc: protocol without evaluations": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(f["agg"], "toy", "zz", "cnn", *o),
        "no evaluations for toy/zz/cnn",
    ),
    "ipc: reference only": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(
            f["agg"][f["agg"]["method"] == "full_train"], "toy", "hl", "cnn", *o
        ),
        "no evaluations for toy/hl/cnn",
    ),
    "ipc: single seed": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(f["one_seed"], "toy", "hl", "cnn", *o),
        None,
    ),
    "ipc: NaN std and budget": (
        lambda f, *o: _figures().plot_accuracy_vs_ipc(
            _nan(f["agg"], accuracy_std=1, budget=1), "toy", "hl", "cnn", *o
        ),
        None,
    ),
    # label gap
    "gap: no rows": (
        lambda f, *o: _figures().plot_label_gap(f["metrics"].iloc[0:0], "toy", *o),
        "no evaluations for toy",
    ),
    "gap: nothing read": (
        lambda f, *o: _figures().plot_label_gap(read_metrics([]), "toy", *o),
        "no evaluations for toy",
    ),
    "gap: reference only": (
        lambda f, *o: _figures().plot_label_gap(
            f["metrics"][f["metrics"]["method"] == "full_train"], "toy", *o
        ),
        "no evaluations for toy",
    ),
    "gap: single seed": (
        lambda f, *o: _figures().plot_label_gap(f["metrics"][f["metrics"]["seed"] == 0], "toy", *o),
        None,
    ),
    # accuracy vs cost
    "cost: no rows": (
        lambda f, *o: _figures().plot_accuracy_vs_cost(
            f["agg"].iloc[0:0], f["cost"].iloc[0:0], "toy", *o
        ),
        "no cost data for toy",
    ),
    "cost: no benchmarks": (
        lambda f, *o: _figures().plot_accuracy_vs_cost(
            f["agg"], cost_table(read_benchmarks([]), f["metrics"]), "toy", *o
        ),
        "no cost data for toy",
    ),
    "cost: benchmarks of other methods": (
        lambda f, *o: _figures().plot_accuracy_vs_cost(
            f["agg"], f["cost"].assign(method="other"), "toy", *o
        ),
        "no evaluated set of toy has a construction time",
    ),
    "cost: NaN seconds": (
        lambda f, *o: _figures().plot_accuracy_vs_cost(
            f["agg"], _nan(f["cost"], construct_s_mean=1), "toy", *o
        ),
        "no evaluated set of toy has a construction time",
    ),
    "cost: protocol without evaluations": (
        lambda f, *o: _figures().plot_accuracy_vs_cost(
            f["one_seed"], f["cost"], "toy", *o, presets={"hl": "hl", "sl": "sl", "zz": "mt"}
        ),
        None,
    ),
    # PRDC
    "prdc: no rows": (
        lambda f, *o: _figures().plot_prdc(f["quality"].iloc[0:0], "toy", *o),
        "no quality results for toy",
    ),
    "prdc: other dataset": (
        lambda f, *o: _figures().plot_prdc(f["quality"], "other", *o),
        "no quality results for other",
    ),
    "prdc: no metric columns": (
        lambda f, *o: _figures().plot_prdc(
            f["quality"].drop(columns=["precision", "recall", "density", "coverage", "mmd2"]),
            "toy",
            *o,
        ),
        "no quality metrics in the results of toy",
    ),
    "prdc: single seed, undefined recall": (
        lambda f, *o: _figures().plot_prdc(f["quality"][f["quality"]["seed"] == 0], "toy", *o),
        None,
    ),
    # teacher x student
    "ts: no rows": (
        lambda f, *o: _figures().plot_teacher_student(f["ts"].iloc[0:0], "toy", *o),
        "no teacher-label evaluations for toy",
    ),
    "ts: every cell NaN": (
        lambda f, *o: _figures().plot_teacher_student(_nan(f["ts"], accuracy_mean=1), "toy", *o),
        "no teacher-label evaluations for toy",
    ),
    "ts: one IPC": (
        lambda f, *o: _figures().plot_teacher_student(f["ts"][f["ts"]["ipc"] == 1], "toy", *o),
        None,
    ),
    # budget curves
    "budget: no sweeps": (
        lambda f, *o: _figures().plot_budget_curves(f["agg"].iloc[0:0], [], {}, "toy", *o),
        "no budget sweep for toy",
    ),
    "budget: protocol without evaluations": (
        lambda f, *o: _figures().plot_budget_curves(
            f["agg"], [["hl", "zz"]], {"hl": 1, "zz": 2}, "toy", *o
        ),
        None,
    ),
    "budget: no budgets": (
        lambda f, *o: _figures().plot_budget_curves(f["agg"], [["hl", "sl"]], {}, "toy", *o),
        "no budget sweep of toy has evaluations and budgets",
    ),
    # t-SNE and galleries (arrays)
    "tsne: no sets": (
        lambda f, svg, png: _figures().plot_tsne(
            np.zeros((0, 4)), np.zeros(0, int), {}, 3, "toy", Path(svg).parent / "t", svg, png
        ),
        "no condensed sets of toy to place",
    ),
    "tsne: one point per class": (
        lambda f, svg, png: _figures().plot_tsne(
            np.random.default_rng(0).normal(size=(30, 4)),
            np.repeat(np.arange(3), 10),
            {("m", 1): (np.random.default_rng(1).normal(size=(3, 4)), np.arange(3))},
            3,
            "toy",
            Path(svg).parent / "t",
            svg,
            png,
        ),
        None,
    ),
    "gallery: no images": (
        lambda f, *o: _figures().plot_gallery(
            np.zeros((0, 1, 4, 4), np.float32), np.zeros(0, int), ["a", "b"], "toy", *o
        ),
        None,
    ),
    "gallery: a class without images": (
        lambda f, *o: _figures().plot_gallery(
            np.zeros((1, 3, 4, 4), np.float32), np.zeros(1, int), ["a", "b"], "toy", *o
        ),
        None,
    ),
}


def _figures():
    import ddbench.analysis.figures

    return ddbench.analysis.figures


def test_every_public_plot_function_has_empty_and_partial_cases():
    names = {n for n in dir(_figures()) if n.startswith("plot_") and n != "plot_tsne_panel"}
    covered = {
        n for n in names for case in FIGURE_CASES if n in FIGURE_CASES[case][0].__code__.co_names
    }
    assert covered == names


@pytest.mark.parametrize("case", list(FIGURE_CASES))
def test_figure_of_empty_or_partial_input_is_drawn_or_labelled(frames, tmp_path, monkeypatch, case):
    draw, label = FIGURE_CASES[case]
    fig = _figures()
    shown = []
    real_empty = fig._empty
    monkeypatch.setattr(fig, "_empty", lambda message: shown.append(message) or real_empty(message))
    svg, png = tmp_path / "f.svg", tmp_path / "f.png"
    draw(frames, svg, png)
    assert "<svg" in svg.read_text()[:2000] and _png_size(png)[0] > 50
    assert shown == ([label] if label else []), shown


def test_budget_curve_series_join_per_budget_variants_and_refuse_a_shared_cell():
    import pandas as pd

    fig = _figures()
    agg = pd.DataFrame(
        {
            "dataset": ["d"] * 4,
            "protocol": ["hl_b05", "hl_b2", "hl_b05", "hl_b2"],
            "student": ["s"] * 4,
            "ipc": [10] * 4,
            "method": ["cad_b05", "cad_b2", "random", "random"],
            "accuracy_mean": [60.0, 65.0, 70.0, 72.0],
        }
    )
    joined = fig.join_series(agg.copy(), {"cad": ["cad_b05", "cad_b2"]})
    assert joined["method"].tolist() == ["cad", "cad", "random", "random"]
    assert joined["accuracy_mean"].tolist() == agg["accuracy_mean"].tolist()
    assert fig.join_series(agg.copy(), {})["method"].tolist() == agg["method"].tolist()
    with pytest.raises(ValueError, match=r"figures.series.both: cell .*hl_b05"):
        fig.join_series(agg.copy(), {"both": ["cad_b05", "random"]})
