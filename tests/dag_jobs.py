"""The dry-run job list (rule and outputs of every job) of a shipped config, on stand-in data.

    .venv/bin/python tests/dag_jobs.py --write     # record tests/golden/dag/*.txt.gz

While the DAG is built, dataset sources are only checked to exist (no data file is opened), so
the stand-ins are the configured layout with empty files. Used by tests/test_dag_jobs.py to
check that a refactor leaves every shipped grid's jobs unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import io
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests/golden/dag"
CONFIGS = {
    "smoke": "config/smoke.yaml",
    "config": "config/config.yaml",
    "paper": "config/paper.yaml",
    "hard_truths": "config/studies/hard_truths.yaml",
    "dd_vs_coresets": "config/studies/dd_vs_coresets.yaml",
    "ddps": "config/studies/ddps.yaml",
    "psr": "config/studies/psr.yaml",
    "matching": "config/studies/matching.yaml",
    "dsa_fidelity": "config/studies/dsa_fidelity.yaml",
    "scale": "config/scale.yaml",
}
_FILES = {
    "fashion_mnist": [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
    ],
    "cifar10": [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"],
    "cifar100": ["train", "test", "meta"],
}


def stand_in(config: dict, data: Path) -> dict:
    """A copy of `config` whose dataset paths point to empty files in the configured layout."""
    config = copy.deepcopy(config)
    for name, spec in config["datasets"].items():
        folder = data / name
        if spec["kind"] in _FILES:
            folder.mkdir(parents=True, exist_ok=True)
            for f in _FILES[spec["kind"]]:
                (folder / f).touch()
            spec["path"] = str(folder)
        elif spec["kind"] == "imagefolder":
            for split in ("train", "val"):
                (folder / split).mkdir(parents=True, exist_ok=True)
            spec["path"] = str(folder)
    return config


def job_list(name: str) -> list[str]:
    """Sorted `rule<TAB>output ...` lines of every job the config's dry run would schedule."""
    return job_list_of(yaml.safe_load((ROOT / CONFIGS[name]).read_text()))


def job_list_of(config: dict) -> list[str]:
    """`job_list` of a config given as a dict (on stand-in data)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        StorageSettings,
    )

    with tempfile.TemporaryDirectory(prefix="ddbench-dag-") as tmp:
        work = Path(tmp)
        cfg = work / "config.yaml"
        cfg.write_text(yaml.safe_dump(stand_in(config, work / "data")))
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow_api = api.workflow(
                resource_settings=ResourceSettings(cores=1),
                config_settings=ConfigSettings(configfiles=[cfg]),
                storage_settings=StorageSettings(),
                workdir=work,
                snakefile=ROOT / "Snakefile",
            )
            with contextlib.redirect_stdout(io.StringIO()):
                workflow_api.dag().summary()
            jobs = list(workflow_api._workflow.dag.jobs)
            lines = [f"{job.rule.name}\t{' '.join(sorted(map(str, job.output)))}" for job in jobs]
    return sorted(lines)


def golden(name: str) -> list[str]:
    """The recorded job list of a config."""
    with gzip.open(GOLDEN / f"{name}.txt.gz", "rt") as fh:
        return fh.read().splitlines()


def write_golden(names=tuple(CONFIGS)) -> None:
    """Record the job list of every shipped config (run before a refactor)."""
    GOLDEN.mkdir(parents=True, exist_ok=True)
    for name in names:
        lines = job_list(name)
        # mtime=0: the same list gives the same bytes
        with open(GOLDEN / f"{name}.txt.gz", "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as fh:
                fh.write(("\n".join(lines) + "\n").encode())
        print(f"{name}: {len(lines)} jobs", file=sys.stderr)


if __name__ == "__main__":
    if "--write" not in sys.argv:
        raise SystemExit(__doc__)
    write_golden(tuple(a for a in sys.argv[1:] if a != "--write") or tuple(CONFIGS))
