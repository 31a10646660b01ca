"""Snakemake adapter: embed the training split with a teacher (IPC-independent)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.features import extract_features  # noqa: E402

run_job(
    extract_features,
    snakemake.input.dataset,  # noqa: F821
    snakemake.input.teacher,  # noqa: F821
    snakemake.wildcards.teacher,  # noqa: F821
    snakemake.output[0],  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
