"""Snakemake adapter: the over-complete sample pool of psr methods (IPC-independent)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.stages.psr import generate_pool

    summary = generate_pool(
        smk.input.dataset,
        smk.input.prior,
        json.loads(smk.params.spec),
        smk.output[0],
        device=smk.params.device,
        threads=smk.threads,
    )
    print(json.dumps(summary), file=sys.stderr)


run_job(main)
