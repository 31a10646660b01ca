"""Snakemake adapter: write resources/datasets/{dataset}.h5 from the configured source."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.data.datasets import prepare_dataset

    summary = prepare_dataset(smk.wildcards.dataset, json.loads(smk.params.spec), smk.output[0])
    print(json.dumps(summary), file=sys.stderr)


run_job(main)
