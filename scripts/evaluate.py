"""Snakemake adapter: train and test a student on a condensed set or on the full training split."""

import json
import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context, run_job  # noqa: E402

log_job_context()

from ddbench.evaluate import evaluate_set  # noqa: E402
from ddbench.protocols import resolve_protocol  # noqa: E402

smk = snakemake  # noqa: F821
spec = json.loads(smk.params.protocol)
name = spec.pop("name")
spec.pop("extra", None)
protocol = resolve_protocol(name, spec)
# one seed per job, or every seed of the cell in turn (`group_seeds`: lists, in seed order)
grouped = smk.params.get("seeds") is not None
seeds = smk.params.seeds if grouped else [int(smk.wildcards.seed)]
condensed = smk.input.get("condensed")
sets = list(condensed) if grouped else [condensed]
outputs = list(smk.output.metrics) if grouped else [smk.output.metrics]
checkpoints = smk.params.checkpoint.split() or [None] * len(seeds)
for seed, cset, out, ckpt in zip(seeds, sets, outputs, checkpoints, strict=True):
    metrics = run_job(
        evaluate_set,
        smk.input.dataset,
        cset,
        protocol,
        smk.wildcards.student,
        json.loads(smk.params.student),
        int(seed),
        list(smk.input.teachers),
        out,
        checkpoint_out=ckpt,
        reference_epochs=smk.params.get("reference_epochs"),
        device=smk.params.device,
        threads=smk.threads,
    )
    print(f"seed {seed}: last-epoch test accuracy {metrics['accuracy']:.2f} %", file=sys.stderr)
