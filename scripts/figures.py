"""Snakemake adapter: draw the figure(s) of one figure rule (dispatch on the rule name)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from ddbench.runinfo import run_job, start_job  # noqa: E402

smk = start_job(snakemake)  # noqa: F821


def main():
    from ddbench.analysis import figures, tables
    from ddbench.workflow.studies import budget_sweeps

    rule = smk.rule
    out = smk.output
    ds = smk.wildcards.get("dataset")

    def max_classes():
        # classes in a gallery or t-SNE: the rule's param, else the config (schema default 10)
        if smk.params.get("max_classes") is not None:
            return int(smk.params.max_classes)
        return int(smk.config.get("figures", {}).get("max_classes", figures.FIGURE_MAX_CLASSES))

    def metrics():
        return tables.read_metrics(
            list(smk.input.get("metrics", [])) + list(smk.input.get("reference", []))
        )

    if rule == "figure_accuracy_vs_ipc":
        figures.plot_accuracy_vs_ipc(
            tables.aggregate(metrics()),
            ds,
            smk.wildcards.protocol,
            smk.wildcards.student,
            out.svg,
            out.png,
        )
    elif rule == "figure_label_gap":
        figures.plot_label_gap(metrics(), ds, out.svg, out.png)
    elif rule == "figure_accuracy_vs_cost":
        m = metrics()
        cost = tables.cost_table(tables.read_benchmarks(list(smk.input.benchmarks)), m)
        presets = m.groupby("protocol")["preset"].first().to_dict() if "preset" in m else None
        figures.plot_accuracy_vs_cost(
            tables.aggregate(m), cost, ds, out.svg, out.png, presets=presets
        )
    elif rule == "figure_prdc":
        figures.plot_prdc(tables.read_quality(list(smk.input.quality)), ds, out.svg, out.png)
    elif rule == "figure_tsne":
        summary = figures.write_tsne(
            smk.input.features,
            list(smk.input.condensed_features),
            smk.params.sets,
            ds,
            out.panels,
            out.svg,
            out.png,
            n_jobs=smk.threads,
            max_real=smk.params.tsne_max_real,
            max_classes=max_classes(),
        )
        print(f"t-SNE: {summary}", file=sys.stderr)
    elif rule == "figure_galleries":
        summary = figures.write_galleries(
            smk.input.dataset,
            list(smk.input.condensed),
            smk.params.cells,
            ds,
            out.panels,
            max_classes=max_classes(),
        )
        print(
            f"galleries: {summary['panels']} panels, {len(summary['unreadable'])} unreadable, "
            f"rows: {summary['class_rule']}",
            file=sys.stderr,
        )
    elif rule == "figure_teacher_student":
        m = metrics()
        ts = tables.teacher_student_matrix(tables.aggregate(m), tables.protocol_params(m))
        figures.plot_teacher_student(ts, ds, out.svg, out.png)
    elif rule == "figure_budget_curves":
        m = metrics()
        protocols = tables.protocol_params(m)
        sweeps = budget_sweeps(protocols)
        budgets = {p: protocols[p]["full_epochs"] for s in sweeps for p in s}
        figures.plot_budget_curves(
            tables.aggregate(m),
            sweeps,
            budgets,
            ds,
            out.svg,
            out.png,
            series=dict(smk.params.get("series") or {}),
        )
    else:
        raise ValueError(f"scripts/figures.py does not draw rule {rule!r}")
    print(f"{rule}: done", file=sys.stderr)


run_job(main)
