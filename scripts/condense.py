"""Snakemake adapter: build one condensed set (method x IPC x seed)."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context  # noqa: E402

log_job_context()

from ddbench.condense import run_method  # noqa: E402

inp = snakemake.input  # noqa: F821
summary = run_method(
    inp.dataset,
    snakemake.wildcards.method,  # noqa: F821
    json.loads(snakemake.params.spec),  # noqa: F821
    int(snakemake.wildcards.ipc),  # noqa: F821
    int(snakemake.wildcards.seed),  # noqa: F821
    snakemake.output[0],  # noqa: F821
    features=inp.get("features"),
    scores=inp.get("scores"),
    teacher=inp.get("teacher"),
    prior=inp.get("prior"),
    external=inp.get("external"),
    crops=inp.get("crops"),
    patches=inp.get("patches"),
    clusters=inp.get("clusters"),
    pool=inp.get("pool"),
    device=snakemake.params.device,  # noqa: F821
    threads=snakemake.threads,  # noqa: F821
)
print(json.dumps(summary), file=sys.stderr)
