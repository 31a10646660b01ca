"""Snakemake adapter: train one configured teacher on the full training split."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.teachers import train_teacher  # noqa: E402

summary = run_job(
    train_teacher,
    snakemake.input.dataset,  # noqa: F821
    snakemake.wildcards.teacher,  # noqa: F821
    json.loads(snakemake.params.spec),  # noqa: F821
    snakemake.output.checkpoint,  # noqa: F821
    snakemake.output.summary,  # noqa: F821
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
print(f"test accuracy {summary['test_accuracy']:.2f} %", file=sys.stderr)
