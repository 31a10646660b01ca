"""A file is what its path says, and its bytes are those written: misfiled, duplicated,
edited or truncated results are refused by every consumer and reported by `verify`."""

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import run_snakemake

from ddbench.analysis.tables import collect_results, load_result, read_metrics
from ddbench.analysis.verify import files_to_delete, verify_results
from ddbench.config import validate_config
from ddbench.data.datasets import load_dataset, prepare_dataset
from ddbench.data.h5io import DataFileError, h5_content_sha256, write_json
from ddbench.methods.base import CondensedSet
from ddbench.workflow.paths import identity_mismatch, parse_target, target_path

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ paths
@pytest.mark.parametrize(
    "kind,fields",
    [
        ("dataset", {"dataset": "digits"}),
        ("teacher", {"dataset": "d", "name": "convnet"}),
        ("clusters", {"dataset": "d", "name": "dift-k32"}),
        ("condensed", {"dataset": "d", "method": "el2n_easy", "ipc": 10, "seed": 3}),
        (
            "eval",
            {"dataset": "d", "protocol": "hl", "student": "s", "method": "m", "ipc": 1, "seed": 0},
        ),
        ("reference", {"dataset": "d", "protocol": "hl", "student": "s", "seed": 2}),
        ("quality", {"dataset": "d", "method": "m", "ipc": 50, "seed": 1}),
    ],
)
def test_every_target_path_parses_back_to_its_fields(kind, fields):
    path = target_path(kind, **fields)
    for prefix in ("", "/tmp/work/", "runs/study/"):
        target = parse_target(prefix + path)
        assert target is not None and target.kind == kind and target.path == path
        for key, value in fields.items():
            assert getattr(target, key) == value


def test_reference_row_is_not_an_evaluation_of_a_method_and_other_paths_are_none():
    ref = parse_target("results/d/eval/hl/s/full_train/s0.json")
    assert ref.kind == "reference" and ref.method == "full_train" and ref.ipc is None
    assert parse_target("results/d/eval/collected.jsonl") is None
    assert parse_target("results/d/condensed/m/ipc1.5/s0.h5") is None
    assert parse_target("notresults/d/condensed/m/ipc1/s0.h5") is None


def test_identity_mismatch_names_path_and_recorded_values():
    path = "results/digits/condensed/random/ipc5/s0.h5"
    same = {"dataset": "digits", "method": "random", "ipc": 5, "seed": 0}
    assert identity_mismatch(path, same) == []
    wrong = identity_mismatch(path, {**same, "ipc": 1})
    assert wrong == ["ipc (path says 5, file records 1)"]
    assert identity_mismatch(path, {k: v for k, v in same.items() if k != "seed"})


# ------------------------------------------------------------------ consumers
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "resources/datasets/digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path


def _set(data, ipc: int, method: str = "random") -> CondensedSet:
    idx = np.concatenate([np.flatnonzero(data.train_labels == c)[:ipc] for c in range(10)])
    return CondensedSet(
        images=data.train_float()[idx],
        labels=data.train_labels[idx],
        method=method,
        kind="random",
        params={},
        ipc=ipc,
        dataset="digits",
    )


def test_a_set_copied_onto_another_ipc_is_refused_naming_both(digits, tmp_path):
    data = load_dataset(digits)
    src = tmp_path / "results/digits/condensed/random/ipc1/s0.h5"
    _set(data, 1).save(src, created_by="test", seed=0)
    assert CondensedSet.load(src, 10, (1, 8, 8)).ipc == 1
    dst = tmp_path / "results/digits/condensed/random/ipc5/s0.h5"
    dst.parent.mkdir(parents=True)
    shutil.copy(src, dst)
    with pytest.raises(DataFileError, match=r"ipc5/s0\.h5.*ipc \(path says 5, file records 1\)"):
        CondensedSet.load(dst)
    other_seed = tmp_path / "results/digits/condensed/random/ipc1/s1.h5"
    shutil.copy(src, other_seed)
    with pytest.raises(DataFileError, match=r"seed \(path says 1, file records 0\)"):
        CondensedSet.load(other_seed)
    other_method = tmp_path / "results/digits/condensed/herding/ipc1/s0.h5"
    other_method.parent.mkdir(parents=True)
    shutil.copy(src, other_method)
    with pytest.raises(DataFileError, match="method"):
        CondensedSet.load(other_method)


def test_a_dataset_file_copied_onto_another_name_is_refused(digits, tmp_path):
    dst = tmp_path / "resources/datasets/fashion.h5"
    dst.parent.mkdir(parents=True)
    shutil.copy(digits, dst)
    with pytest.raises(
        DataFileError, match="dataset \\(path says 'fashion', file records 'digits'"
    ):
        load_dataset(dst)


def _eval_record(**over):
    rec = {
        "dataset": "digits",
        "protocol": "hl",
        "student": "convnet",
        "method": "random",
        "ipc": 1,
        "seed": 0,
        "accuracy": 50.0,
        "student_model": "convnet-d2-w16-in",
        "budget": "10 epochs",
    }
    rec.update(over)
    return rec


def test_collectors_refuse_moved_edited_and_duplicate_evaluations(tmp_path):
    ev = tmp_path / "results/digits/eval/hl/convnet/random"
    good = ev / "ipc1/s0.json"
    write_json(good, _eval_record())
    assert load_result(good)["accuracy"] == 50.0
    # an IPC-1 evaluation moved into the IPC-5 folder
    moved = ev / "ipc5/s0.json"
    moved.parent.mkdir(parents=True)
    shutil.copy(good, moved)
    with pytest.raises(DataFileError, match=r"ipc5/s0\.json.*ipc \(path says 5, file records 1\)"):
        collect_results([good, moved], tmp_path / "collected.jsonl")
    assert not (tmp_path / "collected.jsonl").exists()
    # an accuracy edited by hand after the job wrote it
    edited = ev / "ipc1/s1.json"
    write_json(edited, _eval_record(seed=1))
    rec = json.loads(edited.read_text())
    rec["accuracy"] = 99.0
    edited.write_text(json.dumps(rec))
    with pytest.raises(DataFileError, match="content changed after it was written"):
        load_result(edited)
    # two records for one (cell, seed), e.g. two collected files that overlap
    out = tmp_path / "a.jsonl"
    assert collect_results([good], out) == 1
    with pytest.raises(DataFileError, match="two evaluation records for one cell and seed"):
        read_metrics([out, good])


# ------------------------------------------------------------------ verify, on a finished run
@pytest.fixture
def run_copy(smoke_run, tmp_path):
    work, config = smoke_run
    dst = tmp_path / "w"
    for sub in ("resources", "results", "benchmarks", ".snakemake"):
        shutil.copytree(work / sub, dst / sub, symlinks=True)
    shutil.copy(work / "config.yaml", dst / "config.yaml")
    return dst, config


@pytest.mark.workflow
def test_verify_reports_misfiled_and_truncated_files_and_what_to_delete(run_copy):
    work, config = run_copy
    cfg = validate_config(copy.deepcopy(config))
    cond = work / "results/digits/condensed/random"
    shutil.copy(cond / "ipc1/s0.h5", cond / "ipc5/s0.h5")
    teacher = work / "results/digits/teachers/convnet.pt"
    stat = teacher.stat()
    teacher.write_bytes(teacher.read_bytes()[: stat.st_size // 2])
    os.utime(teacher, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime kept: Snakemake sees nothing
    ev = next((work / "results/digits/eval/hl/convnet/herding/ipc1").glob("s0.json"))
    rec = json.loads(ev.read_text())
    rec["accuracy"] = 100.0
    ev.write_text(json.dumps(rec))
    findings = {f.path: f for f in verify_results(cfg, work)}
    moved = findings["results/digits/condensed/random/ipc5/s0.h5"]
    assert moved.status == "misfiled" and "ipc (path says 5, file records 1)" in moved.reason
    assert findings["results/digits/teachers/convnet.pt"].status == "corrupt"
    assert findings[ev.relative_to(work).as_posix()].status == "corrupt"
    bad = {p for p, f in findings.items() if f.status != "ok"}
    assert bad == {
        "results/digits/condensed/random/ipc5/s0.h5",
        "results/digits/teachers/convnet.pt",
        ev.relative_to(work).as_posix(),
    }
    assert sorted(files_to_delete(list(findings.values()))) == sorted(bad)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddbench.cli",
            "verify",
            "--config",
            str(work / "config.yaml"),
            "--directory",
            str(work),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 1
    assert "rm " in proc.stdout and "results/digits/teachers/convnet.pt" in proc.stdout


@pytest.mark.workflow
def test_every_kind_of_result_records_a_content_hash(smoke_run):
    work, _ = smoke_run
    h5 = list((work / "results").rglob("*.h5")) + list((work / "resources").rglob("*.h5"))
    # a file is a target itself or a member of a folder target (an expert of experts/{name}/)
    targets = {p: parse_target(p) or parse_target(p.parent) for p in h5}
    assert all(targets.values()), [p for p, t in targets.items() if t is None]
    kinds = {t.kind for t in targets.values()}
    assert kinds >= {"dataset", "condensed", "scores", "features", "experts"}
    for path in h5:
        recorded, actual = h5_content_sha256(path)
        assert recorded == actual, path
    for path in (work / "results/digits/teachers").glob("*.json"):
        info = json.loads(path.read_text())
        assert info["weights_sha256"] and info["content_sha256"]


@pytest.mark.workflow
def test_a_copied_set_makes_its_evaluations_fail_and_keeps_the_table(run_copy):
    work, _ = run_copy
    table = work / "results/tables/accuracy.csv"
    before = table.read_text()
    cond = work / "results/digits/condensed/random"
    shutil.copy(cond / "ipc1/s0.h5", cond / "ipc5/s0.h5")  # newer: Snakemake reruns its consumers
    proc = run_snakemake(
        work,
        work / "config.yaml",
        "--cores",
        "2",
        "--keep-going",
        "results/tables/accuracy.csv",
        check=False,
    )
    assert proc.returncode != 0
    log = (work / "logs/digits/eval/hl/convnet/random/ipc5/s0.log").read_text()
    errors = [line for line in log.splitlines() if line.startswith("ERROR:")]
    assert len(errors) == 1 and "ipc (path says 5, file records 1)" in errors[0]
    assert table.read_text() == before  # the old table is neither deleted nor rewritten


def test_teacher_checkpoints_of_identical_runs_are_byte_identical(digits, tmp_path):
    import zipfile

    from ddbench.stages.teachers import train_teacher

    spec = {"model": "convnet-d2-w8-in", "epochs": 1, "batch_size": 128, "lr": 0.05}
    runs = []
    for name in ("a", "b"):
        pt, info = tmp_path / f"{name}/t.pt", tmp_path / f"{name}/t.json"
        summary = train_teacher(digits, "t", spec, pt, info, device="cpu", threads=1)
        runs.append((pt.read_bytes(), summary))
    assert runs[0][0] == runs[1][0]
    assert runs[0][1]["weights_sha256"] == runs[1][1]["weights_sha256"]
    names = zipfile.ZipFile(tmp_path / "a/t.pt").namelist()
    assert names and all(n.startswith("archive/") for n in names)  # no temporary file name


def _write_eval(root, **fields):
    rec = _eval_record(**fields)
    kind = "reference" if rec["method"] == "full_train" else "eval"
    keys = ("dataset", "protocol", "student", "seed") + (
        ("method", "ipc") if kind == "eval" else ()
    )
    path = root / target_path(kind, **{k: rec[k] for k in keys})
    if kind == "reference":
        rec["ipc"] = None
    write_json(path, rec)
    return path


@pytest.mark.parametrize("case", ["empty", "reference_only", "no_baseline", "one_protocol"])
def test_every_table_is_written_from_empty_and_partial_inputs(tmp_path, case):
    from ddbench.analysis.tables import write_accuracy_table, write_study_tables

    paths = {
        "empty": [],
        "reference_only": [_write_eval(tmp_path, method="full_train")],
        "no_baseline": [_write_eval(tmp_path, method="herding")],
        "one_protocol": [
            _write_eval(tmp_path, method="random", seed=s, accuracy=40.0 + s) for s in (0, 1)
        ]
        + [_write_eval(tmp_path, method="herding", ipc=5)],
    }[case]
    out = tmp_path / "tables"
    write_accuracy_table(paths, out / "a.csv", out / "a.md", out / "a.tex", out / "a.html")
    names = ["gain", "dd_ranking", "cost", "quality", "teacher_student"]
    written = write_study_tables(paths, stems={n: out / n for n in names})
    assert set(written) == set(names)
    for name in ["a", *names]:
        for ext in ("csv", "md", "tex", "html"):
            assert (out / f"{name}.{ext}").is_file(), (name, ext)
    if case == "one_protocol":
        assert "40.50 ± 0.71" in (out / "a.md").read_text()
