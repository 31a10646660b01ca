"""Snakemake adapter: per-class k-means of a ddps scorer's kept patches (clusters target)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.stages.ddps import cluster_patches

    summary = cluster_patches(
        smk.input.scores,
        smk.input.dataset,
        f"{smk.wildcards.extractor}-k{smk.wildcards.k}",
        json.loads(smk.params.spec),
        smk.output[0],
    )
    print(json.dumps(summary), file=sys.stderr)


run_job(main)
