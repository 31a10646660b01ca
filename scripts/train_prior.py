"""Snakemake adapter: train (unet) or record (stable_diffusion) one configured diffusion prior."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.diffusion import build_prior_file  # noqa: E402

info = run_job(
    build_prior_file,
    snakemake.input.dataset,  # noqa: F821
    json.loads(snakemake.params.spec),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
print(f"prior {info['kind']} written to {snakemake.output[0]}", file=sys.stderr)  # noqa: F821
