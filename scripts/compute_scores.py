"""Snakemake adapter: an IPC-independent score target (training dynamics, teacher-scored crops,
or ddps patch scores from a diffusion prior)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    spec = json.loads(smk.params.spec)
    run = {"device": smk.params.device, "threads": smk.threads}
    if spec["kind"] == "crops":
        from ddbench.crops import score_crops

        score_crops(
            smk.input.dataset, smk.input.teacher, smk.wildcards.scorer, spec, smk.output[0], **run
        )
    elif spec["kind"] == "ddps":
        from ddbench.ddps import score_patches

        score_patches(
            smk.input.dataset,
            smk.input.prior,
            smk.input.teacher,
            smk.wildcards.scorer,
            spec,
            smk.output[0],
            **run,
        )
    else:
        from ddbench.dynamics import record_dynamics

        record_dynamics(smk.input.dataset, smk.wildcards.scorer, spec, smk.output[0], **run)


run_job(main)
