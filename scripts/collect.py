"""Snakemake adapter: gather one dataset's result files into one JSON-lines file."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    from ddbench.analysis.tables import collect_results

    n = collect_results(list(smk.input), smk.output[0])
    print(f"collected {n} results into {smk.output[0]}", file=sys.stderr)


run_job(main)
