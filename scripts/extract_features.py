"""Snakemake adapter: embed the training split with a teacher (IPC-independent)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    from ddbench.stages.features import extract_features

    extract_features(
        smk.input.dataset,
        smk.input.teacher,
        smk.wildcards.teacher,
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )


run_job(main)
