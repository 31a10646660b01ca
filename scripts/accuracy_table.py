"""Snakemake adapter: aggregate every evaluation into results/tables/accuracy.{csv,md,tex,html}."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context  # noqa: E402

log_job_context()

import copy  # noqa: E402

from ddbench.config import validate_config  # noqa: E402
from ddbench.tables import write_accuracy_table  # noqa: E402

smk = snakemake  # noqa: F821
write_accuracy_table(
    list(smk.input.metrics),
    smk.output.csv,
    smk.output.md,
    smk.output.get("tex"),
    smk.output.get("html"),
    config=validate_config(copy.deepcopy(smk.config)),
)
