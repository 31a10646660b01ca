"""Snakemake adapter: the over-complete sample pool of psr methods (IPC-independent)."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.psr import generate_pool  # noqa: E402

smk = snakemake  # noqa: F821
summary = run_job(
    generate_pool,
    smk.input.dataset,
    smk.input.prior,
    json.loads(smk.params.spec),
    smk.output[0],
    device=smk.params.device,
    threads=smk.threads,
)
print(json.dumps(summary), file=sys.stderr)
