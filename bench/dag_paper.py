"""DAG build and no-op rerun of the paper-sized grid (config/paper.yaml), on stand-in data.

    .venv/bin/python bench/dag_paper.py [--workdir DIR] [--config config/paper.yaml]

The grid needs its datasets to exist (the config check opens every source folder and counts
the images of every class), so this writes tiny stand-ins in the real formats into a temporary
folder: CIFAR-10/100 python pickle batches with a handful of images, and image-folder trees
(train/<class>/, val/<class>/) for TinyImageNet (200 classes), ImageNette and ImageWoof
(10 each) and ImageNet-1K (1000 classes), with as many training PNGs per class as the largest
IPC (hard links to one PNG per class, so 100 000 "images" cost 1 000 files). A copy of the config points
every dataset `path` there. Then it times, in that working directory:

1. DAG build: `snakemake -n --quiet rules` (parse, config check, DAG, job stats); target <= 20 s.
2. Every job marked done: every output of the DAG is created empty (directories as
   directories; benchmark files too) with one common time, and the provenance records
   (.snakemake/metadata) that a finished job leaves are written for every job. `snakemake --touch` cannot do this: it only touches
   outputs that exist. The DAG and its outputs come from Snakemake's API (reported, no target).
3. No-op rerun: `snakemake -n` with every output present; target <= 10 s. It must report
   "Nothing to be done".

Steps 1 and 3 run --repeat times (default 3); the best and the worst are printed.

config/paper.yaml sets `group_seeds: true` (one evaluation and one quality job per cell for all
five seeds); `--per-seed-jobs` measures the same grid with one job per seed instead.
"""

from __future__ import annotations

import argparse
import io
import os
import pickle
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def write_cifar(folder: Path, kind: str, n_per_batch: int = 8) -> None:
    """CIFAR python batches (dicts of bytes keys, uint8 [N, 3072] rows) with a few images."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "cifar10":
        k, label_key, names_key, meta = 10, b"labels", b"label_names", "batches.meta"
        batches = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    else:
        k, label_key, names_key, meta = 100, b"fine_labels", b"fine_label_names", "meta"
        batches = ["train", "test"]
    for name in batches:
        batch = {
            b"data": rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8),
            label_key: [int(i % k) for i in range(n_per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    names = [f"class{i}".encode() for i in range(k)]
    (folder / meta).write_bytes(pickle.dumps({names_key: names}, protocol=2))


def write_imagefolder(root: Path, classes: list[str], n_train: int, png: bytes) -> int:
    """train/<class>/ with n_train images, val/<class>/ with one; return the files made.

    Per class one real PNG, the others hard links to it (file systems cap links per inode).
    """
    for cls in classes:
        train, val = root / "train" / cls, root / "val" / cls
        train.mkdir(parents=True, exist_ok=True)
        val.mkdir(parents=True, exist_ok=True)
        first = train / f"{cls}_0.png"
        first.write_bytes(png)
        for i in range(1, n_train):
            os.link(first, train / f"{cls}_{i}.png")
        os.link(first, val / f"{cls}_val.png")
    return len(classes) * (n_train + 1)


def stand_in_config(config: dict, data: Path) -> tuple[dict, int]:
    """Write stand-in data for every dataset of `config`; return the repointed config, files."""
    buffer = io.BytesIO()
    Image.fromarray(np.full((8, 8, 3), 127, dtype=np.uint8)).save(buffer, format="PNG")
    png = buffer.getvalue()
    n_train = max(config["ipcs"])
    made = 0
    for name, spec in config["datasets"].items():
        folder = data / name
        if spec["kind"] in ("cifar10", "cifar100"):
            write_cifar(folder, spec["kind"])
        elif spec["kind"] == "imagefolder":
            classes = spec.get("classes") or [
                f"n{i:08d}" for i in range(1000 if "imagenet1k" in name else 200)
            ]
            made += write_imagefolder(folder, classes, n_train, png)
        else:
            raise SystemExit(f"dataset {name}: no stand-in for kind {spec['kind']!r}")
        spec["path"] = str(folder)
    return config, made


def snakemake(work: Path, config: Path, *args: str) -> tuple[float, str]:
    cmd = [*SNAKEMAKE, "--directory", str(work), "--configfile", str(config)]
    cmd += ["--workflow-profile", "none", "--replace-workflow-config", "--cores", "2", *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return elapsed, proc.stdout + proc.stderr


def materialize_outputs(work: Path, config: Path) -> int:
    """Create every output of the DAG, empty, with one common time; return how many."""
    import contextlib

    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (
        ConfigSettings,
        ExecutionSettings,
        OutputSettings,
        Quietness,
        ResourceSettings,
        StorageSettings,
    )

    with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[config]),
            storage_settings=StorageSettings(),
            workdir=work,
            snakefile=ROOT / "Snakefile",
        )
        with contextlib.redirect_stdout(io.StringIO()):
            workflow_api.dag().summary()  # builds the DAG
        jobs = list(workflow_api._workflow.dag.jobs)
        # outputs, plus benchmark files (Snakemake treats a missing one as a missing output)
        outputs = [f for job in jobs for f in job.output]
        outputs += [job.benchmark for job in jobs if job.benchmark]
        stamp = time.time()  # newer than every script: older outputs count as "code changed"
        for f in outputs:
            path = work / str(f)
            if f.is_directory:
                path.mkdir(parents=True, exist_ok=True)
                (path / ".snakemake_timestamp").touch()
                os.utime(path / ".snakemake_timestamp", (stamp, stamp))
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.touch()
            os.utime(path, (stamp, stamp))
        # the provenance records a finished job leaves (.snakemake/metadata: code, params,
        # input, software stack), so the no-op rerun reads them as after a real run
        workflow = workflow_api._workflow
        workflow.execution_settings = workflow.execution_settings or ExecutionSettings()
        for job in jobs:
            workflow.async_run(workflow.persistence.finished(job))
    return len(outputs)


def job_stats(out: str) -> dict[str, int]:
    """{rule: count} from Snakemake's job stats table."""
    rows = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    return {rule: int(n) for rule, n in rows.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--workdir", help="keep data and outputs here (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each step")
    parser.add_argument(
        "--per-seed-jobs",
        action="store_true",
        help="one evaluation job per seed (group_seeds: false) instead of the config's choice",
    )
    parser.add_argument("--materialize", nargs=2, metavar=("CONFIG", "WORKDIR"), help="internal")
    args = parser.parse_args()
    if args.materialize:
        config, work = (Path(p).resolve() for p in args.materialize)
        print(f"{materialize_outputs(work, config)} outputs")
        return
    base = Path(args.workdir or tempfile.mkdtemp(prefix="ddbench-dag-"))
    work, data = base / "work", base / "data"
    work.mkdir(parents=True, exist_ok=True)
    data.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    config, files = stand_in_config(yaml.safe_load((ROOT / args.config).read_text()), data)
    if args.per_seed_jobs:
        config["group_seeds"] = False
    grouped = config.get("group_seeds", False)
    print(f"evaluation jobs: {'one per cell, every seed' if grouped else 'one per seed'}")
    cfg = base / "paper.yaml"
    cfg.write_text(yaml.safe_dump(config, sort_keys=False))
    print(f"stand-in data: {files} image files (hard links) in {time.perf_counter() - t0:.1f} s")

    dag = [snakemake(work, cfg, "-n", "--quiet", "rules") for _ in range(args.repeat)]
    stats = job_stats(dag[0][1])
    total = stats.pop("total", sum(stats.values()))
    times = sorted(t for t, _ in dag)
    print(f"jobs: {total}  ({', '.join(f'{r} {n}' for r, n in stats.items())})")
    print(f"DAG build (snakemake -n --quiet rules): best {times[0]:.1f} s, worst {times[-1]:.1f} s"
          " (target <= 20 s)")  # fmt: skip

    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--materialize", str(cfg), str(work)],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(f"creating the outputs failed:\n{proc.stderr[-3000:]}")
    print(proc.stdout.strip())
    n_outputs = int(proc.stdout.split()[0])
    print(f"every output of the {total} jobs created: {time.perf_counter() - start:.1f} s")

    noop = [snakemake(work, cfg, "-n") for _ in range(args.repeat)]
    for _, out in noop:
        if "Nothing to be done" not in out:
            raise SystemExit(f"no-op rerun still has work:\n{out[-3000:]}")
    times = sorted(t for t, _ in noop)
    print(f"no-op rerun (snakemake -n, every output present): best {times[0]:.1f} s, "
          f"worst {times[-1]:.1f} s (target <= 10 s)")  # fmt: skip
    dag_best, noop_best = min(t for t, _ in dag), times[0]
    floor_dag, floor_noop = snakemake_floor(base / "floor", total, 1, args.repeat)
    print(f"Snakemake's floor, one `touch` rule with {total} jobs, same machine and run: DAG build "
          f"{floor_dag:.1f} s, no-op {floor_noop:.1f} s")  # fmt: skip
    print(f"ratio to the floor: DAG build {dag_best / floor_dag:.2f}x, no-op "
          f"{noop_best / floor_noop:.2f}x (target <= 1.5x)")  # fmt: skip
    # the same floor with as many files per job as the grid (outputs, logs, benchmarks)
    per_job = max(1, round(n_outputs / total))
    files_dag, files_noop = snakemake_floor(base / "floor_files", total, per_job, args.repeat)
    print(f"the floor with {per_job} output files per job: DAG build {files_dag:.1f} s, no-op "
          f"{files_noop:.1f} s; ratio {dag_best / files_dag:.2f}x, {noop_best / files_noop:.2f}x")  # fmt: skip
    print(f"workdir: {base}")


FLOOR_SNAKEFILE = """
N = int(config["jobs"])
F = int(config["files"])


rule all:
    input:
        expand("out/{i}.0.txt", i=range(N - 1)),


rule touch:
    output:
        expand("out/{{i}}.{f}.txt", f=range(F)),
    shell:
        "touch {output}"
"""


def snakemake_floor(work: Path, jobs: int, files: int, repeat: int) -> tuple[float, float]:
    """Best DAG build and no-op rerun of a one-rule Snakefile with as many jobs as the grid
    (`files` outputs each)."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "Snakefile").write_text(FLOOR_SNAKEFILE)
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(work / "Snakefile")]
    cmd += ["--directory", str(work), "--cores", "1", "--config", f"jobs={jobs}", f"files={files}"]

    def timed(*args: str) -> float:
        start = time.perf_counter()
        subprocess.run([*cmd[:5], *args, *cmd[5:]], capture_output=True, text=True, check=True)
        return time.perf_counter() - start

    dag = min(timed("-n", "--quiet", "rules") for _ in range(repeat))
    (work / "out").mkdir(exist_ok=True)
    for i in range(jobs - 1):
        for f in range(files):
            (work / "out" / f"{i}.{f}.txt").touch()
    noop = min(timed("-n") for _ in range(repeat))
    return dag, noop


if __name__ == "__main__":
    main()
