"""Snakemake adapter: the study tables (gain, DD-Ranking, cost, quality, teacher × student).

Each named output `<table>` is the table's CSV; its .md, .tex and .html lie beside it.
"""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context  # noqa: E402

log_job_context()

from ddbench.tables import write_study_tables  # noqa: E402

smk = snakemake  # noqa: F821
stems = {
    name: str(path)[: -len(".csv")]
    for name, path in smk.output.items()
    if str(path).endswith(".csv")
}
write_study_tables(
    list(smk.input.get("metrics", [])) + list(smk.input.get("reference", [])),
    benchmark_paths=list(smk.input.get("benchmarks", [])),
    quality_paths=list(smk.input.get("quality", [])),
    stems=stems,
    baseline=smk.params.baseline,
)
print("wrote", sorted(stems), file=sys.stderr)
