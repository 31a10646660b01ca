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
metrics = run_job(
    evaluate_set,
    smk.input.dataset,
    smk.input.get("condensed"),
    protocol,
    smk.wildcards.student,
    json.loads(smk.params.student),
    int(smk.wildcards.seed),
    list(smk.input.teachers),
    smk.output.metrics,
    checkpoint_out=smk.params.checkpoint or None,
    reference_epochs=smk.params.get("reference_epochs"),
    device=smk.params.device,
    threads=smk.threads,
)
print(f"last-epoch test accuracy {metrics['accuracy']:.2f} %", file=sys.stderr)
