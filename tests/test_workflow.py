"""Workflow tests: the smoke grid end to end in a temp folder, then what reruns when things change."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

# IPC-independent work that must never rerun for a new IPC or a changed method
EXPENSIVE = {
    "prepare_dataset",
    "train_teacher",
    "extract_features",
    "compute_scores",
    "evaluate_full_train",
    "train_experts",
}
# per-cell work of one condensed set
CHEAP = {"condense", "evaluate", "quality"}


def is_aggregate(rule: str) -> bool:
    """Collectors, tables, figures and `all` read every cell, so any change reruns them (cheap)."""
    return (
        rule == "all"
        or rule.startswith("collect_")
        or rule.endswith("_table")
        or rule.endswith("_tables")
        or rule.startswith("figure_")
    )


def planned_jobs(proc: subprocess.CompletedProcess) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a dry run's output."""
    out = proc.stdout + proc.stderr
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        if not m:
            continue
        wc = re.search(r"wildcards: (.*)", block)
        wildcards = dict(kv.split("=", 1) for kv in wc.group(1).split(", ")) if wc else {}
        jobs.append((m.group(1), wildcards))
    return jobs


def test_smoke_outputs_at_design_paths(smoke_run):
    work, config = smoke_run
    assert (work / "resources/datasets/digits.h5").exists()
    for t in config["teachers"]:
        summary = json.loads((work / f"results/digits/teachers/{t}.json").read_text())
        assert summary["test_accuracy"] > 50  # a real teacher, far above chance (10 %)
        assert (work / f"results/digits/teachers/{t}.pt").exists()
    assert (work / "results/digits/features/convnet.h5").exists()
    assert (work / "results/digits/scores/dynamics.h5").exists()
    n_eval = 0
    for method in config["methods"]:
        for ipc in config["ipcs"]:
            cs = work / f"results/digits/condensed/{method}/ipc{ipc}/s0.h5"
            with h5py.File(cs) as f:
                assert f.attrs["format"] == "ddbench.condensed/1"
                assert f.attrs["method"] == method
                assert len(f["labels"]) == ipc * 10
            for proto in config["protocols"]:
                m = json.loads(
                    (
                        work / f"results/digits/eval/{proto}/convnet/{method}/ipc{ipc}/s0.json"
                    ).read_text()
                )
                assert 0 <= m["accuracy"] <= 100 and m["seed"] == 0 and m["protocol"] == proto
                for key in (
                    "final_train_loss",
                    "wall_time_s",
                    "images_per_s",
                    "peak_rss_mb",
                    "config_sha256",
                    "versions",
                ):
                    assert key in m
                n_eval += 1
    table = (work / "results/tables/accuracy.csv").read_text().splitlines()
    assert len(table) == 1 + n_eval + len(
        config["protocols"]
    )  # every cell plus one reference row per protocol
    assert "whole training set" in (work / "results/tables/accuracy.md").read_text()


def test_hard_label_coresets_beat_chance(smoke_run):
    work, _ = smoke_run
    m = json.loads((work / "results/digits/eval/hl/convnet/random/ipc5/s0.json").read_text())
    assert m["accuracy"] > 40


def test_second_run_has_nothing_to_do(smoke_run):
    work, _ = smoke_run
    proc = run_snakemake(work, work / "config.yaml", "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_adding_an_ipc_schedules_only_selection_and_evaluation(smoke_run, tmp_path):
    work, config = smoke_run
    cfg = dict(config, ipcs=[*config["ipcs"], 2])
    path = tmp_path / "more_ipc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(run_snakemake(work, path, "-n"))
    rules = {r for r, _ in jobs}
    assert not rules & EXPENSIVE, rules & EXPENSIVE
    assert {"condense", "evaluate"} <= rules, rules
    assert all(r in CHEAP or is_aggregate(r) for r in rules), rules
    assert {w["ipc"] for r, w in jobs if r in CHEAP} == {"2"}
    n_methods, n_protocols = len(config["methods"]), len(config["protocols"])
    assert sum(r == "condense" for r, _ in jobs) == n_methods
    assert sum(r == "evaluate" for r, _ in jobs) == n_methods * n_protocols


def test_changing_one_method_reruns_only_its_descendants(smoke_run, tmp_path):
    work, config = smoke_run
    cfg = json.loads(json.dumps(config))
    cfg["methods"]["el2n_easy"]["epoch"] = 0
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg))
    jobs = planned_jobs(run_snakemake(work, path, "-n"))
    rules = {r for r, _ in jobs}
    assert not rules & EXPENSIVE, rules & EXPENSIVE
    assert {"condense", "evaluate"} <= rules, rules
    assert all(r in CHEAP or is_aggregate(r) for r in rules), rules
    assert {w["method"] for r, w in jobs if r in CHEAP} == {"el2n_easy"}
    assert sum(r == "evaluate" for r, _ in jobs) == len(config["ipcs"]) * len(config["protocols"])


def test_bad_config_fails_before_any_job_and_names_the_key(smoke_run, tmp_path):
    work, config = smoke_run
    cfg = json.loads(json.dumps(config))
    cfg["methods"]["herding"]["kind"] = "herdingg"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    before = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()}
    proc = run_snakemake(work, path, "--cores", "1", check=False)
    assert proc.returncode != 0
    err = proc.stdout + proc.stderr
    assert "methods.herding.kind" in err and "herdingg" in err and "Traceback" not in err
    after = {p: p.stat().st_mtime_ns for p in (work / "results").rglob("*") if p.is_file()}
    assert before == after  # nothing already computed was touched


def test_grouped_seeds_write_the_same_files_as_per_seed_jobs(smoke_run, tmp_path):
    """`group_seeds: true` evaluates every seed of a cell in one job, with identical results."""
    work, config = smoke_run
    copy = tmp_path / "work"
    shutil.copytree(work, copy, symlinks=True)
    cfg = json.loads(json.dumps(config))
    cfg.update(group_seeds=True, seeds=[0, 1], ipcs=[1])
    cfg["methods"] = {"random": cfg["methods"]["random"]}
    cfg["protocols"] = {"hl": cfg["protocols"]["hl"]}
    path = tmp_path / "grouped.yaml"
    path.write_text(yaml.safe_dump(cfg))
    cell = "results/digits/eval/hl/convnet/random/ipc1"
    targets = [f"{cell}/s0.json", f"{cell}/s1.json"]
    jobs = planned_jobs(run_snakemake(copy, path, "-n", *targets))
    assert [r for r, _ in jobs if r.startswith("evaluate")] == ["evaluate"]  # one job, both seeds
    run_snakemake(copy, path, "--cores", "1", *targets)
    per_seed = json.loads((work / f"{cell}/s0.json").read_text())
    grouped = [json.loads((copy / t).read_text()) for t in targets]
    assert [m["seed"] for m in grouped] == [0, 1]
    for key in ("accuracy", "final_train_loss", "steps"):
        assert grouped[0][key] == per_seed[key], key
    assert grouped[1]["condensed_sha256"] != grouped[0]["condensed_sha256"]
    log = (copy / "logs/digits/eval/hl/convnet/random/ipc1/seeds.log").read_text()
    assert "seed 0:" in log and "seed 1:" in log
