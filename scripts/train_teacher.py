"""Snakemake adapter: train one configured teacher on the full training split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.stages.teachers import train_teacher

    summary = train_teacher(
        smk.input.dataset,
        smk.wildcards.teacher,
        json.loads(smk.params.spec),
        smk.output.checkpoint,
        smk.output.summary,
        device=smk.params.device,
        threads=smk.threads,
    )
    print(f"test accuracy {summary['test_accuracy']:.2f} %", file=sys.stderr)


run_job(main)
