"""Snakemake adapter: the study tables (gain, DD-Ranking, cost, quality, teacher × student).

Each named output `<table>` is the table's CSV; its .md, .tex and .html lie beside it.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    from ddbench.analysis.tables import write_study_tables

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


run_job(main)
