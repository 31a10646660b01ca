"""Snakemake adapter: judge the papers' claims on the collected results (results/tables/claims.*)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import copy

    from ddbench.analysis.claims import write_claims_table
    from ddbench.config import validate_config
    from ddbench.workflow.plan import Plan

    config = validate_config(copy.deepcopy(smk.config), read_sources=False, check_device=False)
    result = write_claims_table(
        list(smk.input.claims)[0],  # the named file; the others are its includes
        list(smk.input.metrics),
        list(smk.input.quality),
        config,
        str(smk.output.csv)[: -len(".csv")],
        figures={Path(p).name for p in Plan(config).figure_targets()},  # what this grid draws
    )
    summary = result[result["cell"] == "all"]
    for row in summary.itertuples():
        print(f"{row.claim}: {row.verdict} ({row.cells} cells)", file=sys.stderr)


run_job(main)
