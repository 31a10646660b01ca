"""Snakemake adapter: write resources/datasets/{dataset}.h5 from the configured source."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.data.datasets import prepare_dataset

    spec = json.loads(smk.params.spec)
    # image folders: one decoding process per thread of the job (the spec's `workers` wins)
    workers = spec.get("workers") or smk.threads
    summary = prepare_dataset(smk.wildcards.dataset, spec, smk.output[0], workers=workers)
    print(json.dumps(summary), file=sys.stderr)


run_job(main)
