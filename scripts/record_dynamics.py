"""Snakemake adapter: proxy training runs recording per-epoch predictions (IPC-independent)."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.dynamics import record_dynamics  # noqa: E402

run_job(
    record_dynamics,
    snakemake.input.dataset,  # noqa: F821
    snakemake.wildcards.scorer,  # noqa: F821
    json.loads(snakemake.params.spec),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
