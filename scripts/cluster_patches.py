"""Snakemake adapter: per-class k-means of a ddps scorer's kept patches (clusters target)."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.ddps import cluster_patches  # noqa: E402

smk = snakemake  # noqa: F821
summary = run_job(
    cluster_patches,
    smk.input.scores,
    smk.input.dataset,
    f"{smk.wildcards.extractor}-k{smk.wildcards.k}",
    json.loads(smk.params.spec),
    smk.output[0],
)
print(json.dumps(summary), file=sys.stderr)
