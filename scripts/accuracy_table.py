"""Snakemake adapter: aggregate every evaluation into results/tables/accuracy.{csv,md,tex,html}."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import copy

    from ddbench.analysis.tables import write_accuracy_table
    from ddbench.config import validate_config

    write_accuracy_table(
        list(smk.input.metrics),
        smk.output.csv,
        smk.output.md,
        smk.output.get("tex"),
        smk.output.get("html"),
        config=validate_config(copy.deepcopy(smk.config), read_sources=False, check_device=False),
    )


run_job(main)
