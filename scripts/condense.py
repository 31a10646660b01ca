"""Snakemake adapter: build one condensed set (method x IPC x seed)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.methods.condense import run_method

    inp = smk.input
    summary = run_method(
        inp.dataset,
        smk.wildcards.method,
        json.loads(smk.params.spec),
        int(smk.wildcards.ipc),
        int(smk.wildcards.seed),
        smk.output[0],
        inputs={k: v for k, v in inp.items() if k != "dataset"},
        device=smk.params.device,
        threads=smk.threads,
    )
    print(json.dumps(summary), file=sys.stderr)


run_job(main)
