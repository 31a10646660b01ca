"""Snakemake adapter: gather one dataset's result files into one JSON-lines file."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context  # noqa: E402

log_job_context()

from ddbench.tables import collect_results  # noqa: E402

smk = snakemake  # noqa: F821
n = collect_results(list(smk.input), smk.output[0])
print(f"collected {n} results into {smk.output[0]}", file=sys.stderr)
