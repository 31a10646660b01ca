"""Rule scripts as jobs: they run this checkout's package, end a known failure with one `ERROR:`
line, and one broken input of a figure job costs its own panel, not the job's whole folder.

Scripts run here the way Snakemake's `script:` directive runs them: in a separate Python
process, with a pickled `snakemake.iocontainers.Snakemake` object as the global `snakemake`.
"""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from conftest import run_snakemake

import ddbench
from ddbench.analysis import figures
from ddbench.data.datasets import load_dataset, prepare_dataset
from ddbench.data.h5io import write_h5
from ddbench.methods.base import CondensedSet

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"
PACKAGE = (ROOT / "src" / "ddbench").resolve()
PREAMBLE = """
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821
"""
# what Snakemake's preamble does, less the script copy: unpickle the job object, run the script
RUNNER = """
import pickle, runpy, sys
with open(sys.argv[1], "rb") as fh:
    snakemake = pickle.load(fh)
runpy.run_path(sys.argv[2], init_globals={"snakemake": snakemake}, run_name="__main__")
"""


def files(cls, named: dict | None):
    """A Snakemake file list: named entries, a list value flattened under one name (as rules do)."""
    out = cls()
    for name, value in (named or {}).items():
        start = len(out)
        if isinstance(value, list):
            out.extend(str(v) for v in value)
            out._set_name(name, start, end=len(out))
        else:
            out.append(str(value))
            out._set_name(name, start)
    return out


def run_script(
    tmp_path: Path,
    script: str,
    rule: str,
    *,
    input: dict | None = None,
    output: dict | None = None,
    params: dict | None = None,
    wildcards: dict | None = None,
    config: dict | None = None,
    scriptdir: Path = SCRIPTS,
    env: dict | None = None,
) -> tuple[subprocess.CompletedProcess, str]:
    """Run scripts/<script> as job `rule` in its own process: (process, the job's log text)."""
    from snakemake.iocontainers import (
        InputFiles,
        Log,
        OutputFiles,
        Params,
        ResourceList,
        Snakemake,
        Wildcards,
    )

    log = tmp_path / f"{rule}.log"
    job = Snakemake(
        files(InputFiles, input),
        files(OutputFiles, output),
        Params(fromdict=params or {}),
        Wildcards(fromdict=wildcards or {}),
        1,
        ResourceList(),
        Log(toclone=[str(log)]),
        config or {},
        rule,
        None,
        str(scriptdir),
    )
    pickled = tmp_path / f"{rule}.pickle"
    pickled.write_bytes(pickle.dumps(job, protocol=4))
    runner = tmp_path / "runner.py"
    runner.write_text(RUNNER)
    proc = subprocess.run(
        [sys.executable, str(runner), str(pickled), str(SCRIPTS / script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, **(env or {})},
        timeout=300,
    )
    return proc, log.read_text() if log.exists() else ""


def error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("ERROR:")]


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path


def write_set(path: Path, data, method: str, ipc: int) -> None:
    idx = np.concatenate([np.flatnonzero(data.train_labels == c)[:ipc] for c in range(10)])
    CondensedSet(
        images=data.train_float()[idx],
        labels=data.train_labels[idx],
        method=method,
        kind="random",
        params={},
        ipc=ipc,
        dataset="digits",
    ).save(path, created_by="test", seed=0)


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def fake_package(tmp_path: Path) -> Path:
    """A folder holding another `ddbench` package (version 0.0-other), for PYTHONPATH."""
    other = tmp_path / "other-site"
    (other / "ddbench").mkdir(parents=True)
    (other / "ddbench" / "__init__.py").write_text('__version__ = "0.0-other"\n')
    return other


# ------------------------------------------------------------------ one preamble, one wrapper
def test_every_script_starts_with_the_shared_preamble_and_runs_main_through_run_job():
    scripts = sorted(SCRIPTS.glob("*.py"))
    assert len(scripts) >= 14  # one per stage
    for script in scripts:
        text = script.read_text()
        tree = ast.parse(text)
        doc = tree.body[0]
        assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant), script.name
        after_doc = "\n".join(text.splitlines()[doc.end_lineno :])
        assert after_doc.startswith(PREAMBLE), f"{script.name}: preamble differs"
        # after the preamble's five statements: `def main` and `run_job(main)`, nothing else
        rest = tree.body[6:]
        assert [type(node).__name__ for node in rest] == ["FunctionDef", "Expr"], script.name
        assert rest[0].name == "main", script.name
        assert ast.unparse(rest[1]) == "run_job(main)", script.name


# ------------------------------------------------------------------ A: the checkout's package
@pytest.mark.workflow
def test_a_job_imports_the_checkouts_package_before_another_on_pythonpath(tmp_path):
    other = fake_package(tmp_path)
    work = tmp_path / "work"
    env = {**os.environ, "PYTHONPATH": str(other)}
    proc = run_snakemake(
        work,
        ROOT / "config/smoke.yaml",
        "--cores",
        "1",
        "resources/datasets/digits.h5",
        check=False,
        env=env,
        timeout=600,
        cwd=tmp_path,
    )
    log = work / "logs/digits/prepare_dataset.log"
    text = log.read_text() if log.exists() else ""
    assert proc.returncode == 0, f"{proc.stderr[-3000:]}\n{text}"
    job_line = next(line for line in text.splitlines() if line.startswith("ddbench job:"))
    assert f"package={PACKAGE}" in job_line
    assert "ddbench=0.0-other" not in job_line and str(other) not in text
    assert load_dataset(work / "resources/datasets/digits.h5", train_images=False).num_classes == 10


def test_a_script_imports_the_checkouts_package_before_another_on_pythonpath(tmp_path):
    other = fake_package(tmp_path)
    proc, log = run_script(
        tmp_path,
        "figures.py",
        "figure_galleries",
        input={"dataset": str(tmp_path / "missing.h5"), "condensed": []},
        output={"panels": str(tmp_path / "galleries")},
        params={"cells": []},
        wildcards={"dataset": "digits"},
        env={"PYTHONPATH": str(other)},
    )
    assert log.startswith("ddbench job: "), proc.stderr[-2000:]
    assert log.splitlines()[0].endswith(f"package={PACKAGE}") and "0.0-other" not in log
    assert error_lines(log) == [f"ERROR: {tmp_path / 'missing.h5'}: file does not exist"]


def test_a_job_that_imported_another_package_stops_with_one_error_naming_both(tmp_path):
    # scripts of a workflow whose src/ holds no ddbench: the import falls through to the
    # installed one, which is not that workflow's own package
    elsewhere = tmp_path / "other-workflow" / "scripts"
    elsewhere.mkdir(parents=True)
    proc, log = run_script(
        tmp_path,
        "collect.py",
        "collect_evaluations",
        output={"out": str(tmp_path / "collected.jsonl")},
        scriptdir=elsewhere,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    (error,) = error_lines(log)
    assert str(PACKAGE) in error and str(tmp_path / "other-workflow" / "src" / "ddbench") in error
    assert "Traceback" not in log
    assert not (tmp_path / "collected.jsonl").exists()


def test_the_job_line_names_version_and_package_folder(tmp_path, digits):
    proc, log = run_script(
        tmp_path,
        "figures.py",
        "figure_galleries",
        input={"dataset": str(digits), "condensed": []},
        output={"panels": str(tmp_path / "galleries")},
        params={"cells": []},
        wildcards={"dataset": "digits"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + log
    first = log.splitlines()[0]
    assert first.startswith("ddbench job: ") and "slurm_job_id=" in first
    assert f"ddbench={ddbench.__version__}" in first and first.endswith(f"package={PACKAGE}")


# ------------------------------------------------------------------ B: one ERROR line
@pytest.mark.parametrize(
    ("script", "rule", "job", "phrase"),
    [
        (
            "figures.py",
            "figure_galleries",
            {
                "input": {"dataset": "missing/digits.h5", "condensed": []},
                "output": {"panels": "galleries"},
                "params": {"cells": []},
                "wildcards": {"dataset": "digits"},
            },
            "missing/digits.h5: file does not exist",
        ),
        (
            "condense.py",
            "condense",
            {
                "input": {"dataset": "missing/digits.h5"},
                "output": {"out": "s0.h5"},
                "params": {"spec": '{"kind": "random"}', "device": "cpu"},
                "wildcards": {"dataset": "digits", "method": "random", "ipc": "1", "seed": "0"},
            },
            "missing/digits.h5: file does not exist",
        ),
        (
            "accuracy_table.py",
            "accuracy_table",
            {
                "input": {"metrics": []},
                "output": {"csv": "a.csv", "md": "a.md"},
                "config": {"datasets": "not a mapping"},
            },
            "config error",
        ),
    ],
)
def test_a_known_input_problem_ends_the_job_with_one_error_line(
    tmp_path, script, rule, job, phrase
):
    proc, log = run_script(tmp_path, script, rule, **job)
    assert proc.returncode == 1, proc.stderr[-2000:] + log
    errors = error_lines(log)
    assert len(errors) == 1 and phrase in errors[0], log
    assert "Traceback" not in log
    assert not any(tmp_path.glob("*.h5")) and not any(tmp_path.glob("a.*"))


# ------------------------------------------------------------------ C: one bad set, one panel
@pytest.fixture
def svg_text(monkeypatch):
    """SVG text as <text> elements (not glyph paths), so a test can read the labels."""
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")


def gallery_inputs(folder: Path, digits: Path) -> tuple[list[str], list[list]]:
    data = load_dataset(digits)
    cells = [["random", 1, 0], ["herding", 2, 0], ["kcenter", 1, 0]]
    paths = []
    for method, ipc, seed in cells:
        path = folder / f"{method}-ipc{ipc}-s{seed}.h5"
        write_set(path, data, method, ipc)
        paths.append(str(path))
    truncate(Path(paths[1]))
    return paths, cells


def test_gallery_of_a_truncated_set_is_a_marked_panel_beside_the_intact_ones(
    tmp_path, digits, svg_text, capsys
):
    paths, cells = gallery_inputs(tmp_path, digits)
    out = tmp_path / "galleries"
    summary = figures.write_galleries(digits, paths, cells, "digits", out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{m}_ipc{i}_s{s}.{ext}" for m, i, s in cells for ext in ("svg", "png")
    )
    assert list(summary["unreadable"]) == ["herding_ipc2_s0"]
    assert "truncated or corrupt" in summary["unreadable"]["herding_ipc2_s0"]
    assert "unreadable:" in (out / "herding_ipc2_s0.svg").read_text()
    for stem in ("random_ipc1_s0", "kcenter_ipc1_s0"):
        svg = (out / f"{stem}.svg").read_text()
        assert "unreadable" not in svg and "of 1 per class" in svg
    (warning,) = [line for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert warning.startswith("WARNING: gallery herding_ipc2_s0") and paths[1] in warning


def test_gallery_job_with_a_truncated_set_succeeds_and_keeps_every_panel(tmp_path, digits):
    paths, cells = gallery_inputs(tmp_path, digits)
    proc, log = run_script(
        tmp_path,
        "figures.py",
        "figure_galleries",
        input={"dataset": str(digits), "condensed": paths},
        output={"panels": str(tmp_path / "galleries")},
        params={"cells": cells},
        wildcards={"dataset": "digits"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:] + log
    assert not error_lines(log) and "Traceback" not in log
    assert len([line for line in log.splitlines() if line.startswith("WARNING:")]) == 1
    assert len(list((tmp_path / "galleries").glob("*.png"))) == 3


def test_gallery_of_a_set_that_fails_validation_is_marked(tmp_path, digits, svg_text):
    data = load_dataset(digits)
    path = tmp_path / "nan.h5"
    write_set(path, data, "random", 1)
    cset = CondensedSet.load(path)
    cset.images[0, 0, 0, 0] = np.nan
    cset.save(path, created_by="test", seed=0)
    out = tmp_path / "galleries"
    summary = figures.write_galleries(digits, [path], [["random", 1, 0]], "digits", out)
    assert "NaN" in summary["unreadable"]["random_ipc1_s0"]
    assert "unreadable:" in (out / "random_ipc1_s0.svg").read_text()


def write_features(path: Path, feats: np.ndarray, labels: np.ndarray, **attrs) -> None:
    write_h5(
        path, "features", {"features": feats, "labels": labels}, created_by="test", attrs=attrs
    )


def test_tsne_of_a_truncated_set_is_a_marked_panel_beside_the_intact_ones(
    tmp_path, svg_text, capsys
):
    rng = np.random.default_rng(0)
    real_labels = np.repeat(np.arange(3), 20)
    write_features(tmp_path / "real.h5", rng.normal(size=(60, 8)), real_labels)
    sets = [("random", 1), ("herding", 1), ("random", 2)]
    paths = []
    for method, ipc in sets:
        path = tmp_path / f"{method}-{ipc}.h5"
        labels = np.repeat(np.arange(3), ipc)
        write_features(path, rng.normal(size=(len(labels), 8)), labels, method=method, ipc=ipc)
        paths.append(path)
    truncate(paths[1])
    out = tmp_path / "tsne"
    summary = figures.write_tsne(
        tmp_path / "real.h5", paths, sets, "toy", out, tmp_path / "o.svg", tmp_path / "o.png"
    )
    assert summary == {"sets": 2, "unreadable": 1}
    assert sorted(p.name for p in out.glob("*.png")) == [
        "herding_ipc1.png",
        "random_ipc1.png",
        "random_ipc2.png",
    ]
    assert "unreadable:" in (out / "herding_ipc1.svg").read_text()
    assert "unreadable" not in (out / "random_ipc1.svg").read_text()
    overview = (tmp_path / "o.svg").read_text()
    assert "unreadable:" in overview and "random · IPC 2" in overview
    err = capsys.readouterr().err
    assert err.count("WARNING:") == 1 and "herding IPC 1" in err


def test_tsne_set_of_another_feature_width_is_marked_not_a_crash(tmp_path, svg_text, capsys):
    rng = np.random.default_rng(0)
    write_features(tmp_path / "real.h5", rng.normal(size=(30, 8)), np.repeat(np.arange(3), 10))
    write_features(tmp_path / "s.h5", rng.normal(size=(3, 5)), np.arange(3), method="random", ipc=1)
    summary = figures.write_tsne(
        tmp_path / "real.h5", [tmp_path / "s.h5"], [("random", 1)], "toy", tmp_path / "t"
    )
    assert summary == {"sets": 0, "unreadable": 1}
    assert "unreadable:" in (tmp_path / "t/random_ipc1.svg").read_text()
    assert "5 features per image, the real ones 8" in capsys.readouterr().err
