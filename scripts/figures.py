"""Snakemake adapter: draw the figure(s) of one figure rule (dispatch on the rule name)."""

import sys

sys.stderr = open(snakemake.log[0], "w", buffering=1)  # noqa: F821

from ddbench.runinfo import log_job_context  # noqa: E402

log_job_context()

import numpy as np  # noqa: E402

from ddbench import figures, tables  # noqa: E402

smk = snakemake  # noqa: F821
rule = smk.rule
out = smk.output
ds = smk.wildcards.get("dataset")


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
    presets = m.groupby("protocol")["preset"].first().to_dict()
    figures.plot_accuracy_vs_cost(tables.aggregate(m), cost, ds, out.svg, out.png, presets=presets)
elif rule == "figure_prdc":
    figures.plot_prdc(tables.read_quality(list(smk.input.quality)), ds, out.svg, out.png)
elif rule == "figure_tsne":
    from ddbench.h5io import open_h5, read_array  # no torch in the report environment

    with open_h5(smk.input.features, "features") as f:
        real = read_array(f, "features", ndim=2, dtype=np.floating).astype(np.float32)
        real_labels = read_array(f, "labels", ndim=1).astype(np.int64)
    sets = {}
    for path in smk.input.condensed_features:
        with open_h5(path, "features") as f:
            key = (str(f.attrs["method"]), int(f.attrs["ipc"]))
            sets[key] = (
                read_array(f, "features", ndim=2).astype(np.float32),
                read_array(f, "labels", ndim=1).astype(np.int64),
            )
    figures.plot_tsne(
        real,
        real_labels,
        sets,
        int(real_labels.max()) + 1,
        ds,
        out.panels,
        out.svg,
        out.png,
        n_jobs=smk.threads,
        max_real=smk.params.tsne_max_real,
    )
elif rule == "figure_galleries":
    from pathlib import Path

    from ddbench.datasets import load_dataset
    from ddbench.methods.base import CondensedSet

    data = load_dataset(smk.input.dataset, train_images=False)
    folder = Path(out.panels)
    folder.mkdir(parents=True, exist_ok=True)
    for path, seed in zip(smk.input.condensed, smk.params.seeds, strict=True):
        cset = CondensedSet.load(path)
        stem = folder / f"{cset.method}_ipc{cset.ipc}_s{seed}"
        shown = min(cset.ipc, figures.GALLERY_MAX_PER_CLASS)
        figures.plot_gallery(
            cset.images,
            cset.labels,
            data.classes,
            f"{ds} · {cset.method} · IPC {cset.ipc} · seed {seed} ({shown} of {cset.ipc} per class)",
            f"{stem}.svg",
            f"{stem}.png",
        )
elif rule == "figure_teacher_student":
    m = metrics()
    ts = tables.teacher_student_matrix(tables.aggregate(m), tables.protocol_params(m))
    figures.plot_teacher_student(ts, ds, out.svg, out.png)
elif rule == "figure_budget_curves":
    m = metrics()
    protocols = tables.protocol_params(m)
    sweeps = tables.budget_sweeps(protocols)
    budgets = {p: protocols[p]["full_epochs"] for s in sweeps for p in s}
    figures.plot_budget_curves(tables.aggregate(m), sweeps, budgets, ds, out.svg, out.png)
else:
    raise ValueError(f"scripts/figures.py does not draw rule {rule!r}")
print(f"{rule}: done", file=sys.stderr)
