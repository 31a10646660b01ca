"""Snakemake adapter: write resources/datasets/{dataset}.h5 from the configured source."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.datasets import prepare_dataset  # noqa: E402

summary = run_job(
    prepare_dataset,
    snakemake.wildcards.dataset,  # noqa: F821
    json.loads(snakemake.params.spec),  # noqa: F821
    snakemake.output[0],  # noqa: F821
)
print(json.dumps(summary), file=sys.stderr)
