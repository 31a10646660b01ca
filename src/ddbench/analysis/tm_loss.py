"""Trajectory-matching loss of condensed sets ("TM-loss analysis").

After "Rethinking Dataset Distillation: Hard Truths about Soft Labels" (Figures 3 and 7): how
well does a condensed set, made by any method, reproduce a real training trajectory, and does
that predict its accuracy? For every condensed set and every configured expert architecture
(`tm_loss.experts`, entries of the `experts` section), for each start epoch t and each expert e:

    θ_0 = θ*_{e,t};  θ_{k+1} = θ_k − syn_lr · ∇θ CE(f(θ_k, x_k), y_k),  k = 0 … N − 1
    loss(e, t) = ||θ_N − θ*_{e,t+M}||² / ||θ*_{e,t} − θ*_{e,t+M}||²

(MTT's normalised loss, `ddbench.methods.matching.trajectory_matching_loss` without the graph).
The loss is averaged over the experts of the architecture; 1 means "no closer than where the
student started", 0 "lands exactly on the expert's later parameters".

- Minibatches (x_k, y_k): `batch` images (null = the whole set, then the order is irrelevant),
  consecutive slices of random permutations of the set drawn from a torch.Generator seeded by
  (seed of the set, expert, start epoch); no augmentation. The model runs in train mode
  (BatchNorm uses batch statistics, as in MTT's unroll).
- Targets y: the set's soft labels (probability rows) when it has them and `labels` is `auto`,
  else its hard labels; the record says which (`labels_used`).
- syn_lr: the configured value, or (null) the architecture's expert learning rate, the same for
  every set (a set's learned `syn_lr` is not used: every method is measured with one step size).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ddbench.errors import ConfigError

TM_LOSS_FORMAT = "ddbench.tm_loss/1"
DEFAULTS: dict[str, Any] = {
    "start_epochs": [0, 2, 4],
    "syn_steps": 20,
    "expert_epochs": 2,
    "syn_lr": None,
    "batch": None,
    "labels": "auto",
    "protocol": None,
    "student": None,
}


def resolved(spec: dict | None) -> dict | None:
    """The `tm_loss` config section with defaults filled in (None: no analysis)."""
    if spec is None:
        return None
    return {**DEFAULTS, **spec}


def batch_seed(seed: int, expert: int, start_epoch: int) -> int:
    """Seed of the minibatch order of one (set seed, expert, start epoch)."""
    return int(
        np.random.SeedSequence([int(seed), int(expert), int(start_epoch), 18]).generate_state(1)[0]
    )


def minibatches(images, targets, syn_steps: int, batch: int | None, generator):
    """`syn_steps` (x, y) batches: consecutive slices of random permutations of the set."""
    import torch

    n = len(images)
    bs = n if batch is None else min(int(batch), n)
    order = torch.empty(0, dtype=torch.long)
    for _ in range(int(syn_steps)):
        if len(order) < bs:
            order = torch.cat([order, torch.randperm(n, generator=generator)])
        pick, order = order[:bs], order[bs:]
        pick = pick.to(images.device)
        yield images[pick], targets[pick]


def tm_loss(
    forward, start, target, images, targets, *, syn_lr, syn_steps, batch, generator
) -> float:
    """The normalised TM loss of one start point (no graph kept; see the module docstring)."""
    from ddbench.methods.matching import trajectory_matching_loss

    batches = minibatches(images, targets, syn_steps, batch, generator)
    loss = trajectory_matching_loss(
        forward, start, target, batches, float(syn_lr), create_graph=False
    )
    return float(loss.detach())


def set_targets(cset, labels: str):
    """(targets as a numpy array, 'soft' | 'hard') of a condensed set under `labels`."""
    if labels == "auto" and cset.soft_labels is not None:
        return np.asarray(cset.soft_labels, dtype=np.float32), "soft"
    return np.asarray(cset.labels, dtype=np.int64), "hard"


def compute_tm_loss(
    dataset: str | os.PathLike | Any,
    condensed_path: str | os.PathLike,
    experts: dict[str, str | os.PathLike],
    out_json: str | os.PathLike,
    *,
    spec: dict,
    seed: int,
    device: str = "cpu",
    threads: int | None = None,
) -> dict:
    """TM loss of one condensed set against every experts folder in `experts` (name -> folder);
    writes the JSON target `out_json` (refused when its path names another cell). `dataset`:
    the prepared dataset file, or an already loaded ImageData."""
    import torch
    from torch.func import functional_call

    from ddbench.data.datasets import load_dataset
    from ddbench.data.h5io import config_sha256, file_sha256, write_json
    from ddbench.methods.base import CondensedSet
    from ddbench.stages.experts import load_experts
    from ddbench.training.engine import resolve_device, set_determinism
    from ddbench.workflow.paths import check_identity

    spec = resolved(spec)
    set_determinism(int(seed), threads)
    dev = resolve_device(device)
    data = dataset if hasattr(dataset, "train_labels") else load_dataset(dataset)
    shape = (data.in_chans, data.image_size, data.image_size)
    cset = CondensedSet.load(condensed_path, data.num_classes, shape)
    identity = {
        "dataset": data.name,
        "method": cset.method,
        "ipc": int(cset.ipc),
        "seed": int(seed),
    }
    check_identity(out_json, identity)  # before the work: a misfiled output is refused at once
    y_np, labels_used = set_targets(cset, spec["labels"])
    # the images a student trains on: a set recording decode_factor f (IDM) is matched on its
    # f x f upsampled parts, each with its stored image's label, as evaluate_set trains on them
    from ddbench.training.evaluate import decode_condensed

    soft = labels_used == "soft"
    images, hard_y, soft_y, decoded = decode_condensed(cset, condensed_path, y_np if soft else None)
    images = images.to(dev)
    targets = (soft_y if soft else hard_y).to(dev)
    M, N = int(spec["expert_epochs"]), int(spec["syn_steps"])
    rows, architectures = [], {}
    for name, folder in experts.items():
        ex = load_experts(folder, dataset=data.name)
        where = ex.folder / "experts.json"
        if list(ex.info.get("image_shape", shape)) != list(shape):
            raise ConfigError(
                f"{where}: experts were trained on images {ex.info.get('image_shape')}, the dataset has {list(shape)}"
            )
        for t in spec["start_epochs"]:
            if int(t) + M > ex.epochs:
                raise ConfigError(
                    f"tm_loss: start epoch {t} + expert_epochs {M} exceeds the {ex.epochs} "
                    f"epochs of experts {name!r} ({where})"
                )
        lr = spec["syn_lr"]
        if lr is None:
            lr = float(ex.info.get("spec", {}).get("lr", 0.01))
        torch.manual_seed(0)  # the model's own init is overwritten by every start vector
        model = ex.make_model(data).to(dev)
        model.train()
        for q in model.parameters():
            q.requires_grad_(False)

        def forward(flat, x, model=model, ex=ex):
            return functional_call(model, ex.unflatten(flat), (x,))

        for t in spec["start_epochs"]:
            per_expert = []
            for e in range(ex.n_experts):
                start = torch.from_numpy(ex.params(e, int(t))).to(dev)
                target = torch.from_numpy(ex.params(e, int(t) + M)).to(dev)
                gen = torch.Generator().manual_seed(batch_seed(seed, e, int(t)))
                per_expert.append(
                    tm_loss(
                        forward,
                        start,
                        target,
                        images,
                        targets,
                        syn_lr=lr,
                        syn_steps=N,
                        batch=spec["batch"],
                        generator=gen,
                    )
                )
            rows.append(
                {
                    "experts": name,
                    "model": ex.model,
                    "start_epoch": int(t),
                    "loss": float(np.mean(per_expert)),
                    "loss_per_expert": per_expert,
                }
            )
        architectures[name] = {
            "model": ex.model,
            "n_experts": ex.n_experts,
            "epochs": ex.epochs,
            "syn_lr": float(lr),
            "experts_json_sha256": file_sha256(where),
            "loss_mean": float(np.mean([r["loss"] for r in rows if r["experts"] == name])),
        }
    params = {
        k: spec[k]
        for k in ("start_epochs", "syn_steps", "expert_epochs", "syn_lr", "batch", "labels")
    }
    result = {
        "format": TM_LOSS_FORMAT,
        **identity,
        "labels_used": labels_used,
        "n_condensed": int(len(cset.labels)),
        "decode_factor": int(decoded.get("decode_factor", 1)),
        "n_matched_images": int(len(images)),
        "params": params,
        "architectures": architectures,
        "losses": rows,
        "definition": "||θ_N − θ*_{t+M}||² / ||θ*_t − θ*_{t+M}||², N SGD steps at syn_lr on the "
        "set from expert parameters at epoch t, mean over the experts of an architecture",
        "config_sha256": config_sha256({**params, "experts": list(experts)}),
        "condensed_sha256": file_sha256(condensed_path),
        "condensed_config_sha256": cset.config_sha256,
    }
    write_json(out_json, result)
    return result


def read_tm_loss(paths):
    """One row per (set, architecture, start epoch): dataset, method, ipc, seed, experts,
    model, start_epoch, loss, labels_used (JSON files or collected `.jsonl` files)."""
    import pandas as pd

    from ddbench.analysis.tables import _records, refuse_duplicates

    records = list(_records(paths))
    refuse_duplicates(records, ["dataset", "method", "ipc", "seed"], "tm_loss")
    rows = [
        {
            "dataset": r["dataset"],
            "method": r["method"],
            "ipc": int(r["ipc"]),
            "seed": int(r["seed"]),
            "labels_used": r.get("labels_used"),
            **{k: row[k] for k in ("experts", "model", "start_epoch", "loss")},
        }
        for r in records
        for row in r["losses"]
    ]
    cols = [
        "dataset",
        "method",
        "ipc",
        "seed",
        "labels_used",
        "experts",
        "model",
        "start_epoch",
        "loss",
    ]
    return pd.DataFrame(rows, columns=cols)


# ------------------------------------------------------------------ table and figure
def accuracy_of(metrics, protocol: str, student: str):
    """Mean ± std over seeds of the accuracy per (dataset, method, ipc) under one protocol and
    student (the whole-training-set row left out)."""
    import pandas as pd

    from ddbench.analysis.tables import REFERENCE, aggregate

    cols = ["dataset", "method", "ipc", "accuracy_mean", "accuracy_std"]
    if metrics is None or len(metrics) == 0:
        return pd.DataFrame(columns=cols)
    agg = aggregate(metrics)
    sel = agg[
        (agg["protocol"] == protocol) & (agg["student"] == student) & (agg["method"] != REFERENCE)
    ].copy()
    sel["ipc"] = sel["ipc"].astype(int)
    return sel[cols].reset_index(drop=True)


def tm_loss_summary(tm, accuracy):
    """The table: per (dataset, method, ipc, experts, start epoch) the loss mean ± std over
    seeds, plus a `mean` row per architecture (the mean over start epochs, per seed, then over
    seeds: the figure's x), with the accuracy of the (method, ipc)."""
    import pandas as pd

    from ddbench.analysis.tables import _std

    keys = ["dataset", "method", "ipc", "experts", "model"]
    if tm.empty:
        return pd.DataFrame(
            columns=[
                *keys,
                "start_epoch",
                "loss_mean",
                "loss_std",
                "seeds",
                "labels_used",
                "accuracy_mean",
                "accuracy_std",
            ]
        )
    tm = tm.copy()
    tm["ipc"] = tm["ipc"].astype(int)
    per_start = tm.copy()
    per_start["start_epoch"] = per_start["start_epoch"].map(lambda t: f"t={int(t)}")
    mean = tm.groupby([*keys, "seed", "labels_used"], sort=True, dropna=False)["loss"].mean()
    mean = mean.reset_index()
    mean["start_epoch"] = "mean"
    both = pd.concat([per_start, mean], ignore_index=True)
    out = (
        both.groupby([*keys, "start_epoch"], sort=False, dropna=False)
        .agg(
            loss_mean=("loss", "mean"),
            loss_std=("loss", _std),
            seeds=("seed", "count"),
            labels_used=("labels_used", lambda v: "/".join(sorted({str(x) for x in v}))),
        )
        .reset_index()
    )
    out = out.merge(accuracy, on=["dataset", "method", "ipc"], how="left")
    order = {s: i for i, s in enumerate(sorted(out["start_epoch"].unique(), key=_start_key))}
    out["_o"] = out["start_epoch"].map(order)
    out = out.sort_values(["dataset", "experts", "method", "ipc", "_o"]).drop(columns="_o")
    return out.reset_index(drop=True)


def _start_key(s: str):
    return (1, 0) if s == "mean" else (0, int(s.split("=")[1]))


def tm_loss_blocks(summary, protocol: str, student: str) -> list:
    from ddbench.analysis.tables import Block, _pivot, _seed_std

    blocks = []
    for (ds, name), part in summary.groupby(["dataset", "experts"], sort=True):
        model = part["model"].iloc[0]
        part = part.assign(start=part["start_epoch"])
        blocks.append(
            Block(
                title=f"{ds} · TM loss against experts `{name}` ({model})",
                mean=_pivot(part, "method", ["ipc", "start"], "loss_mean"),
                std=_seed_std(part, "method", ["ipc", "start"], "loss_std"),
                better="min",
                digits=3,
                note="||θ_N − θ*_{t+M}||² / ||θ*_t − θ*_{t+M}||², mean over experts; "
                "`mean` = over start epochs. Labels: "
                + ", ".join(
                    f"{m}: {lab}"
                    for m, lab in part.groupby("method")["labels_used"].first().items()
                ),
            )
        )
    corr = correlation_summary(figure_points(summary))
    for ds in sorted(corr["dataset"].unique()):
        blocks.append(correlation_block(corr, ds))
    for ds, part in summary.drop_duplicates(["dataset", "method", "ipc"]).groupby("dataset"):
        blocks.append(
            Block(
                title=f"{ds} · accuracy (%) under `{protocol}` / `{student}`",
                mean=_pivot(part, "method", ["ipc"], "accuracy_mean"),
                std=_seed_std(part, "method", ["ipc"], "accuracy_std"),
            )
        )
    return blocks


def write_tm_loss_table(tm_paths, metric_paths, stem, *, protocol: str, student: str):
    """`stem`.csv/.md/.tex/.html: the TM-loss table (see `tm_loss_summary`)."""
    from ddbench.analysis.tables import read_metrics, write_table_stem

    summary = tm_loss_summary(
        read_tm_loss(tm_paths), accuracy_of(read_metrics(metric_paths), protocol, student)
    )
    summary = summary.assign(protocol=protocol, student=student)
    write_table_stem(
        stem,
        summary,
        tm_loss_blocks(summary, protocol, student),
        "Trajectory-matching loss of the condensed sets (mean ± std over seeds)",
    )
    return summary


def figure_points(summary):
    """The figure's points: the `mean` rows of the table (one per dataset, architecture,
    method, IPC)."""
    return summary[summary["start_epoch"] == "mean"].reset_index(drop=True)


def correlations(x, y) -> tuple[float, float]:
    """(Spearman ρ, Pearson r) of two sequences; NaN with fewer than 3 points or no spread."""
    from scipy import stats

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    return float(stats.spearmanr(x, y)[0]), float(stats.pearsonr(x, y)[0])


def spearman_interval(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Approximate confidence interval of a Spearman ρ from n points: Fisher's z with the
    standard error sqrt(1.06 / (n - 3)) of Fieller, Hartley & Pearson (1957). NaN when n < 4
    or ρ is NaN; |ρ| = 1 gives a degenerate interval at ρ."""
    from scipy import stats

    if n < 4 or not np.isfinite(rho):
        return float("nan"), float("nan")
    if abs(rho) >= 1.0:
        return float(rho), float(rho)
    z = np.arctanh(rho)
    half = stats.norm.ppf(0.5 + level / 2) * np.sqrt(1.06 / (n - 3))
    return float(np.tanh(z - half)), float(np.tanh(z + half))


def correlation_summary(points):
    """Per dataset and expert architecture, the correlation of TM loss (mean over start
    epochs) with accuracy over the (method, IPC) points of `figure_points`: within each IPC
    (methods compared at one budget) and pooled over IPCs (what the figure's titles show).
    Columns: dataset, experts, model, scope, n, spearman, spearman_lo, spearman_hi, pearson."""
    import pandas as pd

    cols = ["dataset", "experts", "model", "scope", "n"]
    cols += ["spearman", "spearman_lo", "spearman_hi", "pearson"]
    rows = []
    part = points.dropna(subset=["loss_mean", "accuracy_mean"])
    for (ds, name), sel in part.groupby(["dataset", "experts"], sort=True):
        scopes = [(f"IPC {int(i)}", g) for i, g in sel.groupby(sel["ipc"].astype(int))]
        if len(scopes) > 1:
            scopes.append(("all IPCs", sel))
        for scope, g in scopes:
            rho, r = correlations(g["loss_mean"], g["accuracy_mean"])
            lo, hi = spearman_interval(rho, len(g))
            rows.append([ds, name, sel["model"].iloc[0], scope, len(g), rho, lo, hi, r])
    return pd.DataFrame(rows, columns=cols)


def correlation_block(corr, dataset: str):
    """The correlation table of one dataset (rows: expert architecture; columns: scope ×
    statistic)."""
    import pandas as pd

    from ddbench.analysis.tables import Block

    part = corr[corr["dataset"] == dataset]
    stats_ = [
        ("spearman", "Spearman ρ"),
        ("spearman_lo", "ρ 95 % low"),
        ("spearman_hi", "ρ 95 % high"),
        ("pearson", "Pearson r"),
    ]
    scopes = list(dict.fromkeys(part["scope"]))
    table = {}
    for scope in scopes:
        ns = sorted({int(n) for n in part.loc[part["scope"] == scope, "n"]})
        n_text = str(ns[0]) if len(ns) == 1 else f"{ns[0]}–{ns[-1]}"
        head = f"{scope} (n = {n_text})"
        for key, label in stats_:
            table[(head, label)] = {
                f"{row.experts} ({row.model})": getattr(row, key)
                for row in part[part["scope"] == scope].itertuples(index=False)
            }
    mean = pd.DataFrame(table)
    if not mean.empty:
        mean.columns = pd.MultiIndex.from_tuples(mean.columns)
    return Block(
        title=f"{dataset} · correlation of TM loss with accuracy",
        mean=mean,
        better=None,
        digits=2,
        row_header="experts",
        note="over (method, IPC) points, TM loss = mean over start epochs and seeds; a "
        "negative ρ means lower TM loss goes with higher accuracy. Within one IPC the "
        "methods are compared at one budget; pooled over IPCs the IPC itself drives much of "
        "the correlation. The ρ interval is Fisher's z with se = sqrt(1.06 / (n − 3)).",
    )


def _fmt_r(v: float) -> str:
    return "n/a" if not np.isfinite(v) else f"{v:+.2f}"


def plot_tm_loss_vs_accuracy(
    points, dataset: str, protocol: str, student: str, svg=None, png=None
) -> dict[str, str]:
    """One panel per architecture: x = TM loss (mean over start epochs), y = accuracy, one
    point per (method, IPC) with seed std error bars; Spearman and Pearson in each title.

    Returns architecture -> panel title."""
    import matplotlib.pyplot as plt

    from ddbench.analysis.figures import _empty, _method_palette, save_figure

    part = points[points["dataset"] == dataset].dropna(subset=["loss_mean"])
    if part.empty:
        save_figure(_empty(f"no TM-loss results for {dataset}"), svg, png)
        return {}
    names = sorted(part["experts"].unique())
    palette = _method_palette(part["method"])
    ipcs = sorted(part["ipc"].astype(int).unique())
    markers = dict(zip(ipcs, "osD^v<>ph*", strict=False))
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), squeeze=False)
    titles = {}
    for ax, name in zip(axes[0], names, strict=True):
        sel = part[part["experts"] == name]
        for row in sel.itertuples(index=False):
            ax.errorbar(
                row.loss_mean,
                row.accuracy_mean,
                xerr=row.loss_std,
                yerr=row.accuracy_std,
                fmt=markers.get(int(row.ipc), "o"),
                color=palette[row.method],
                ms=6,
                capsize=2,
                lw=0.8,
            )
        rho, r = correlations(sel["loss_mean"], sel["accuracy_mean"])
        title = (
            f"{name} ({sel['model'].iloc[0]})\n"
            f"Spearman ρ = {_fmt_r(rho)}, Pearson r = {_fmt_r(r)} (n = {len(sel)})"
        )
        by_ipc = sel.groupby(sel["ipc"].astype(int))
        if by_ipc.ngroups > 1:  # within one IPC: methods at one budget
            title += "\nwithin IPC: " + ", ".join(
                f"{i}: ρ = {_fmt_r(correlations(g['loss_mean'], g['accuracy_mean'])[0])}"
                for i, g in by_ipc
            )
        titles[name] = title
        ax.set_title(title, fontsize=8)
        ax.set_xlabel("TM loss (mean over start epochs)")
        ax.set_ylabel(f"test accuracy (%), {protocol} / {student}")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=c, marker="o", ls="", label=m) for m, c in palette.items()]
    handles += [
        Line2D(  # hollow black: marker shape only, not a method colour
            [], [], color="black", mfc="none", marker=markers[i], ls="", label=f"IPC {i}"
        )
        for i in ipcs
    ]
    axes[0][-1].legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{dataset}: trajectory-matching loss vs accuracy", fontsize=10)
    fig.tight_layout()
    save_figure(fig, svg, png)
    return titles
