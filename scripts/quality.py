"""Snakemake adapter: quality of one condensed set (PRDC, MMD², nearest-real distances)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.quality import compute_quality  # noqa: E402

smk = snakemake  # noqa: F821
summary = run_job(
    compute_quality,
    smk.input.dataset,
    smk.input.features,
    smk.input.teacher,
    smk.input.condensed,
    smk.params.teacher,
    smk.output.metrics,
    smk.output.features,
    k=smk.params.k,
    max_real_per_class=smk.params.max_real_per_class,
    seed=int(smk.wildcards.seed),
    device=smk.params.device,
    threads=smk.threads,
)
print(
    "quality:",
    {k: summary[k] for k in ("precision", "recall", "density", "coverage", "mmd2")},
    file=sys.stderr,
)
