"""Tables aggregated from the evaluation JSONs: mean ± std over seeds per grid cell."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from .h5io import atomic_path

CELL = ["dataset", "protocol", "student", "method", "ipc"]


def read_metrics(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per evaluation JSON."""
    rows = []
    for p in paths:
        with open(p) as fh:
            m = json.load(fh)
        m["path"] = str(p)
        rows.append(m)
    if not rows:
        return pd.DataFrame(columns=[*CELL, "seed", "accuracy"])
    df = pd.DataFrame(rows)
    df["ipc"] = df["ipc"].astype("Int64")
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of last-epoch test accuracy per cell (std over seeds, ddof=1; 0 for one seed)."""
    keys = [k for k in CELL if k in df]
    g = df.groupby(keys, dropna=False, sort=True)
    out = g.agg(
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", lambda s: float(s.std(ddof=1)) if len(s) > 1 else 0.0),
        seeds=("seed", "count"),
        student_model=("student_model", "first"),
        budget=("budget", "first"),
    ).reset_index()
    return out


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.2f} ± {std:.2f}"


def accuracy_markdown(agg: pd.DataFrame) -> str:
    """Markdown: one table per (dataset, protocol, student); methods as rows, IPC as columns."""
    lines = ["# Test accuracy (%, last epoch, mean ± std over seeds)", ""]
    for (ds, proto, student), part in agg.groupby(["dataset", "protocol", "student"], sort=True):
        model = part["student_model"].iloc[0]
        budgets = sorted({b for b in part["budget"].dropna()})
        lines.append(
            f"## {ds} · protocol `{proto}` · student `{student}` ({model}) · budget {', '.join(budgets)}"
        )
        lines.append("")
        condensed = part[part["method"] != "full_train"]
        ipcs = sorted(int(i) for i in condensed["ipc"].dropna().unique())
        header = "| method | " + " | ".join(f"IPC {i}" for i in ipcs) + " |"
        lines += [header, "|---|" + "---|" * len(ipcs)]
        for method, rows in condensed.groupby("method", sort=True):
            cells = []
            for i in ipcs:
                r = rows[rows["ipc"] == i]
                cells.append(
                    _fmt(r["accuracy_mean"].iloc[0], r["accuracy_std"].iloc[0]) if len(r) else "–"
                )
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        full = part[part["method"] == "full_train"]
        if len(full):
            r = full.iloc[0]
            lines.append(
                f"| *whole training set* ({r['budget']}) | "
                + " | ".join([_fmt(r["accuracy_mean"], r["accuracy_std"])] * max(1, len(ipcs)))
                + " |"
            )
        lines.append("")
    return "\n".join(lines) + "\n"


def write_accuracy_table(
    paths: list[str | os.PathLike], csv_out: str | os.PathLike, md_out: str | os.PathLike
) -> pd.DataFrame:
    """Aggregate the given evaluation JSONs and write CSV (long format) and Markdown."""
    agg = aggregate(read_metrics(paths))
    with atomic_path(csv_out) as tmp:
        agg.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(md_out) as tmp:
        Path(tmp).write_text(accuracy_markdown(agg))
    return agg
