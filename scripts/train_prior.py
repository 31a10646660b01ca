"""Snakemake adapter: train (unet) or record (stable_diffusion) one configured diffusion prior."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.stages.diffusion import build_prior_file

    info = build_prior_file(
        smk.input.dataset,
        json.loads(smk.params.spec),
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
    print(f"prior {info['kind']} written to {smk.output[0]}", file=sys.stderr)


run_job(main)
