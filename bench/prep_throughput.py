"""Images/s of image-folder preparation at several worker counts, in one run.

    .venv/bin/python bench/prep_throughput.py resources/standin/imagenet1k [--workers 1 2]
        [--image-size 32] [--repeats 1] [--serial]

Prepares the folder (`ddbench.data.prepare.prepare_image_folder`) into a temporary folder once
per worker count (best of `--repeats`, the counts interleaved), and with `--serial` also through
the in-memory path (`sources.load_source` + `write_h5`), then prints images/s, each count's
ratio to the first, the CPU time per image of all processes (the pool's overhead, which other
load on the machine does not change) and the 1-minute load average at the end.
Make the folder with `bench/make_standin.py` (the ImageNet-shaped stand-in).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import ddbench.data.prepare as prepare
from ddbench.data.datasets import prepare_dataset


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished (joined) children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process tree) of one call."""
    start, cpu = time.perf_counter(), cpu_seconds()
    fn()
    return time.perf_counter() - start, cpu_seconds() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--serial", action="store_true", help="also time the in-memory path")
    args = parser.parse_args()
    spec = {"kind": "imagefolder", "path": str(args.folder), "image_size": args.image_size}
    plan = prepare.plan_imagefolder(spec)
    n = len(plan.files["train"]) + len(plan.files["test"])
    results: dict[str, float] = {}
    cpu_ms: dict[str, float] = {}

    def record(key: str, seconds: tuple[float, float]) -> None:
        wall, cpu = seconds
        results[key] = max(results.get(key, 0.0), n / wall)  # best of the repeats
        cpu_ms[key] = min(cpu_ms.get(key, float("inf")), 1000 * cpu / n)

    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):  # counts interleaved: load changes hit each alike
            for workers in args.workers:
                out = Path(tmp) / f"r{repeat}w{workers}" / "ds.h5"
                record(
                    f"workers={workers}",
                    timed(lambda o=out, w=workers: prepare_dataset("ds", spec, o, workers=w)),
                )
            if args.serial:
                original = prepare.PARALLEL_KINDS
                prepare.PARALLEL_KINDS = ()
                try:
                    out = Path(tmp) / f"r{repeat}serial" / "ds.h5"
                    record("in-memory", timed(lambda o=out: prepare_dataset("ds", spec, o)))
                finally:
                    prepare.PARALLEL_KINDS = original
    first = results[f"workers={args.workers[0]}"]
    report = {
        "images": n,
        "images_per_s": {k: round(v, 1) for k, v in results.items()},
        "ratio_to_first": {k: round(v / first, 3) for k, v in results.items()},
        # CPU per image, all processes: the pool's overhead, whatever else the machine runs
        "cpu_ms_per_image": {k: round(v, 3) for k, v in cpu_ms.items()},
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpus": len(os.sched_getaffinity(0)),
        "peak_rss_mb_main": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
