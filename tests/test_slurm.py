"""SLURM: a reduced smoke grid through profiles/slurm on a one-node cluster on this machine.

Every job must run as a SLURM job (its log names the SLURM job id, which the controller knows
as COMPLETED) and the results must equal a local run of the same config, bit for bit.
tests/slurm/up.sh brings the cluster up (installing Debian's SLURM packages when missing);
tests/slurm/down.sh stops it and restores /etc/slurm/slurm.conf.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from datetime import datetime
from pathlib import Path

import h5py
import pytest
import yaml
from conftest import run_snakemake

ROOT = Path(__file__).resolve().parents[1]
UP, DOWN = ROOT / "tests/slurm/up.sh", ROOT / "tests/slurm/down.sh"
JOB_LINE = re.compile(r"^ddbench job: .*\bslurm_job_id=(\S+)", re.MULTILINE)
# the accuracy table needs every core stage; report figures and extra tables are left out
TARGET = "results/tables/accuracy.md"
# rules the reduced grid must schedule for TARGET (record_dynamics: no method here needs it)
CORE_RULES = {
    "prepare_dataset",
    "train_teacher",
    "extract_features",
    "condense",
    "evaluate",
    "evaluate_full_train",
    "accuracy_table",
}
# test-only settings on top of profiles/slurm (everything else comes from the profile)
SLURM_TEST_FLAGS = [
    "--workflow-profile", "none",  # keep the local profiles/default out, as the README says
    "--cores", "2",  # this node's CPUs: caps each job group
    "--slurm-init-seconds-before-status-checks", "1",  # seconds-long jobs: poll fast
    "--slurm-no-account",  # the test cluster has no accounts
]  # fmt: skip
# a mem_mb pinned in the profile (none by default: the rules size memory from the dataset,
# ddbench.workflow.resources) is cut to fit this node
TEST_NODE_MEM_MB = "4000*attempt"


def reduced_smoke_config() -> dict:
    """config/smoke.yaml cut to IPC 1, random + herding, hl, one teacher: 9 jobs."""
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    config["ipcs"] = [1]
    config["methods"] = {m: config["methods"][m] for m in ("random", "herding")}
    config["protocols"] = {"hl": config["protocols"]["hl"]}
    config["teachers"] = {"convnet": config["teachers"]["convnet"]}
    config.pop("scorers", None)
    return config


def profile_resources_for_test_node() -> list[str]:
    """profiles/slurm's set-resources as flags, memory cut to fit the test node (attempt-scaled)."""
    profile = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    flags = [
        f"{rule}:{key}={TEST_NODE_MEM_MB if key == 'mem_mb' else str(value).replace(' ', '')}"
        for rule, resources in profile["set-resources"].items()
        for key, value in resources.items()
    ]
    return ["--set-resources", *flags]


def run_reduced_grid(work: Path, *args: str, env: dict | None = None) -> float:
    """Run the reduced grid in `work`; return the wall time in seconds."""
    work.mkdir(parents=True, exist_ok=True)
    cfg = work / "config.yaml"
    cfg.write_text(yaml.safe_dump(reduced_smoke_config()))
    start = time.monotonic()
    # the target first: options such as --set-resources take every value that follows them
    proc = run_snakemake(work, cfg, *args, targets=[TARGET], check=False, env=env)
    wall = time.monotonic() - start
    (work / "snakemake.out").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}): {' '.join(proc.args)}\n{proc.stderr[-4000:]}"
        )
    return wall


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A one-node SLURM cluster on 127.0.0.1 for the session; torn down by down.sh."""
    if os.geteuid() != 0:
        pytest.skip(
            "SLURM test needs root: tests/slurm/up.sh installs Debian's slurmctld, slurmd, "
            "slurm-client and munge, writes /etc/slurm/slurm.conf and starts the daemons"
        )
    state = tmp_path_factory.mktemp("slurm-state")
    proc = subprocess.run(["bash", str(UP), str(state)], capture_output=True, text=True)
    if proc.returncode == 4:
        pytest.skip(f"SLURM test: Debian's SLURM packages cannot be installed: {proc.stderr}")
    if proc.returncode != 0:
        subprocess.run(["bash", str(DOWN), str(state)], capture_output=True)
        raise AssertionError(f"tests/slurm/up.sh failed ({proc.returncode}):\n{proc.stderr}")
    yield state
    subprocess.run(["bash", str(DOWN), str(state)], capture_output=True, text=True)


@pytest.fixture(scope="session")
def runs(slurm_cluster, tmp_path_factory):
    """The reduced grid through SLURM, then locally; (slurm workdir, local workdir, wall s)."""
    base = tmp_path_factory.mktemp("slurm-vs-local")
    slurm_work, local_work = base / "slurm", base / "local"
    wall = run_reduced_grid(
        slurm_work,
        "--profile",
        "profiles/slurm",
        *SLURM_TEST_FLAGS,
        *profile_resources_for_test_node(),
    )
    local_env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    run_reduced_grid(local_work, "--cores", "2", env=local_env)
    return slurm_work, local_work, wall


def scheduled_jobs(work: Path, local: bool = False) -> dict[str, str]:
    """Log path -> rule of every job Snakemake ran in `work` (from its own output).

    Under an executor plugin, jobs run on the submit host print as `localrule`; the others
    as `rule`. `local=False` returns the latter only (every job of a local run is local).
    """
    jobs, rule = {}, None
    for line in (work / "snakemake.out").read_text().splitlines():
        if m := re.match(r"\s*(local)?rule (\w+):", line):
            rule = m.group(2) if bool(m.group(1)) == local else None
        elif (m := re.match(r"\s*log: (\S+)$", line)) and rule:
            jobs[m.group(1)] = rule
    return jobs


def job_ids(work: Path, local: bool = False) -> dict[str, str]:
    """Log path -> the slurm_job_id its `ddbench job:` line names, for every job run."""
    found = {}
    for log in scheduled_jobs(work, local):
        match = JOB_LINE.search((work / log).read_text())
        assert match, f"{work / log} lacks the 'ddbench job: ... slurm_job_id=' line"
        found[log] = match.group(1)
    return found


def controller_states() -> dict[str, str]:
    """SLURM job id -> state, for every job the test controller remembers (MinJobAge 1 day)."""
    out = subprocess.run(
        ["squeue", "--states=all", "--noheader", "--format=%i|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


def run_seconds(job_id: str) -> float:
    """How long a SLURM job ran (EndTime - StartTime, whole seconds), from scontrol."""
    out = subprocess.run(
        ["scontrol", "show", "job", "--oneliner", job_id], capture_output=True, text=True
    ).stdout
    times = dict(re.findall(r"\b(StartTime|EndTime)=(\S+)", out))
    start, end = (datetime.fromisoformat(times[k]) for k in ("StartTime", "EndTime"))
    return (end - start).total_seconds()


def test_every_rule_script_logs_the_job_context():
    """Every rule runs a script, and every script writes the `ddbench job:` line first."""
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for name, body in re.findall(
            r"^rule (\w+):\n(.*?)(?=^\S|\Z)", smk.read_text(), re.M | re.S
        ):
            script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", body, re.M)
            assert script, f"{smk.name}: rule {name} has no script: (so no job-context line)"
            text = (smk.parent / script.group(1)).resolve().read_text()
            assert "start_job(snakemake)" in text, f"{script.group(1)} (rule {name})"


@pytest.mark.slurm
def test_every_job_ran_as_a_slurm_job(runs, capsys):
    slurm_work, local_work, wall = runs
    jobs = scheduled_jobs(slurm_work)
    assert CORE_RULES <= set(jobs.values()), set(jobs.values())
    assert not scheduled_jobs(slurm_work, local=True)  # none ran on the submit host
    assert jobs == scheduled_jobs(local_work, local=True)  # the same jobs as the local run
    ids = job_ids(slurm_work)
    assert all(job_id.isdigit() for job_id in ids.values()), ids
    states = controller_states()
    for log, job_id in ids.items():
        assert states.get(job_id) == "COMPLETED", f"{log}: SLURM job {job_id}: {states.get(job_id)}"
    # profiles/slurm groups selections and evaluations: each group is one SLURM job
    for rule in ("condense", "evaluate"):
        grouped = {ids[log] for log, r in jobs.items() if r == rule}
        assert len(grouped) == 1, f"{rule} jobs not grouped into one SLURM job: {grouped}"
    n_jobs, n_slurm = len(ids), len(set(ids.values()))
    ran = sorted(run_seconds(job_id) for job_id in set(ids.values()))
    with capsys.disabled():
        print(
            f"\nSLURM smoke run: {n_jobs} jobs in {n_slurm} SLURM jobs, {wall:.1f} s wall, "
            f"{60 * n_jobs / wall:.1f} jobs/min; SLURM jobs ran {ran[0]:.0f}-{ran[-1]:.0f} s "
            f"each, {sum(ran):.0f} s in all"
        )


@pytest.mark.slurm
def test_local_run_is_not_a_slurm_job(runs):
    _, local_work, _ = runs
    assert set(job_ids(local_work, local=True).values()) == {"None"}


@pytest.mark.slurm
def test_eval_json_carries_the_slurm_job_id(runs):
    slurm_work, _, _ = runs
    ids = job_ids(slurm_work)
    evals = sorted((slurm_work / "results").glob("*/eval/**/*.json"))
    assert len(evals) == 3  # random, herding, full_train
    for path in evals:
        log = "logs/" + str(path.relative_to(slurm_work / "results").with_suffix(".log"))
        assert json.loads(path.read_text())["slurm_job_id"] == ids[log], path


@pytest.mark.slurm
def test_slurm_results_equal_local_results(runs):
    slurm_work, local_work, _ = runs
    results = local_work / "results"
    evals = sorted(p.relative_to(local_work) for p in results.glob("*/eval/**/*.json"))
    assert len(evals) == 3
    for rel in evals:
        a = json.loads((slurm_work / rel).read_text())
        b = json.loads((local_work / rel).read_text())
        for key in ("accuracy", "final_train_loss", "steps", "n_train", "condensed_sha256"):
            assert a[key] == b[key], f"{rel}: {key} {a[key]!r} (SLURM) != {b[key]!r} (local)"
    sets = sorted(p.relative_to(local_work) for p in results.glob("*/condensed/**/*.h5"))
    assert len(sets) == 2
    for rel in sets:
        with h5py.File(slurm_work / rel) as fa, h5py.File(local_work / rel) as fb:
            assert sorted(fa) == sorted(fb), rel
            for name in fb:
                x, y = fa[name][()], fb[name][()]
                assert x.dtype == y.dtype and x.shape == y.shape, f"{rel}:/{name}"
                assert x.tobytes() == y.tobytes(), f"{rel}:/{name} differs"
