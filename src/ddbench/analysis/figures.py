"""Figures of the benchmark (seaborn on matplotlib's Agg backend), each saved as SVG and PNG.

Every function takes plain data frames / arrays (as produced by `ddbench.analysis.tables`) and output
paths, so a figure can be redrawn by hand from the CSV tables.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ddbench.analysis.tables import REFERENCE  # noqa: E402
from ddbench.data.h5io import atomic_path  # noqa: E402

PRESET_ORDER = ["hl", "sl", "slkd", "mt"]
PRDC_METRICS = ["precision", "recall", "density", "coverage", "mmd2"]
TSNE_MAX_REAL = 1000  # real points in each t-SNE fit
TSNE_MAX_CONDENSED = 1000  # condensed points in each t-SNE fit, shared by the sets of one IPC
GALLERY_MAX_PER_CLASS = 10
FIGURE_MAX_CLASSES = 10  # classes in a gallery or t-SNE (config `figures.max_classes`)
DPI = 110

matplotlib.rcParams["svg.hashsalt"] = "ddbench"  # stable SVG ids: same data, same file
sns.set_theme(context="paper", style="whitegrid")


def save_figure(
    fig: plt.Figure, svg: str | os.PathLike | None, png: str | os.PathLike | None
) -> None:
    """Write a figure as SVG and PNG (atomically, without timestamps), then close it."""
    for path, fmt, meta in ((svg, "svg", {"Date": None}), (png, "png", {"Software": None})):
        if path is None:
            continue
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches="tight", metadata=meta)
    plt.close(fig)


def _method_palette(methods: Sequence[str]) -> dict[str, tuple]:
    methods = sorted(set(methods))
    return dict(
        zip(methods, sns.color_palette("tab10", n_colors=max(len(methods), 1)), strict=False)
    )


def _plain_log_ticks(ax: plt.Axes) -> None:
    """Log axis with plain-number labels on the major ticks only (no overlapping 2×10⁰ labels)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _empty(message: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 2))
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", wrap=True)
    return fig


def _unreadable_text(reason: str) -> str:
    return f"unreadable: {reason}"


def _mark_unreadable(ax: plt.Axes, title: str, reason: str, fontsize: float = 6) -> None:
    """An empty panel that says why its input could not be drawn (red, so it is not missed)."""
    import textwrap

    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_color("tab:red")
    # wrap to the panel's width (matplotlib's own wrapping uses the figure's width)
    width_pt = ax.get_position().width * ax.figure.get_figwidth() * 72
    chars = max(20, int(width_pt / (0.6 * fontsize)) - 2)
    ax.text(
        0.5,
        0.5,
        textwrap.fill(_unreadable_text(reason), chars),
        transform=ax.transAxes,
        ha="center",
        va="center",
        fontsize=fontsize,
        color="tab:red",
    )
    ax.set_title(title, fontsize=8)


def _unreadable_figure(title: str, reason: str) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3))
    _mark_unreadable(ax, title, reason)
    return fig


def shown_classes(num_classes: int, max_classes: int | None = FIGURE_MAX_CLASSES) -> np.ndarray:
    """The classes a per-class figure shows: all of them up to `max_classes`, else ⌊i·K/m⌋ for i < m.

    With K classes and m = `max_classes` < K the shown classes are evenly spaced indices
    ⌊i·K/m⌋, i = 0 … m−1 (K = 1000, m = 10: 0, 100, …, 900). They depend on K and m alone, so
    every method, IPC and seed shows the same classes. `None` shows every class.
    """
    if max_classes is not None and max_classes < 1:
        raise ValueError(f"max_classes must be at least 1, got {max_classes}")
    if max_classes is None or num_classes <= max_classes:
        return np.arange(num_classes)
    return (np.arange(max_classes) * num_classes) // max_classes


def class_rule_text(num_classes: int, shown: Sequence[int]) -> str:
    """How the shown classes were chosen, for titles and captions ('' when all are shown)."""
    m = len(shown)
    if m >= num_classes:
        return ""
    listed = [str(int(c)) for c in shown]
    if m > 5:
        listed = [*listed[:3], "…", listed[-1]]
    return (
        f"{m} of {num_classes} classes, evenly spaced: index ⌊i·{num_classes}/{m}⌋, "
        f"i = 0…{m - 1} ({', '.join(listed)})"
    )


def _warn(message: str) -> None:
    """A `WARNING:` line on stderr (the job's log)."""
    print(f"WARNING: {message}", file=sys.stderr)


# ------------------------------------------------------------------ accuracy
def plot_accuracy_vs_ipc(
    agg: pd.DataFrame, dataset: str, protocol: str, student: str, svg=None, png=None
) -> None:
    """Accuracy (mean ± std over seeds) against IPC, one line per method, whole-set level dashed."""
    part = agg[
        (agg["dataset"] == dataset) & (agg["protocol"] == protocol) & (agg["student"] == student)
    ]
    cond = part[part["method"] != REFERENCE].dropna(subset=["ipc"])
    if cond.empty:
        save_figure(_empty(f"no evaluations for {dataset}/{protocol}/{student}"), svg, png)
        return
    palette = _method_palette(cond["method"])
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for method, rows in cond.groupby("method", sort=True):
        rows = rows.sort_values("ipc")
        ax.errorbar(
            rows["ipc"].astype(int),
            rows["accuracy_mean"],
            yerr=rows["accuracy_std"],
            label=method,
            color=palette[method],
            marker="o",
            capsize=3,
            lw=1.5,
        )
    ref = part[part["method"] == REFERENCE].dropna(subset=["accuracy_mean"])
    if len(ref):
        r = ref.iloc[0]
        ax.axhline(r["accuracy_mean"], ls="--", color="0.3", lw=1)
        ax.annotate(
            f"whole training set ({r.get('budget', '?')})",
            (0.01, r["accuracy_mean"]),
            xycoords=("axes fraction", "data"),
            va="bottom",
            fontsize=7,
            color="0.3",
        )
    ipcs = sorted(cond["ipc"].astype(int).unique())
    if len(ipcs) > 1 and ipcs[-1] / max(ipcs[0], 1) >= 5:
        ax.set_xscale("log")
    ax.set_xticks(ipcs, [str(i) for i in ipcs])
    ax.minorticks_off()
    ax.set_xlabel("images per class (IPC)")
    ax.set_ylabel("test accuracy (%, last epoch)")
    model = cond["student_model"].iloc[0] if "student_model" in cond else "?"
    budget = cond["budget"].iloc[0] if "budget" in cond else "?"
    ax.set_title(f"{dataset} · {protocol} · {student} ({model}) · {budget}", fontsize=9)
    ax.legend(fontsize=7, title="method", title_fontsize=7, loc="best")
    save_figure(fig, svg, png)


def protocol_order(presets: dict[str, str]) -> list[str]:
    """Protocols in label-regime order (hl, sl, slkd, mt), then by name."""
    return sorted(
        presets,
        key=lambda p: (PRESET_ORDER.index(presets[p]) if presets[p] in PRESET_ORDER else 99, p),
    )


def _presets(frame: pd.DataFrame) -> dict[str, str]:
    if "preset" in frame:
        return frame.groupby("protocol")["preset"].first().to_dict()
    return {p: p for p in frame["protocol"].unique()}


def plot_label_gap(metrics: pd.DataFrame, dataset: str, svg=None, png=None) -> None:
    """Per method, accuracy under every label regime (HL, SL, SL+KD, MT) side by side, one panel per IPC."""
    part = metrics[(metrics["dataset"] == dataset) & (metrics["method"] != REFERENCE)].copy()
    if part.empty:
        save_figure(_empty(f"no evaluations for {dataset}"), svg, png)
        return
    part["IPC"] = part["ipc"].astype(int)
    order = protocol_order(_presets(part))
    row = "student" if part["student"].nunique() > 1 else None
    g = sns.catplot(
        data=part,
        kind="bar",
        x="method",
        y="accuracy",
        hue="protocol",
        hue_order=order,
        col="IPC",
        row=row,
        errorbar="sd",
        capsize=0.1,
        err_kws={"linewidth": 1},
        palette="Set2",
        height=3.2,
        aspect=1.3,
        order=sorted(part["method"].unique()),
    )
    g.set_axis_labels("", "test accuracy (%)")
    for ax in g.axes.flat:
        ax.tick_params(axis="x", rotation=30, labelsize=7)
    g.figure.suptitle(
        f"{dataset}: label-regime gap (error bars: std over seeds)", y=1.03, fontsize=10
    )
    save_figure(g.figure, svg, png)


def plot_accuracy_vs_cost(
    agg: pd.DataFrame,
    cost: pd.DataFrame,
    dataset: str,
    svg=None,
    png=None,
    presets: dict[str, str] | None = None,
) -> None:
    """Accuracy against construction time (log x), one panel per protocol, colour = method, marker = IPC."""
    part = agg[(agg["dataset"] == dataset) & (agg["method"] != REFERENCE)].copy()
    c = cost[cost["dataset"] == dataset] if len(cost) else cost
    if part.empty or c.empty or "construct_s_mean" not in c:
        save_figure(_empty(f"no cost data for {dataset}"), svg, png)
        return
    part["ipc"] = part["ipc"].astype(int)
    c = c.assign(ipc=c["ipc"].astype(int))
    data = part.merge(c[["method", "ipc", "construct_s_mean"]], on=["method", "ipc"], how="inner")
    data = data.dropna(subset=["construct_s_mean", "accuracy_mean"])
    if data.empty:
        save_figure(_empty(f"no evaluated set of {dataset} has a construction time"), svg, png)
        return
    data["IPC"] = data["ipc"].astype(str)
    g = sns.relplot(
        data=data,
        x="construct_s_mean",
        y="accuracy_mean",
        hue="method",
        style="IPC",
        col="protocol",
        col_order=[
            p for p in protocol_order(presets or _presets(data)) if p in set(data["protocol"])
        ],
        col_wrap=min(4, data["protocol"].nunique()),
        s=60,
        height=3,
        aspect=1.1,
        palette=_method_palette(data["method"]),
        facet_kws={"sharex": True, "sharey": False},
    )
    g.set(xscale="log")
    for ax in g.axes.flat:
        _plain_log_ticks(ax)
    g.set_axis_labels("construction time (s, log)", "test accuracy (%)")
    g.figure.suptitle(f"{dataset}: accuracy vs construction cost", y=1.03, fontsize=10)
    save_figure(g.figure, svg, png)


# ------------------------------------------------------------------ quality
def plot_prdc(quality: pd.DataFrame, dataset: str, svg=None, png=None) -> None:
    """Precision, recall, density, coverage and MMD² per method (bars per IPC, std over seeds)."""
    part = quality[quality["dataset"] == dataset] if len(quality) else quality
    if part.empty:
        save_figure(_empty(f"no quality results for {dataset}"), svg, png)
        return
    present = [m for m in PRDC_METRICS if m in part]
    if not present:
        save_figure(_empty(f"no quality metrics in the results of {dataset}"), svg, png)
        return
    long = part.melt(
        id_vars=["method", "ipc", "seed"], value_vars=present, var_name="metric", value_name="value"
    )
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long["IPC"] = long["ipc"].astype(int).astype(str)
    g = sns.catplot(
        data=long,
        kind="bar",
        x="method",
        y="value",
        hue="IPC",
        col="metric",
        col_order=present,
        errorbar="sd",
        sharey=False,
        height=2.8,
        aspect=1.0,
        palette="crest",
        order=sorted(long["method"].unique()),
    )
    undefined = long[long["value"].isna()].groupby("metric")["IPC"].unique().to_dict()
    for metric, ax in g.axes_dict.items():
        ax.set_title("MMD² (lower is better)" if metric == "mmd2" else metric, fontsize=9)
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        if metric in undefined:
            ax.text(
                0.5,
                0.97,
                "undefined at IPC " + ", ".join(sorted(undefined[metric], key=int)),
                transform=ax.transAxes,
                ha="center",
                va="top",
                fontsize=7,
                color="0.35",
            )
    g.set_axis_labels("", "")
    teacher = part["teacher"].iloc[0] if "teacher" in part else "?"
    k = part["k"].iloc[0] if "k" in part else "?"
    g.figure.suptitle(
        f"{dataset}: quality in teacher `{teacher}` features (k = {k}, class means)",
        y=1.04,
        fontsize=10,
    )
    save_figure(g.figure, svg, png)


def _class_balanced_subsample(
    labels: np.ndarray, limit: int, rng: np.random.Generator
) -> np.ndarray:
    """At most max(`limit`, number of classes) indices, evenly spread over classes (sorted)."""
    if len(labels) <= limit:
        return np.arange(len(labels))
    classes = np.unique(labels)
    per = max(1, limit // len(classes))
    chosen = []
    for c in classes:
        idx = np.flatnonzero(labels == c)
        chosen.append(rng.choice(idx, size=min(per, len(idx)), replace=False))
    return np.sort(np.concatenate(chosen))


def tsne_layout(
    real: np.ndarray,
    real_labels: np.ndarray,
    sets: dict[str, tuple[np.ndarray, np.ndarray]],
    *,
    max_real: int = TSNE_MAX_REAL,
    max_condensed: int = TSNE_MAX_CONDENSED,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> tuple[np.ndarray, np.ndarray, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """One joint t-SNE of a real subsample and every given set: (real xy, real labels, {name: (xy, labels)}).

    The real subsample (≤ max_real, class balanced) is the same for every set; the sets share
    `max_condensed` points, each subsampled class-balanced when over its share.
    """
    from sklearn.manifold import TSNE

    rng = np.random.default_rng(random_state)
    ridx = _class_balanced_subsample(real_labels, max_real, rng)
    share = max(1, max_condensed // max(1, len(sets)))
    blocks, names, labels = [real[ridx]], [], []
    for name, (feats, lab) in sets.items():
        sidx = _class_balanced_subsample(lab, share, rng)
        blocks.append(feats[sidx])
        names.append((name, len(sidx)))
        labels.append(lab[sidx])
    x = np.concatenate(blocks).astype(np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    perplexity = float(min(30.0, max(2.0, (len(x) - 1) / 3.0)))
    xy = TSNE(
        n_components=2, perplexity=perplexity, init="pca", random_state=random_state, n_jobs=n_jobs
    ).fit_transform(x)
    out, start = {}, len(ridx)
    for (name, n), lab in zip(names, labels, strict=True):
        out[name] = (xy[start : start + n], lab)
        start += n
    return xy[: len(ridx)], real_labels[ridx], out


def plot_tsne_panel(
    ax: plt.Axes,
    real_xy: np.ndarray,
    real_labels: np.ndarray,
    set_xy: np.ndarray,
    set_labels: np.ndarray,
    num_classes: int,
    title: str,
) -> None:
    """Real points small and faint, the condensed set's points large with a black edge; colour = class."""
    pal = sns.color_palette("tab10" if num_classes <= 10 else "husl", n_colors=num_classes)
    ax.scatter(real_xy[:, 0], real_xy[:, 1], c=[pal[c] for c in real_labels], s=4, alpha=0.25, lw=0)
    ax.scatter(
        set_xy[:, 0],
        set_xy[:, 1],
        c=[pal[c] for c in set_labels],
        s=40,
        edgecolors="black",
        linewidths=0.8,
    )
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_tsne(
    real_feats: np.ndarray,
    real_labels: np.ndarray,
    sets: dict[tuple[str, int], tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    dataset: str,
    out_dir: str | os.PathLike,
    overview_svg=None,
    overview_png=None,
    n_jobs: int | None = None,
    max_real: int = TSNE_MAX_REAL,
    unreadable: dict[tuple[str, int], str] | None = None,
    max_classes: int | None = FIGURE_MAX_CLASSES,
) -> list[Path]:
    """t-SNE per IPC (real subsample + every method's set of that IPC): one panel file per set and an overview grid.

    `unreadable` maps (method, IPC) of sets that could not be read to the reason: each gets a
    marked empty panel (file and overview cell) and takes no part in the t-SNE fits.
    With more than `max_classes` classes only the classes of `shown_classes` (evenly spaced
    indices ⌊i·K/m⌋) are embedded and drawn, coloured by their rank among them, and the titles
    state the rule; with at most `max_classes` classes every point is used as before.
    """
    unreadable = dict(unreadable or {})
    shown = shown_classes(num_classes, max_classes)
    rule = class_rule_text(num_classes, shown)
    if rule:  # keep the shown classes only, relabelled 0..m-1 (their colour order)
        rank = np.full(num_classes, -1, dtype=np.int64)
        rank[shown] = np.arange(len(shown))

        def shown_only(feats: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            keep = rank[labels] >= 0
            return feats[keep], rank[labels[keep]]

        real_feats, real_labels = shown_only(real_feats, real_labels)
        sets = {key: shown_only(*pair) for key, pair in sets.items()}
        num_classes = len(shown)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    keys = set(sets) | set(unreadable)
    if not keys:
        save_figure(_empty(f"no condensed sets of {dataset} to place"), overview_svg, overview_png)
        return []
    ipcs = sorted({ipc for _, ipc in keys})
    methods = sorted({m for m, _ in keys})
    fig, axes = plt.subplots(
        len(methods), len(ipcs), figsize=(2.6 * len(ipcs), 2.6 * len(methods)), squeeze=False
    )
    written = []
    for j, ipc in enumerate(ipcs):
        group = {m: sets[(m, i)] for (m, i) in sets if i == ipc}
        placed = {}
        if group:
            real_xy, real_lab, placed = tsne_layout(
                real_feats, real_labels, group, max_real=max_real, n_jobs=n_jobs
            )
        for i, method in enumerate(methods):
            ax = axes[i, j]
            stem = out_dir / f"{method}_ipc{ipc}"
            if (method, ipc) in unreadable:
                reason = unreadable[(method, ipc)]
                _mark_unreadable(ax, f"{method} · IPC {ipc}", reason)
                single = _unreadable_figure(f"{dataset} · {method} · IPC {ipc} (t-SNE)", reason)
            elif method in placed:
                xy, lab = placed[method]
                plot_tsne_panel(
                    ax, real_xy, real_lab, xy, lab, num_classes, f"{method} · IPC {ipc}"
                )
                single, sax = plt.subplots(figsize=(4, 4))
                plot_tsne_panel(
                    sax,
                    real_xy,
                    real_lab,
                    xy,
                    lab,
                    num_classes,
                    f"{dataset} · {method} · IPC {ipc} (t-SNE)" + (f"\n{rule}" if rule else ""),
                )
            else:
                ax.axis("off")
                continue
            save_figure(single, f"{stem}.svg", f"{stem}.png")
            written += [Path(f"{stem}.svg"), Path(f"{stem}.png")]
    fig.suptitle(
        f"{dataset}: condensed sets (large, black edge) over real training data (t-SNE)"
        + (f"\n{rule}" if rule else ""),
        fontsize=10,
    )
    fig.tight_layout()
    save_figure(fig, overview_svg, overview_png)
    return written


def _read_set_features(
    path: str | os.PathLike, method: str, ipc: int, width: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of one condensed set's quality file, checked against the real ones."""
    from ddbench.data.h5io import open_h5, read_array
    from ddbench.errors import DataFileError

    with open_h5(path, "features") as f:
        found = (str(f.attrs.get("method")), int(f.attrs.get("ipc", -1)))
        feats = read_array(f, "features", ndim=2, dtype=np.floating).astype(np.float32)
        labels = read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64)
    if found != (method, ipc):
        raise DataFileError(f"{path}: holds {found[0]} IPC {found[1]}, expected {method} IPC {ipc}")
    if len(feats) != len(labels) or not len(feats):
        raise DataFileError(f"{path}: {len(feats)} feature rows but {len(labels)} labels")
    if feats.shape[1] != width:
        raise DataFileError(f"{path}: {feats.shape[1]} features per image, the real ones {width}")
    if not np.isfinite(feats).all():
        raise DataFileError(f"{path}: features contain NaN or infinite values")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise DataFileError(f"{path}: labels outside 0..{num_classes - 1}")
    return feats, labels


def _read_real_features(
    path: str | os.PathLike, max_classes: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """(features, labels, K) of the real split: every row, or with more than `max_classes`
    classes only the rows of the shown classes, read in blocks (not the whole [N, D] matrix)."""
    from ddbench.data.h5io import open_h5, read_array
    from ddbench.errors import DataFileError

    with open_h5(path, "features") as f:
        labels = read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64)
        if "features" not in f:
            raise DataFileError(f"{path}: missing dataset 'features'")
        ds = f["features"]
        if ds.ndim != 2 or not np.issubdtype(ds.dtype, np.floating):
            raise DataFileError(
                f"{path}: 'features' has shape {ds.shape} and dtype {ds.dtype}, expected 2-D float"
            )
        if not len(labels) or ds.shape[0] != len(labels):
            raise DataFileError(f"{path}: {ds.shape[0]} feature rows and {len(labels)} labels")
        num_classes = int(labels.max()) + 1
        shown = shown_classes(num_classes, max_classes)
        if len(shown) == num_classes:
            feats = read_array(f, "features", ndim=2, dtype=np.floating)
            return feats.astype(np.float32), labels, num_classes
        keep = np.isin(labels, shown)
        step = max(1, (64 << 20) // max(1, ds.shape[1] * ds.dtype.itemsize))
        blocks = [np.zeros((0, ds.shape[1]), dtype=np.float32)]
        try:
            for start in range(0, len(labels), step):
                if keep[start : start + step].any():
                    blocks.append(ds[start : start + step][keep[start : start + step]])
        except OSError as exc:
            raise DataFileError(f"{path}: cannot read 'features' (corrupt?): {exc}") from None
    return np.concatenate(blocks).astype(np.float32), labels[keep], num_classes


def write_tsne(
    features_path: str | os.PathLike,
    condensed_paths: Sequence[str | os.PathLike],
    sets: Sequence[tuple[str, int]],
    dataset: str,
    out_dir: str | os.PathLike,
    overview_svg=None,
    overview_png=None,
    *,
    n_jobs: int | None = None,
    max_real: int = TSNE_MAX_REAL,
    max_classes: int | None = FIGURE_MAX_CLASSES,
) -> dict:
    """The t-SNE figures of one dataset from the quality feature files (the figure_tsne job).

    `condensed_paths[i]` is the feature file of set `sets[i]` = (method, IPC). A set file that
    cannot be read or does not match the real features gets a marked panel and a WARNING line,
    and the other panels are drawn as usual; an unreadable real-feature file stops the job.
    At most `max_classes` classes are drawn (`shown_classes`: evenly spaced indices ⌊i·K/m⌋).
    """
    real, real_labels, num_classes = _read_real_features(features_path, max_classes)
    loaded, unreadable = {}, {}
    for path, (method, ipc) in zip(condensed_paths, sets, strict=True):
        key = (str(method), int(ipc))
        try:
            loaded[key] = _read_set_features(path, *key, real.shape[1], num_classes)
        except (OSError, LookupError, ValueError) as exc:  # DataFileError is a ValueError
            _warn(f"t-SNE of {key[0]} IPC {key[1]} drawn as an unreadable panel: {exc}")
            unreadable[key] = str(exc)
    plot_tsne(
        real,
        real_labels,
        loaded,
        num_classes,
        dataset,
        out_dir,
        overview_svg,
        overview_png,
        n_jobs=n_jobs,
        max_real=max_real,
        unreadable=unreadable,
        max_classes=max_classes,
    )
    shown = shown_classes(num_classes, max_classes)
    rule = class_rule_text(num_classes, shown) or f"all {num_classes} classes"
    print(f"t-SNE of {dataset}: {rule}", file=sys.stderr)
    return {"sets": len(loaded), "unreadable": len(unreadable)}


# ------------------------------------------------------------------ galleries
def image_mosaic(
    images: np.ndarray, labels: np.ndarray, num_classes: int, per_class: int
) -> np.ndarray:
    """[rows·(H+1), cols·(W+1), C] mosaic in [0,1]: one row per class, up to `per_class` images."""
    _, c, h, w = images.shape
    cols = max(1, min(per_class, max(int((labels == k).sum()) for k in range(num_classes))))
    mosaic = np.ones((num_classes * (h + 1) - 1, cols * (w + 1) - 1, c), dtype=np.float32)
    for k in range(num_classes):
        for j, idx in enumerate(np.flatnonzero(labels == k)[:cols]):
            mosaic[k * (h + 1) : k * (h + 1) + h, j * (w + 1) : j * (w + 1) + w] = images[
                idx
            ].transpose(1, 2, 0)
    return mosaic


def plot_gallery(
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    title: str,
    svg=None,
    png=None,
    per_class: int = GALLERY_MAX_PER_CLASS,
    max_classes: int | None = FIGURE_MAX_CLASSES,
) -> np.ndarray:
    """A condensed set as an image grid: one row per shown class (first `per_class` images).

    With more than `max_classes` classes the rows are the classes of `shown_classes` (evenly
    spaced indices ⌊i·K/m⌋, the same for every set), labelled `index name`, and the title
    states the rule; otherwise every class in order. Returns the shown class indices.
    """
    shown = shown_classes(len(class_names), max_classes)
    rule = class_rule_text(len(class_names), shown)
    if rule:
        rank = np.full(len(class_names), -1, dtype=np.int64)
        rank[shown] = np.arange(len(shown))
        keep = rank[labels] >= 0
        images, labels = images[keep], rank[labels[keep]]
        class_names = [f"{int(c)} {class_names[int(c)]}" for c in shown]
        title = f"{title}\n{rule}"
    k = len(class_names)
    mosaic = image_mosaic(images, labels, k, per_class)
    h, w = mosaic.shape[:2]
    scale = max(0.5, min(8.0, 6.0 / max(w, h) * 100)) / 100
    fig, ax = plt.subplots(figsize=(max(3.0, w * scale + 1.2), max(2.0, h * scale + 0.6)))
    if mosaic.shape[2] == 1:
        ax.imshow(mosaic[:, :, 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(mosaic, 0, 1), interpolation="nearest")
    row_h = (h + 1) / k
    ax.set_yticks(
        [row_h * (i + 0.5) - 0.5 for i in range(k)], [str(n) for n in class_names], fontsize=7
    )
    ax.set_xticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title, fontsize=8)
    save_figure(fig, svg, png)
    return shown


def write_galleries(
    dataset_path: str | os.PathLike,
    condensed_paths: Sequence[str | os.PathLike],
    cells: Sequence[tuple[str, int, int]],
    dataset: str,
    folder: str | os.PathLike,
    per_class: int = GALLERY_MAX_PER_CLASS,
    max_classes: int | None = FIGURE_MAX_CLASSES,
) -> dict:
    """One gallery per condensed set: `folder/{method}_ipc{ipc}_s{seed}.{svg,png}` (the figure_galleries job).

    Each shows at most `max_classes` class rows: every class up to that, else the evenly spaced
    classes ⌊i·K/m⌋ of `shown_classes` (the same rows in every gallery of the dataset).

    `condensed_paths[i]` is the set `cells[i]` = (method, IPC, seed). A set that cannot be
    read or fails validation against the dataset gets a marked empty panel under its own name
    (`unreadable: <reason>`) and a WARNING line, so one broken file costs one panel, not the
    folder. An unreadable dataset file (class names, image shape) stops the job.
    """
    from ddbench.data.datasets import load_dataset
    from ddbench.errors import DataFileError
    from ddbench.methods.base import CondensedSet

    data = load_dataset(dataset_path, train_images=False)
    shape = (data.in_chans, data.image_size, data.image_size)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    unreadable = {}
    for path, (method, ipc, seed) in zip(condensed_paths, cells, strict=True):
        stem = folder / f"{method}_ipc{ipc}_s{seed}"
        title = f"{dataset} · {method} · IPC {ipc} · seed {seed}"
        try:
            cset = CondensedSet.load(path, data.num_classes, shape)
            if (cset.method, cset.ipc) != (method, int(ipc)):
                raise DataFileError(
                    f"{path}: holds {cset.method} IPC {cset.ipc}, expected {method} IPC {ipc}"
                )
        except (OSError, LookupError, ValueError) as exc:  # DataFileError is a ValueError
            _warn(f"gallery {stem.name} drawn as an unreadable panel: {exc}")
            unreadable[stem.name] = str(exc)
            save_figure(_unreadable_figure(title, str(exc)), f"{stem}.svg", f"{stem}.png")
            continue
        shown = min(cset.ipc, per_class)
        plot_gallery(
            cset.images,
            cset.labels,
            data.classes,
            f"{title} ({shown} of {cset.ipc} per class)",
            f"{stem}.svg",
            f"{stem}.png",
            per_class=per_class,
            max_classes=max_classes,
        )
    rows = shown_classes(data.num_classes, max_classes)
    return {
        "panels": len(cells),
        "unreadable": unreadable,
        "classes": [int(c) for c in rows],
        "class_rule": class_rule_text(data.num_classes, rows) or f"all {data.num_classes} classes",
    }


# ------------------------------------------------------------------ studies
def plot_teacher_student(ts: pd.DataFrame, dataset: str, svg=None, png=None) -> None:
    """Heatmap per IPC: rows protocol (teachers), columns students, accuracy averaged over methods."""
    part = ts[ts["dataset"] == dataset].dropna(subset=["accuracy_mean"])
    if part.empty:
        save_figure(_empty(f"no teacher-label evaluations for {dataset}"), svg, png)
        return
    ipcs = sorted(part["ipc"].astype(int).unique())
    fig, axes = plt.subplots(
        1,
        len(ipcs),
        figsize=(3.2 * len(ipcs) + 1, 0.6 * part["teachers"].nunique() + 1.6),
        squeeze=False,
    )
    vmin, vmax = part["accuracy_mean"].min(), part["accuracy_mean"].max()
    for ax, ipc in zip(axes[0], ipcs, strict=True):
        mat = part[part["ipc"].astype(int) == ipc].pivot_table(
            index="teachers", columns="student", values="accuracy_mean"
        )
        sns.heatmap(
            mat,
            annot=True,
            fmt=".1f",
            cmap="viridis",
            vmin=vmin,
            vmax=vmax,
            ax=ax,
            cbar=ax is axes[0][-1],
        )
        ax.set_title(f"IPC {ipc}", fontsize=9)
        ax.set_xlabel("student")
        ax.set_ylabel("protocol (teachers)" if ax is axes[0][0] else "")
    fig.suptitle(f"{dataset}: teacher × student accuracy (%), mean over methods", fontsize=10)
    fig.tight_layout()
    save_figure(fig, svg, png)


def join_series(part: pd.DataFrame, series: dict[str, list[str]]) -> pd.DataFrame:
    """Rename the methods of each series to its name; refuse a cell holding two of them."""
    for name, members in series.items():
        mine = part["method"].isin(members)
        keys = [k for k in ("dataset", "protocol", "student", "ipc") if k in part.columns]
        clash = part[mine].groupby(keys)["method"].nunique()
        if (clash > 1).any():
            cell = dict(zip(keys, clash[clash > 1].index[0], strict=True))
            raise ValueError(
                f"figures.series.{name}: cell {cell} evaluates more than one of {members}; "
                "a series joins variants that are each evaluated in different cells"
            )
        part.loc[mine, "method"] = name
    return part


def plot_budget_curves(
    agg: pd.DataFrame,
    sweeps: list[list[str]],
    budgets: dict[str, float],
    dataset: str,
    svg=None,
    png=None,
    series: dict[str, list[str]] | None = None,
) -> None:
    """Accuracy against the compute budget (full-set epochs, log x) for every protocol sweep.

    `series` (config `figures.series`): NAME -> methods drawn as one line called NAME, e.g.
    the per-budget variants of one method, each evaluated only at its own budget.
    """
    part = join_series(
        agg[(agg["dataset"] == dataset) & (agg["method"] != REFERENCE)].copy(), series or {}
    )
    rows = []
    for i, names in enumerate(sweeps):
        sel = part[part["protocol"].isin(names)].copy()
        sel["sweep"] = " / ".join(names)
        sel["sweep_id"] = i
        rows.append(sel)
    data = pd.concat(rows) if rows else part.iloc[0:0]
    if data.empty:
        save_figure(_empty(f"no budget sweep for {dataset}"), svg, png)
        return
    data["full-set epochs"] = data["protocol"].map(budgets)
    data = data.dropna(subset=["full-set epochs", "accuracy_mean"])
    if data.empty:
        save_figure(_empty(f"no budget sweep of {dataset} has evaluations and budgets"), svg, png)
        return
    data["IPC"] = data["ipc"].astype(int)
    g = sns.relplot(
        data=data,
        kind="line",
        x="full-set epochs",
        y="accuracy_mean",
        hue="method",
        col="IPC",
        row="sweep",
        marker="o",
        height=3,
        aspect=1.2,
        palette=_method_palette(data["method"]),
        facet_kws={"sharey": False},
    )
    g.set(xscale="log")
    for ax in g.axes.flat:
        _plain_log_ticks(ax)
    g.set_axis_labels("compute budget (full-set epochs, log)", "test accuracy (%)")
    g.figure.suptitle(f"{dataset}: accuracy vs compute budget", y=1.03, fontsize=10)
    save_figure(g.figure, svg, png)
