"""Snakemake adapter: an IPC-independent score target (training dynamics, teacher-scored crops,
or ddps patch scores from a diffusion prior)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.registry import SCORERS

    spec = json.loads(smk.params.spec)
    kind = SCORERS.get(spec["kind"])
    run = kind.function("run")
    inputs = [getattr(smk.input, need) for need in kind.inputs]
    run(
        smk.input.dataset,
        *inputs,
        smk.wildcards.scorer,
        spec,
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )


run_job(main)
