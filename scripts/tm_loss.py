"""Snakemake adapter: the TM-loss analysis (rule tm_loss: one set; tm_loss_table; the figure)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    import json

    from ddbench.analysis import tm_loss

    rule = smk.rule
    if rule == "tm_loss":
        names = json.loads(smk.params.spec)["experts"]
        folders = [smk.input.experts] if isinstance(smk.input.experts, str) else smk.input.experts
        result = tm_loss.compute_tm_loss(
            smk.input.dataset,
            smk.input.condensed,
            dict(zip(names, list(folders), strict=True)),
            smk.output[0],
            spec=json.loads(smk.params.spec),
            seed=int(smk.wildcards.seed),
            device=smk.params.device,
            threads=smk.threads,
        )
        print(
            f"TM loss ({result['labels_used']} labels):",
            {n: a["loss_mean"] for n, a in result["architectures"].items()},
            file=sys.stderr,
        )
    elif rule == "tm_loss_table":
        protocol, student = smk.params.accuracy
        tm_loss.write_tm_loss_table(
            list(smk.input.tm_loss),
            list(smk.input.metrics),
            str(smk.output.csv)[: -len(".csv")],
            protocol=protocol,
            student=student,
        )
    elif rule == "figure_tm_loss_vs_accuracy":
        from ddbench.analysis.tables import read_metrics

        protocol, student = smk.params.accuracy
        summary = tm_loss.tm_loss_summary(
            tm_loss.read_tm_loss(list(smk.input.tm_loss)),
            tm_loss.accuracy_of(read_metrics(list(smk.input.metrics)), protocol, student),
        )
        titles = tm_loss.plot_tm_loss_vs_accuracy(
            tm_loss.figure_points(summary),
            smk.wildcards.dataset,
            protocol,
            student,
            smk.output.svg,
            smk.output.png,
        )
        print("panels:", titles, file=sys.stderr)
    else:
        raise ValueError(f"scripts/tm_loss.py does not run rule {rule!r}")


run_job(main)
