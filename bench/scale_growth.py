"""How peak memory and time of each workflow stage grow with the training split (issue #15).

    .venv/bin/python bench/scale_growth.py [--small 2] [--large 20] [--size 32] [--val-per-class 1]
        [--classes 1000] [--variant 1000|100] [--modes default,stream] [--workdir DIR]
        [--out /tmp/scale_growth.md] [--cores 2] [--imagenet-size 64]

Writes (or reuses) the ImageNet-shaped stand-in (`bench/make_standin.py`) at `--small` and
`--large` training images per class, then for each size and each reader mode runs the workflow
on a reduced copy of `config/scale.yaml` (one dataset, IPC 1, one seed, the methods random,
herding, el2n, cad_prune, rded, dm, the protocols hl and slkd, the whole-split reference, tiny
budgets; every stage kind: prepare_dataset, train_teacher, extract_features, compute_scores
(dynamics and crops), condense, evaluate, evaluate_full_train, quality, tables) with
`snakemake --cores 2` in its own working directory, and reads each job's benchmark TSV
(`max_rss` in MB, `s`).

Reader modes: `default` leaves DDBENCH_IN_MEMORY_MAX_BYTES unset (512 MiB: at these sizes every
split stays in memory); `stream` sets it to 0 (every split is read from the prepared file in
uint8 batches), the mode that shows whether memory is bounded.

Per stage (rule and variant; evaluate and quality: the largest job over methods) the table
gives peak RSS at both sizes, its growth, the growth of the per-sample arrays the stage holds
(every HDF5 dataset with an axis of length N among the files it reads or writes, the images of
the prepared file excluded: labels, features N·D·4, dynamics R·P·N·13, …) and the growth beyond
those arrays, as a percentage of the small run's RSS (target: at most 10 %). Then an estimate
at ImageNet-1K size (1 281 167 training images, 50 000 test, 64 px, 1000 classes): the small
run's RSS plus the measured growth per image (streamed mode), beside
`ddbench.workflow.resources.memory_mb` (default switch, so the split streams there too).
Progress goes to stderr; the Markdown goes to --out and stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
SNAKEMAKE = str(Path(PY).with_name("snakemake"))
IMAGENET_TRAIN, IMAGENET_TEST = 1_281_167, 50_000
DATASET = "standin"
# job scripts whose rules write a benchmark TSV (the others are sampled from the process tree)
SCRIPTS_WITH_BENCHMARK = {
    "prepare_dataset",
    "train_teacher",
    "extract_features",
    "compute_scores",
    "condense",
    "evaluate",
    "evaluate_full_train",
    "quality",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def reduced_config(data_path: Path, size: int) -> dict:
    """One dataset, IPC 1, one seed, a few methods and two protocols, tiny budgets."""
    base = yaml.safe_load((ROOT / "config/scale.yaml").read_text())
    return {
        "datasets": {DATASET: {"kind": "imagefolder", "path": str(data_path), "image_size": size}},
        "ipcs": [1],
        "seeds": [0],
        "device": "cpu",
        "threads": 2,
        "eval_threads": 1,
        "claims": None,
        "teachers": {"convnet": base["teachers"]["convnet"]},
        "scorers": {"dynamics": base["scorers"]["dynamics"], "crops": base["scorers"]["crops"]},
        "methods": {
            "random": {"kind": "random"},
            "herding": {"kind": "herding", "features": "convnet"},
            "el2n": {"kind": "el2n", "scorer": "dynamics", "epoch": 1, "keep": "hard"},
            "cad_prune": {
                "kind": "cad_prune",
                "scorer": "dynamics",
                "budget": 4,
                "window_j": 2,
                "window_w": 1,
            },
            "rded": {"kind": "rded", "crops": "crops", "factor": 2},
            "dm": {
                "kind": "dm",
                "model": "convnet-d3-w16-in",
                "iterations": 2,
                "batch_real": 2,
                "dsa": False,
            },
        },
        "protocols": {"hl": base["protocols"]["hl"], "slkd": base["protocols"]["slkd"]},
        "students": base["students"],
        "reference": {"enabled": True, "epochs": 1, "seeds": [0]},
        "quality": base["quality"],
    }


def make_standin(workdir: Path, per_class: int, args) -> Path:
    """The stand-in folder for `per_class` (reused when complete); returns the dataset root."""
    out = workdir / f"standin-pc{per_class}-v{args.val_per_class}-{args.size}px"
    full = out / ("imagenet1k" if args.classes == 1000 else f"imagenet{args.classes}")
    done = out / "COMPLETE"
    if not done.exists():
        log(f"writing stand-in {out} ({per_class} train + {args.val_per_class} val per class)")
        subprocess.run(
            [
                PY,
                str(ROOT / "bench/make_standin.py"),
                str(out),
                "--per-class",
                str(per_class),
                "--val-per-class",
                str(args.val_per_class),
                "--size",
                str(args.size),
                "--classes",
                str(args.classes),
                "--subset",
                "100",
                "--workers",
                str(args.cores),
            ],
            check=True,
            stdout=sys.stderr,
        )
        done.write_text("ok\n")
    else:
        log(f"reusing stand-in {out}")
    return full if args.variant == args.classes else out / f"imagenet{args.variant}"


def run_workflow(rundir: Path, data: Path, mode: str, args) -> float:
    """Snakemake on the reduced config in `rundir`; returns the wall time in seconds."""
    rundir.mkdir(parents=True, exist_ok=True)
    cfg = rundir / "config.yaml"
    cfg.write_text(yaml.safe_dump(reduced_config(data, args.size), sort_keys=False))
    env = dict(os.environ)
    env.pop("DDBENCH_IN_MEMORY_MAX_BYTES", None)
    if mode == "stream":
        env["DDBENCH_IN_MEMORY_MAX_BYTES"] = "0"
    cmd = [
        SNAKEMAKE,
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(rundir),
        "--configfile",
        str(cfg),
        "--cores",
        str(args.cores),
        "--quiet",
        "rules",
    ]
    log(f"{mode}: {' '.join(cmd)}")
    start = time.perf_counter()
    with open(rundir / "snakemake.out", "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        seen = poll_tree(proc)
        rc = proc.wait()
    wall = time.perf_counter() - start
    (rundir / "wall_s.txt").write_text(f"{wall:.0f}\n")
    # Rules without a benchmark directive (tables, collectors, figures): RSS and time sampled
    # every 0.25 s from the process tree, per job script; plus Snakemake itself.
    sampled: dict = {}
    for cmdline, rss, first, last in seen.values():
        m = re.search(r"tmp[^/ ]*?\.(\w+)\.py", cmdline)
        name = m.group(1) if m else ("snakemake (scheduler)" if "snakemake" in cmdline else None)
        if name:
            cur = sampled.setdefault(name, [0.0, 0.0, 0])
            cur[0] = max(cur[0], rss / 2**20)
            cur[1] = max(cur[1], last - first)
            cur[2] += 1
    (rundir / "sampled.json").write_text(json.dumps(sampled, indent=1))
    log(f"{mode}: snakemake exit {rc} after {wall:.0f} s (log {rundir / 'snakemake.out'})")
    if rc != 0:
        log("tail of the log:\n" + "".join(open(rundir / "snakemake.out").readlines()[-30:]))
    return wall


def poll_tree(proc, every: float = 0.25) -> dict:
    """pid -> [cmdline, max RSS bytes, first seen, last seen] of `proc` and its descendants."""
    import psutil

    seen: dict = {}
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        now = time.perf_counter()
        try:
            procs = [root] + root.children(recursive=True)
        except psutil.Error:
            procs = []
        for p in procs:
            try:
                rss = p.memory_info().rss
                if p.pid not in seen:
                    seen[p.pid] = [" ".join(p.cmdline()), rss, now, now]
                rec = seen[p.pid]
                rec[1], rec[3] = max(rec[1], rss), now
            except psutil.Error:
                continue
        time.sleep(every)
    return seen


def h5_per_sample_bytes(path: Path, n: int, skip_images: bool, names=None) -> int:
    """Bytes of the HDF5 datasets in `path` with an axis of length n (images left out; only
    `names` where given)."""
    import h5py

    if not path.exists():
        return 0
    total = 0

    def visit(name, obj):
        nonlocal total
        if isinstance(obj, h5py.Dataset) and n in obj.shape:
            if skip_images and name.split("/")[-1] == "images":
                return
            if names is not None and name.split("/")[-1] not in names:
                return
            total += obj.size * obj.dtype.itemsize

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return total


def n_train(rundir: Path) -> int:
    import h5py

    with h5py.File(rundir / f"resources/datasets/{DATASET}.h5", "r") as f:
        return int(f["train/images"].shape[0])


def stage_key(rel: Path, methods: dict, teachers: list) -> tuple[str, str, list[str]]:
    """(stage label, rule, files whose per-sample arrays it holds) of a benchmark path."""
    ds = f"resources/datasets/{DATASET}.h5"
    res = f"results/{DATASET}"
    parts = rel.with_suffix("").parts
    if parts == ("prepare_dataset",):
        return "prepare_dataset", "prepare_dataset", [ds]
    kind = parts[0]
    if kind == "teachers":
        return f"train_teacher:{parts[1]}", "train_teacher", [ds]
    if kind == "features":
        return (
            f"extract_features:{parts[1]}",
            "extract_features",
            [ds, f"{res}/features/{parts[1]}.h5"],
        )
    if kind == "scores":
        return f"compute_scores:{parts[1]}", "compute_scores", [ds, f"{res}/scores/{parts[1]}.h5"]
    if kind == "condensed":
        spec = methods.get(parts[1], {})
        files = [ds]
        if "features" in spec:
            files.append(f"{res}/features/{spec['features']}.h5::features,labels")
        for key in ("scorer", "crops"):
            if key in spec:
                files.append(f"{res}/scores/{spec[key]}.h5")
        return f"condense:{parts[1]}", "condense", files
    if kind == "eval" and parts[3] == "full_train":
        return f"evaluate_full_train:{parts[1]}", "evaluate_full_train", [ds]
    if kind == "eval":
        return f"evaluate:{parts[1]} (max of {len(methods)})", "evaluate", []
    if kind == "quality":  # embeds with the quality teacher's features file (labels, features)
        feats = [f"{res}/features/{t}.h5::features,labels" for t in teachers[:1]]
        return f"quality (max of {len(methods)})", "quality", feats
    return "/".join(parts), "other", []


def read_run(rundir: Path) -> dict:
    """stage -> {rule, rss (max MB), s (max), jobs, per_sample (bytes), files}."""
    cfg = yaml.safe_load((rundir / "config.yaml").read_text())
    n = n_train(rundir)
    stages: dict = {}
    for tsv in sorted((rundir / "benchmarks").rglob("*.tsv")):
        rel = tsv.relative_to(rundir / "benchmarks")
        rel = rel.relative_to(DATASET) if rel.parts[0] == DATASET else rel
        label, rule, files = stage_key(rel, cfg["methods"], list(cfg["teachers"]))
        rows = list(csv.DictReader(open(tsv), delimiter="\t"))
        if not rows:
            continue
        rss = max(float(r["max_rss"]) if r["max_rss"] not in ("", "-", "NA") else 0 for r in rows)
        secs = max(float(r["s"]) for r in rows)
        st = stages.setdefault(
            label, {"rule": rule, "rss": 0.0, "min": rss, "s": 0.0, "jobs": 0, "files": files}
        )
        st["rss"], st["min"] = max(st["rss"], rss), min(st["min"], rss)
        st["s"] = max(st["s"], secs)
        st["jobs"] += 1
    sampled = rundir / "sampled.json"
    if sampled.exists():
        for name, (rss, secs, jobs) in json.loads(sampled.read_text()).items():
            if name in SCRIPTS_WITH_BENCHMARK:
                continue
            stages[f"{name} (sampled)"] = {
                "rule": name,
                "rss": rss,
                "min": rss,
                "s": secs,
                "jobs": jobs,
                "files": [],
            }
    for st in stages.values():
        st["per_sample"] = 0
        for entry in st["files"]:
            f, _, names = entry.partition("::")
            st["per_sample"] += h5_per_sample_bytes(
                rundir / f, n, f.startswith("resources/"), names.split(",") if names else None
            )
    return {"n": n, "stages": stages}


def rule_time_table(run: dict) -> list[str]:
    lines = [
        "| stage | jobs | time s (max job) | peak RSS MB (max job) | RSS spread over its jobs MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, st in run["stages"].items():
        spread = f"{st['min']:.0f}–{st['rss']:.0f}" if st["jobs"] > 1 else ""
        lines.append(f"| {label} | {st['jobs']} | {st['s']:.1f} | {st['rss']:.0f} | {spread} |")
    return lines


def growth_table(small: dict, large: dict) -> tuple[list[str], dict]:
    lines = [
        f"| stage | RSS at N={small['n']} MB | RSS at 10·N={large['n']} MB | growth MB | growth % "
        "| per-sample arrays growth MB | growth beyond arrays % | ≤ 10 % |",
        "|---|---:|---:|---:|---:|---:|---:|:-:|",
    ]
    slopes = {}
    for label, s in small["stages"].items():
        lg = large["stages"].get(label)
        if lg is None:
            lines.append(f"| {label} | {s['rss']:.0f} | (missing) | | | | | |")
            continue
        grow = lg["rss"] - s["rss"]
        arrays = (lg["per_sample"] - s["per_sample"]) / 2**20  # Snakemake's max_rss is in MiB
        beyond = (grow - arrays) / s["rss"] * 100 if s["rss"] else float("nan")
        ok = "yes" if beyond <= 10 else "**no**"
        lines.append(
            f"| {label} | {s['rss']:.0f} | {lg['rss']:.0f} | {grow:+.0f} | "
            f"{grow / s['rss'] * 100 if s['rss'] else float('nan'):+.1f} | {arrays:.1f} | "
            f"{beyond:+.1f} | {ok} |"
        )
        slopes[label] = {
            "rule": s["rule"],
            "rss_s": s["rss"],
            "rss_l": lg["rss"],
            "n_s": small["n"],
            "n_l": large["n"],
            "ps_l": lg["per_sample"],
        }
    return lines, slopes


def imagenet_table(slopes: dict, args, cfg: dict) -> list[str]:
    sys.path.insert(0, str(ROOT / "src"))
    from ddbench.workflow.resources import DatasetSize, config_batch, memory_mb

    size = DatasetSize(
        IMAGENET_TRAIN, IMAGENET_TEST, args.imagenet_size, args.imagenet_size, 3, 1000
    )
    batch = config_batch(cfg)
    lines = [
        f"| stage | growth MB per 1000 images (measured) | (a) measured growth extrapolated to "
        f"{IMAGENET_TRAIN:,} images MB | (b) RSS at 10·N + per-sample arrays at "
        f"{IMAGENET_TRAIN:,} MB | resources.memory_mb (B={batch}, {args.imagenet_size} px, "
        "×1.25 margin incl.) MB |",
        "|---|---:|---:|---:|---:|",
    ]
    spec = cfg["datasets"][DATASET]
    for label, g in slopes.items():
        slope = (g["rss_l"] - g["rss_s"]) / (g["n_l"] - g["n_s"])
        est = g["rss_l"] + max(0.0, slope) * (IMAGENET_TRAIN - g["n_l"])
        arrays = g["rss_l"] + g["ps_l"] / g["n_l"] * (IMAGENET_TRAIN - g["n_l"]) / 2**20
        try:
            formula = f"{memory_mb(g['rule'], size, batch, spec=spec, workers=args.cores, cap=512 << 20):,}"
        except KeyError:
            formula = "–"
        lines.append(f"| {label} | {slope * 1000:+.2f} | {est:,.0f} | {arrays:,.0f} | {formula} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=2, help="N: training images per class")
    parser.add_argument("--large", type=int, default=20, help="the large run's images per class")
    parser.add_argument("--size", type=int, default=32, help="stand-in image side in pixels")
    parser.add_argument("--val-per-class", type=int, default=1)
    parser.add_argument("--classes", type=int, default=1000, help="classes of the stand-in")
    parser.add_argument(
        "--variant",
        type=int,
        default=1000,
        help="classes of the dataset run: --classes, or 100 for the ImageNet-100 subset",
    )
    parser.add_argument(
        "--modes",
        default="default,stream",
        help="reader modes, in order: default (switch unset), stream (switch 0)",
    )
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/scale_growth"))
    parser.add_argument("--out", type=Path, default=Path("/tmp/scale_growth.md"))
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--imagenet-size", type=int, default=64, help="px of the ImageNet estimate")
    parser.add_argument("--report-only", action="store_true", help="read finished runs only")
    args = parser.parse_args()

    args.workdir.mkdir(parents=True, exist_ok=True)
    sizes = [args.small, args.large]
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    data = (
        {pc: make_standin(args.workdir, pc, args) for pc in sizes} if not args.report_only else {}
    )
    walls: dict = {}
    md = [
        f"# Stage memory growth with the split ({args.variant} classes, {args.size} px, "
        f"val {args.val_per_class}/class, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})",
        "",
    ]
    for mode in modes:
        runs = {}
        for pc in sizes:
            rundir = args.workdir / f"{mode}-{args.variant}c-pc{pc}"
            if not args.report_only:
                walls[(mode, pc)] = run_workflow(rundir, data[pc], mode, args)
            try:
                runs[pc] = read_run(rundir)
            except Exception as err:  # a run that broke before preparing its dataset
                log(f"{mode} pc{pc}: cannot read results: {err!r}")
        switch = (
            "DDBENCH_IN_MEMORY_MAX_BYTES unset (512 MiB: both splits in memory)"
            if mode == "default"
            else "DDBENCH_IN_MEMORY_MAX_BYTES=0 (every split streamed)"
        )
        md += [f"## Mode `{mode}`: {switch}", ""]
        for pc in sizes:
            wall_file = args.workdir / f"{mode}-{args.variant}c-pc{pc}" / "wall_s.txt"
            if (mode, pc) not in walls and wall_file.exists():
                walls[(mode, pc)] = float(wall_file.read_text())
            if (mode, pc) in walls:
                md.append(f"- {pc}/class: workflow wall time {walls[(mode, pc)]:.0f} s")
        md.append("")
        if len(runs) == 2:
            lines, slopes = growth_table(runs[args.small], runs[args.large])
            md += lines + ["", f"Per-stage time and peak RSS at {args.large}/class:", ""]
            md += rule_time_table(runs[args.large]) + [""]
            if mode == "stream" or len(modes) == 1:
                cfg = yaml.safe_load(
                    (
                        args.workdir / f"{mode}-{args.variant}c-pc{args.small}" / "config.yaml"
                    ).read_text()
                )
                md += [f"### Estimate at ImageNet-1K size (from mode `{mode}`)", ""]
                md += imagenet_table(slopes, args, cfg) + [""]
        text = "\n".join(md) + "\n"
        args.out.write_text(text)  # after each mode, so a later failure keeps what was measured
    print(text)


if __name__ == "__main__":
    main()
