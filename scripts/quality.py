"""Snakemake adapter: quality of one condensed set (PRDC, MMD², nearest-real distances)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    from ddbench.analysis.quality import compute_quality

    # one set per job, or every seed of the cell in turn (`group_seeds`: lists, in seed order)
    grouped = smk.params.get("seeds") is not None
    seeds = smk.params.seeds if grouped else [int(smk.wildcards.seed)]
    sets = list(smk.input.condensed) if grouped else [smk.input.condensed]
    metrics = list(smk.output.metrics) if grouped else [smk.output.metrics]
    features = list(smk.output.features) if grouped else [smk.output.features]
    for seed, cset, out, feats in zip(seeds, sets, metrics, features, strict=True):
        summary = compute_quality(
            smk.input.dataset,
            smk.input.features,
            smk.input.teacher,
            cset,
            smk.params.teacher,
            out,
            feats,
            k=smk.params.k,
            max_real_per_class=smk.params.max_real_per_class,
            seed=int(seed),
            device=smk.params.device,
            threads=smk.threads,
        )
        print(
            f"seed {seed} quality:",
            {k: summary[k] for k in ("precision", "recall", "density", "coverage", "mmd2")},
            file=sys.stderr,
        )


run_job(main)
