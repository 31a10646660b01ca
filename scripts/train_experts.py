"""Snakemake adapter: train one configured set of expert trajectories (for mtt / datm)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.stages.experts import train_experts

    info = train_experts(
        smk.input.dataset,
        smk.wildcards.experts,
        json.loads(smk.params.spec),
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
    print(
        f"{info['n_experts']} experts x {info['epochs']} epochs ({info['n_params']} parameters) "
        f"written to {smk.output[0]}",
        file=sys.stderr,
    )


run_job(main)
