"""Snakemake adapter: train and test a student on a condensed set or on the full training split."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.training.evaluate import evaluate_set
    from ddbench.training.protocols import resolve_protocol

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
        metrics = evaluate_set(
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


run_job(main)
