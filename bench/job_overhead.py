"""Fixed cost of a Snakemake job: process start plus the imports each stage's script needs.

    .venv/bin/python bench/job_overhead.py

For every stage it starts a fresh interpreter that imports exactly what the stage's adapter
imports (plus Snakemake's script preamble), times it (best of 3), and lists which heavy
libraries ended up loaded: a stage that needs neither timm nor diffusers must not load them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

STAGES = {
    "prepare_dataset": "ddbench.data.datasets",
    "condense (coresets)": "ddbench.methods.condense, ddbench.methods, ddbench.stages.features, ddbench.stages.scores",
    "train_teacher": "ddbench.stages.teachers",
    "record_dynamics": "ddbench.stages.dynamics",
    "evaluate": "ddbench.training.evaluate",
    "accuracy_table": "ddbench.analysis.tables",
    "train_prior / gen / ddps / psr": "ddbench.methods.condense, ddbench.methods, ddbench.stages.diffusion, ddbench.stages.ddps, ddbench.stages.psr",
}
PROBE = "import snakemake.script, {mods}; import sys; print(','.join(m for m in ('torch','timm','diffusers','transformers','sklearn') if m in sys.modules))"


def time_import(mods: str) -> tuple[float, str]:
    best, loaded = float("inf"), ""
    for _ in range(3):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", PROBE.format(mods=mods)],
            capture_output=True,
            text=True,
            check=True,
        )
        best = min(best, time.perf_counter() - t0)
        loaded = out.stdout.strip()
    return best, loaded


def main() -> None:
    rows = {}
    for stage, mods in STAGES.items():
        seconds, loaded = time_import(mods)
        rows[stage] = {"seconds": round(seconds, 2), "heavy_modules": loaded or "none"}
        print(f"{stage:22s} {seconds:5.2f} s   loads: {loaded or 'none'}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
