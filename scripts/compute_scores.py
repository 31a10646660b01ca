"""Snakemake adapter: an IPC-independent score target (training dynamics, teacher-scored crops,
or ddps patch scores from a diffusion prior)."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

smk = snakemake  # noqa: F821
spec = json.loads(smk.params.spec)
if spec["kind"] == "crops":
    from ddbench.crops import score_crops

    run_job(
        score_crops,
        smk.input.dataset,
        smk.input.teacher,
        smk.wildcards.scorer,
        spec,
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
elif spec["kind"] == "ddps":
    from ddbench.ddps import score_patches

    run_job(
        score_patches,
        smk.input.dataset,
        smk.input.prior,
        smk.input.teacher,
        smk.wildcards.scorer,
        spec,
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
else:
    from ddbench.dynamics import record_dynamics

    run_job(
        record_dynamics,
        smk.input.dataset,
        smk.wildcards.scorer,
        spec,
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
