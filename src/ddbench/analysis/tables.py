"""Tables aggregated from the evaluation, quality and benchmark files.

Every table is written four ways from one long-format frame: CSV (the data, one row per cell),
Markdown, LaTeX (booktabs) and HTML (for the Snakemake report); the best value of each column
is bold. Accuracies are last-epoch top-1 in percent, mean ± std over seeds (std ddof=1, 0 for
one seed). Which studies the protocols allow (`ddbench.workflow.studies`) is decided on plain
protocol dicts, the same way the workflow decides it while building the DAG.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ddbench.data.h5io import CONTENT_KEY, DataFileError, atomic_path, json_content_sha256
from ddbench.workflow.paths import check_identity
from ddbench.workflow.studies import (
    augmentation_twins,
    hard_label_protocol,
    has_augmentation,
    teacher_sets,
)

CELL = ["dataset", "protocol", "student", "method", "ipc"]
REFERENCE = "full_train"
LRS_WEIGHT = 0.5  # DD-Ranking's default w (leaderboard)
ARS_WEIGHT = 0.5  # DD-Ranking's default gamma


# ================================================================== reading
def _records(paths: list[str | os.PathLike]):
    """Yield one dict per result: a JSON file, or each line of a collected `.jsonl` file.

    Every record carries `path`, the result file it came from (collected lines keep theirs).
    A JSON file is checked as `load_result` checks it.
    """
    for p in paths:
        if str(p).endswith(".jsonl"):
            with open(p) as fh:
                for n, line in enumerate(fh, 1):
                    if line.strip():
                        try:
                            yield json.loads(line)
                        except json.JSONDecodeError as exc:
                            raise DataFileError(
                                f"{p}: line {n} is not valid JSON ({exc})"
                            ) from None
        else:
            yield load_result(p)


def load_result(path: str | os.PathLike) -> dict:
    """Read one result JSON (evaluation or quality) and check that it is what its path says.

    Refused with DataFileError naming the file: invalid JSON, content edited after it was
    written (its `content_sha256` no longer matches), or a recorded dataset / protocol /
    student / method / IPC / seed other than the path's (a copied or moved file).
    """
    try:
        with open(path) as fh:
            record = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{path}: not valid JSON (truncated or corrupt?): {exc}") from None
    if not isinstance(record, dict):
        raise DataFileError(f"{path}: expected a JSON object, got {type(record).__name__}")
    if CONTENT_KEY in record and json_content_sha256(record) != record[CONTENT_KEY]:
        raise DataFileError(
            f"{path}: content changed after it was written (content_sha256 does not match); "
            "delete it and let the workflow rebuild it"
        )
    check_identity(path, record)
    record["path"] = str(path)
    return record


def refuse_duplicates(records: list[dict], keys: list[str], what: str) -> None:
    """DataFileError when two records claim the same (cell, seed): one of them is misfiled."""
    seen: dict[tuple, str] = {}
    for r in records:
        key = tuple(r.get(k) for k in keys)
        if key in seen:
            cell = ", ".join(f"{k}={v}" for k, v in zip(keys, key, strict=True))
            raise DataFileError(
                f"two {what} records for one cell and seed ({cell}): {seen[key]} and "
                f"{r.get('path', '?')}; one of them was copied or moved, delete it and rerun"
            )
        seen[key] = str(r.get("path", "?"))


EVAL_KEYS = [*CELL, "seed"]
QUALITY_KEYS = ["dataset", "method", "ipc", "seed"]


def collect_results(paths: list[str | os.PathLike], out: str | os.PathLike) -> int:
    """Gather result files into one JSON-lines file (atomically); returns the record count.

    JSON results become their object plus `path` (each checked by `load_result`; two for one
    cell and seed are refused); Snakemake benchmark TSVs become `{"path", "s", "max_rss"}` of
    their last line. The tables read either form, so the aggregate rules depend on one
    collected file per dataset instead of thousands of results.
    """
    records, results = [], []
    for p in paths:
        if str(p).endswith(".tsv"):
            (record,) = _benchmark_records([p])
        else:
            record = load_result(p)
            results.append(record)
        records.append(record)
    refuse_duplicates([r for r in results if "accuracy" in r], EVAL_KEYS, "evaluation")
    refuse_duplicates([r for r in results if "accuracy" not in r], QUALITY_KEYS, "quality")
    with atomic_path(out) as tmp, open(tmp, "w") as fh:
        for record in records:
            fh.write(json.dumps(record) + "\n")
    return len(records)


def read_metrics(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per evaluation (JSON files or collected `.jsonl` files)."""
    rows = list(_records(paths))
    if not rows:
        return pd.DataFrame(columns=[*CELL, "seed", "accuracy", "student_model", "budget"])
    refuse_duplicates(rows, EVAL_KEYS, "evaluation")
    df = pd.DataFrame(rows)
    df["ipc"] = df["ipc"].astype("Int64")
    return df


def aggregate(df: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count of last-epoch test accuracy per cell (std over seeds, ddof=1; 0 for one seed)."""
    keys = [k for k in CELL if k in df]
    g = df.groupby(keys, dropna=False, sort=True)
    out = g.agg(
        accuracy_mean=("accuracy", "mean"),
        accuracy_std=("accuracy", _std),
        seeds=("seed", "count"),
        student_model=("student_model", "first"),
        budget=("budget", "first"),
    ).reset_index()
    if "provenance_issues" in df:
        issues = g["provenance_issues"].agg(lambda v: "; ".join(sorted({i for i in v if i})))
        out["provenance_issues"] = issues.to_numpy()
    return out


def mark_provenance(df: pd.DataFrame, config: dict) -> pd.DataFrame:
    """Add `provenance_issues` to a `read_metrics` frame: why each evaluation's provenance
    does not match `config` and the code version ("" where it does; see verify.eval_provenance)."""
    from ddbench.analysis.verify import eval_provenance, expected_hashes

    expected = expected_hashes(config)
    df = df.copy()
    df["provenance_issues"] = (
        [
            "; ".join(eval_provenance(config, row._asdict(), row.path, expected))
            for row in df.reindex(
                columns=[
                    "method",
                    "protocol",
                    "student",
                    "seed",
                    "ipc",
                    "config_sha256",
                    "versions",
                    "condensed_sha256",
                    "condensed_config_sha256",
                    "path",
                ]
            ).itertuples(index=False)
        ]
        if len(df)
        else []
    )
    return df


def _std(s: pd.Series) -> float:
    s = s.dropna()
    return float(s.std(ddof=1)) if len(s) > 1 else 0.0


def read_quality(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """One row per quality JSON (class-averaged values; null -> NaN)."""
    drop = ("per_class", "definitions", "path")
    records = list(_records(paths))
    refuse_duplicates(records, QUALITY_KEYS, "quality")
    rows = [{k: v for k, v in q.items() if k not in drop} for q in records]
    df = pd.DataFrame(rows)
    if len(df):
        df["ipc"] = df["ipc"].astype("Int64")
    return df


BENCHMARK_PATH = re.compile(
    r"benchmarks/(?P<dataset>[^/]+)/condensed/(?P<method>[^/]+)/ipc(?P<ipc>\d+)/s(?P<seed>\d+)\.tsv$"
)


def read_benchmarks(paths: list[str | os.PathLike]) -> pd.DataFrame:
    """Construction cost per condensed set from Snakemake benchmark TSVs (seconds, max RSS MB)."""
    rows = []
    for rec in _benchmark_records(paths):
        m = BENCHMARK_PATH.search(rec["path"].replace(os.sep, "/"))
        if not m:
            raise ValueError(f"{rec['path']}: not a condense benchmark path")
        rss = rec["max_rss"]
        rows.append(
            {
                "dataset": m["dataset"],
                "method": m["method"],
                "ipc": int(m["ipc"]),
                "seed": int(m["seed"]),
                "construct_s": float(rec["s"]),
                "construct_max_rss_mb": float("nan") if rss is None else float(rss),
            }
        )
    df = pd.DataFrame(
        rows, columns=["dataset", "method", "ipc", "seed", "construct_s", "construct_max_rss_mb"]
    )
    df["ipc"] = df["ipc"].astype("Int64")
    return df


def _benchmark_records(paths: list[str | os.PathLike]):
    """{"path", "s", "max_rss"} per benchmark TSV, or per line of a collected `.jsonl`."""
    for p in paths:
        if str(p).endswith(".jsonl"):
            yield from _records([p])
        else:
            tsv = pd.read_csv(p, sep="\t")
            rss = pd.to_numeric(tsv["max_rss"], errors="coerce").iloc[-1]
            yield {
                "path": str(p),
                "s": float(tsv["s"].iloc[-1]),
                "max_rss": None if pd.isna(rss) else float(rss),
            }


# ================================================================== rendering
@dataclass
class Block:
    """One rendered table: rows × columns of means (± std), best per column in bold.

    `columns` of `mean` may be a MultiIndex (e.g. dataset × IPC); `reference` rows are shown
    below a rule and never ranked; `better` is "max", "min" or None (no bold).
    """

    title: str
    mean: pd.DataFrame
    std: pd.DataFrame | None = None
    reference: pd.DataFrame | None = None
    reference_std: pd.DataFrame | None = None
    better: str | None = "max"
    digits: int = 2
    note: str = ""
    row_header: str = "method"
    flags: pd.DataFrame | None = None  # True: built from outputs whose provenance mismatches


FLAG = "†"
FLAG_NOTE = (
    f"{FLAG} built from results whose provenance does not match the current config or code "
    "(run `ddbench verify`; the CSV's provenance_issues column says why)."
)


def _flagged(block: Block, label, col) -> bool:
    f = block.flags
    if f is None or label not in f.index or col not in f.columns:
        return False
    v = f.at[label, col]
    return bool(pd.notna(v) and v)


def _fmt_num(x, digits: int) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return ""
    x = float(x)
    if abs(x) >= 1e5 or (x != 0 and abs(x) < 10 ** (-digits)):
        return f"{x:.{max(1, digits)}e}"
    return f"{x:.{digits}f}"


def _cell_text(mean, std, digits: int, pm: str) -> str:
    m = _fmt_num(mean, digits)
    if not m:
        return ""
    if (
        std is not None
        and not pd.isna(std)
        and abs(float(std)) <= 1e-9 * max(1.0, abs(float(mean)))
    ):
        std = 0.0  # identical values across seeds: rounding noise of the std, not a spread
    s = _fmt_num(std, digits) if std is not None else ""
    return f"{m}{pm}{s}" if s else m


def _best_mask(block: Block) -> pd.DataFrame:
    mask = pd.DataFrame(False, index=block.mean.index, columns=block.mean.columns)
    if block.better is None:
        return mask
    for col in block.mean.columns:
        values = pd.to_numeric(block.mean[col], errors="coerce").round(block.digits)
        if values.notna().sum() < 2:
            continue
        best = values.max() if block.better == "max" else values.min()
        mask[col] = values == best
    return mask


def _col_label(col) -> str:
    if isinstance(col, tuple):
        return " ".join(str(c) for c in col)
    return str(col)


def _rows(block: Block):
    """(label, [(mean, std)], is_reference) for every row."""
    out = []
    for frame, sframe, ref in (
        (block.mean, block.std, False),
        (block.reference, block.reference_std, True),
    ):
        if frame is None:
            continue
        for label in frame.index:
            cells = []
            for col in block.mean.columns:
                m = frame.at[label, col] if col in frame.columns else np.nan
                s = sframe.at[label, col] if sframe is not None and col in sframe.columns else None
                cells.append((m, s))
            out.append((label, cells, ref))
    return out


def render_markdown(blocks: list[Block], heading: str, notes: str = "") -> str:
    """Markdown: a level-2 heading and a pipe table per block."""
    lines = [f"# {heading}", ""]
    if notes:
        lines += [notes, ""]
    for b in blocks:
        mask = _best_mask(b)
        lines += [f"## {b.title}", ""]
        if b.note:
            lines += [b.note, ""]
        cols = list(b.mean.columns)
        lines.append(f"| {b.row_header} | " + " | ".join(_col_label(c) for c in cols) + " |")
        lines.append("|---|" + "---:|" * len(cols))
        for label, cells, ref in _rows(b):
            texts = []
            for col, (m, s) in zip(cols, cells, strict=True):
                t = _cell_text(m, s, b.digits, " ± ") or "–"
                if not ref and bool(mask.at[label, col]) and t != "–":
                    t = f"**{t}**"
                if _flagged(b, label, col):
                    t += f" {FLAG}"
                texts.append(t)
            name = f"*{label}*" if ref else str(label)
            lines.append(f"| {name} | " + " | ".join(texts) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"


_TEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials; `code` spans become \\texttt, ± and × math."""
    out = "".join(_TEX_ESCAPES.get(ch, ch) for ch in str(text))
    out = re.sub(r"`([^`]*)`", r"\\texttt{\1}", out)
    return out.replace("±", r"$\pm$").replace("×", r"$\times$").replace("²", r"$^2$")


def render_latex(blocks: list[Block], heading: str, notes: str = "") -> str:
    """LaTeX booktabs: one table environment per block (needs \\usepackage{booktabs})."""
    out = [f"% {heading} -- generated by ddbench; needs \\usepackage{{booktabs}}"]
    if notes:
        out += [f"% {line}" for line in notes.splitlines()]
    for b in blocks:
        mask = _best_mask(b)
        cols = list(b.mean.columns)
        out += ["", r"\begin{table}[t]", r"\centering", rf"\caption{{{tex_escape(b.title)}}}"]
        out.append(r"\begin{tabular}{l" + "r" * len(cols) + "}")
        out.append(r"\toprule")
        if isinstance(b.mean.columns, pd.MultiIndex) and b.mean.columns.nlevels == 2:
            top, spans, start = [], [], 2
            for key in dict.fromkeys(c[0] for c in cols):
                n = sum(1 for c in cols if c[0] == key)
                top.append(rf"\multicolumn{{{n}}}{{c}}{{{tex_escape(key)}}}")
                spans.append(rf"\cmidrule(lr){{{start}-{start + n - 1}}}")
                start += n
            out.append(" & " + " & ".join(top) + r" \\")
            out.append(" ".join(spans))
            labels = [tex_escape(c[1]) for c in cols]
        else:
            labels = [tex_escape(_col_label(c)) for c in cols]
        out.append(tex_escape(b.row_header) + " & " + " & ".join(labels) + r" \\")
        out.append(r"\midrule")
        in_ref = False
        for label, cells, ref in _rows(b):
            if ref and not in_ref:
                out.append(r"\midrule")
                in_ref = True
            texts = []
            for col, (m, s) in zip(cols, cells, strict=True):
                t = _cell_text(m, s, b.digits, r" $\pm$ ") or "--"
                if not ref and bool(mask.at[label, col]) and t != "--":
                    t = rf"\textbf{{{t}}}"
                if _flagged(b, label, col):
                    t += r"$^\dagger$"
                texts.append(t)
            name = rf"\textit{{{tex_escape(label)}}}" if ref else tex_escape(label)
            out.append(f"{name} & " + " & ".join(texts) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if b.note:
            out.append(rf"\\[2pt]{{\footnotesize {tex_escape(b.note)}}}")
        out.append(r"\end{table}")
    return "\n".join(out) + "\n"


_HTML_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:1em;color:#222}"
    "table{border-collapse:collapse;margin:0.5em 0 1.5em 0;font-size:0.9em}"
    "th,td{padding:3px 10px;text-align:right;border-bottom:1px solid #ddd}"
    "th:first-child,td:first-child{text-align:left}"
    "thead th{border-bottom:2px solid #444}tr.ref td{font-style:italic;color:#555}"
    "p.note{color:#555;font-size:0.9em;max-width:60em}"
)


def render_html(blocks: list[Block], heading: str, notes: str = "") -> str:
    """A standalone HTML page (shown inline by the Snakemake report)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(heading)}</title><style>{_HTML_STYLE}</style></head><body>",
        f"<h1>{e(heading)}</h1>",
    ]
    if notes:
        parts.append(f"<p class='note'>{e(notes)}</p>")
    for b in blocks:
        mask = _best_mask(b)
        cols = list(b.mean.columns)
        parts.append(f"<h2>{e(b.title)}</h2>")
        if b.note:
            parts.append(f"<p class='note'>{e(b.note)}</p>")
        parts.append("<table><thead>")
        if isinstance(b.mean.columns, pd.MultiIndex) and b.mean.columns.nlevels == 2:
            parts.append("<tr><th></th>")
            for key in dict.fromkeys(c[0] for c in cols):
                n = sum(1 for c in cols if c[0] == key)
                parts.append(f"<th colspan='{n}' style='text-align:center'>{e(str(key))}</th>")
            parts.append("</tr>")
            labels = [str(c[1]) for c in cols]
        else:
            labels = [_col_label(c) for c in cols]
        parts.append(
            f"<tr><th>{e(b.row_header)}</th>"
            + "".join(f"<th>{e(t)}</th>" for t in labels)
            + "</tr>"
        )
        parts.append("</thead><tbody>")
        for label, cells, ref in _rows(b):
            tds = []
            for col, (m, s) in zip(cols, cells, strict=True):
                t = e(_cell_text(m, s, b.digits, " ± ") or "–")
                if not ref and bool(mask.at[label, col]) and t != "–":
                    t = f"<b>{t}</b>"
                if _flagged(b, label, col):
                    t += f"<sup title='provenance mismatch'>{FLAG}</sup>"
                tds.append(f"<td>{t}</td>")
            cls = " class='ref'" if ref else ""
            parts.append(f"<tr{cls}><td>{e(str(label))}</td>" + "".join(tds) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_table_files(
    data: pd.DataFrame,
    blocks: list[Block],
    heading: str,
    *,
    csv: str | os.PathLike | None = None,
    md: str | os.PathLike | None = None,
    tex: str | os.PathLike | None = None,
    html_out: str | os.PathLike | None = None,
    notes: str = "",
) -> None:
    """Write the long-format data as CSV and the blocks as Markdown, LaTeX and HTML (atomically)."""
    blocks = [b for b in blocks if len(b.mean.columns) and len(b.mean.index)]
    if csv is not None:
        with atomic_path(csv) as tmp:
            data.to_csv(tmp, index=False, float_format="%.6g")
    for path, render in ((md, render_markdown), (tex, render_latex), (html_out, render_html)):
        if path is not None:
            with atomic_path(path) as tmp:
                Path(tmp).write_text(render(blocks, heading, notes))


def write_table_stem(
    stem: str | os.PathLike, data: pd.DataFrame, blocks: list[Block], heading: str, notes: str = ""
) -> None:
    """`stem`.csv/.md/.tex/.html."""
    stem = str(stem)
    write_table_files(
        data,
        blocks,
        heading,
        csv=f"{stem}.csv",
        md=f"{stem}.md",
        tex=f"{stem}.tex",
        html_out=f"{stem}.html",
        notes=notes,
    )


def _pivot(
    df: pd.DataFrame, rows: str, cols: list[str], value: str, keep_empty: bool = False
) -> pd.DataFrame:
    """rows × cols of `value`; all-empty columns are dropped unless `keep_empty`."""
    if df.empty:
        return pd.DataFrame()
    p = df.groupby([rows, *cols], sort=True, dropna=False)[value].first().unstack(cols)
    if not keep_empty:
        p = p.dropna(axis=1, how="all")
    if isinstance(p.columns, pd.MultiIndex):
        p.columns = pd.MultiIndex.from_tuples(
            [tuple(_col_part(name, v) for name, v in zip(cols, c, strict=True)) for c in p.columns]
        )
    else:
        p.columns = [_col_part(cols[0], c) for c in p.columns]
    return p


def _seed_std(part: pd.DataFrame, rows: str, cols: list[str], value: str) -> pd.DataFrame | None:
    """The std pivot, or None when every cell has a single seed (no '± 0.00' noise)."""
    if "seeds" in part and (pd.to_numeric(part["seeds"], errors="coerce").fillna(1) <= 1).all():
        return None
    return _pivot(part, rows, cols, value)


def _col_part(name: str, value) -> str:
    if name == "ipc":
        return f"IPC {int(value)}"
    return str(value)


def _budget(part: pd.DataFrame) -> str:
    budgets = sorted({str(b) for b in part["budget"].dropna()})
    return ", ".join(budgets) if budgets else "?"


# ================================================================== accuracy
def accuracy_blocks(agg: pd.DataFrame) -> list[Block]:
    """One block per (protocol, student): methods × (dataset, IPC), the whole-set row below."""
    blocks = []
    for (proto, student), part in agg.groupby(["protocol", "student"], sort=True):
        condensed = part[part["method"] != REFERENCE]
        model = part["student_model"].iloc[0]
        mean = _pivot(condensed, "method", ["dataset", "ipc"], "accuracy_mean")
        std = _seed_std(condensed, "method", ["dataset", "ipc"], "accuracy_std")
        ref = part[part["method"] == REFERENCE]
        reference = reference_std = None
        if len(ref) and len(mean.columns):
            label = f"whole training set ({_budget(ref)})"
            by_ds = ref.set_index("dataset")
            reference = pd.DataFrame(
                [[by_ds["accuracy_mean"].get(c[0], np.nan) for c in mean.columns]],
                index=[label],
                columns=mean.columns,
            )
            if std is not None:
                reference_std = pd.DataFrame(
                    [[by_ds["accuracy_std"].get(c[0], np.nan) for c in mean.columns]],
                    index=[label],
                    columns=mean.columns,
                )
        flags = None
        if "provenance_issues" in part and len(mean.columns):
            marked = condensed.assign(flag=condensed["provenance_issues"].fillna("") != "")
            flags = _pivot(marked, "method", ["dataset", "ipc"], "flag").reindex(
                index=mean.index, columns=mean.columns
            )
            if reference is not None:
                bad = (ref.set_index("dataset")["provenance_issues"].fillna("") != "").to_dict()
                flags.loc[reference.index[0]] = [bool(bad.get(c[0], False)) for c in mean.columns]
        blocks.append(
            Block(
                title=f"protocol `{proto}` · student `{student}` ({model}) · budget {_budget(condensed if len(condensed) else part)}",
                mean=mean,
                std=std,
                reference=reference,
                reference_std=reference_std,
                flags=flags,
            )
        )
    return blocks


def accuracy_markdown(agg: pd.DataFrame) -> str:
    """Markdown: one table per (protocol, student); methods as rows, (dataset, IPC) as columns."""
    return render_markdown(
        accuracy_blocks(agg), "Test accuracy (%, last epoch, mean ± std over seeds)"
    )


def write_accuracy_table(
    paths: list[str | os.PathLike],
    csv_out: str | os.PathLike,
    md_out: str | os.PathLike,
    tex_out: str | os.PathLike | None = None,
    html_out: str | os.PathLike | None = None,
    config: dict | None = None,
) -> pd.DataFrame:
    """Aggregate the given evaluation JSONs and write CSV (long format), Markdown (and LaTeX, HTML).

    With the validated `config`, every evaluation's provenance is checked (see
    `mark_provenance`); cells built from mismatching results are marked with a dagger.
    """
    metrics = read_metrics(paths)
    if config is not None:
        metrics = mark_provenance(metrics, config)
    agg = aggregate(metrics)
    flagged = "provenance_issues" in agg and bool((agg["provenance_issues"] != "").any())
    write_table_files(
        agg,
        accuracy_blocks(agg),
        "Test accuracy (%, last epoch, mean ± std over seeds)",
        csv=csv_out,
        md=md_out,
        tex=tex_out,
        html_out=html_out,
        notes="Bold: best method of each column. Budgets are per protocol; the whole-training-set "
        "row is the reference trained under the same protocol. "
        + (FLAG_NOTE + " " if flagged else "")
        + versions_note(metrics),
    )
    return agg


def versions_note(metrics: pd.DataFrame) -> str:
    """`Software: …` from the `versions` and `device` fields of the evaluation JSONs."""
    if "versions" not in metrics:
        return ""
    seen: dict[str, set[str]] = {}
    for v in metrics["versions"]:
        if isinstance(v, dict):
            for lib, version in v.items():
                seen.setdefault(lib, set()).add(str(version))
    parts = [f"{lib} {' / '.join(sorted(vs))}" for lib, vs in sorted(seen.items())]
    if "device" in metrics:
        parts.append("device " + " / ".join(sorted({str(d) for d in metrics["device"].dropna()})))
    return ("Software: " + ", ".join(parts) + ".") if parts else ""


# ================================================================== gain over random
def gain_over_random(df: pd.DataFrame, baseline: str = "random") -> pd.DataFrame:
    """Accuracy minus the baseline's in the same cell, paired by seed (mean ± std over seeds)."""
    cols = ["dataset", "protocol", "student", "ipc", "seed"]
    cond = df[df["method"] != REFERENCE]
    base = cond[cond["method"] == baseline][[*cols, "accuracy"]].rename(
        columns={"accuracy": "baseline_accuracy"}
    )
    merged = cond[cond["method"] != baseline].merge(base, on=cols, how="inner")
    merged["gain"] = merged["accuracy"] - merged["baseline_accuracy"]
    if merged.empty:
        return pd.DataFrame(columns=[*CELL, "gain_mean", "gain_std", "seeds", "baseline"])
    out = (
        merged.groupby(CELL, sort=True)
        .agg(
            gain_mean=("gain", "mean"),
            gain_std=("gain", _std),
            seeds=("seed", "count"),
            budget=("budget", "first"),
            student_model=("student_model", "first"),
        )
        .reset_index()
    )
    out["baseline"] = baseline
    return out


def gain_blocks(gain: pd.DataFrame, baseline: str) -> list[Block]:
    blocks = []
    for (proto, student), part in gain.groupby(["protocol", "student"], sort=True):
        blocks.append(
            Block(
                title=f"protocol `{proto}` · student `{student}` ({part['student_model'].iloc[0]}) · budget {_budget(part)}",
                mean=_pivot(part, "method", ["dataset", "ipc"], "gain_mean"),
                std=_seed_std(part, "method", ["dataset", "ipc"], "gain_std"),
                note=f"Percentage points over `{baseline}` (same protocol, student, IPC and seed).",
            )
        )
    return blocks


# ================================================================== DD-Ranking LRS / ARS
def _exp_normalise(x: float) -> float:
    """(e^x − e^−1) / (e − e^−1): maps x ∈ [−1, 1] onto [0, 1] (DD-Ranking's normalisation)."""
    x = min(1.0, max(-1.0, float(x)))
    return min(1.0, max(0.0, (math.exp(x) - math.exp(-1.0)) / (math.e - math.exp(-1.0))))


def label_robust_score(
    syn_hard: float, real_hard: float, syn_any: float, rdm_any: float, w: float = LRS_WEIGHT
) -> tuple[float, float, float]:
    """DD-Ranking's label-robust score on accuracies given as fractions in [0, 1].

    HLR = Acc(real, hard) − Acc(syn, hard)         (hard-label recovery; lower is better)
    IOR = Acc(syn, any) − Acc(random, any)         (improvement over random, same protocol)
    α   = w·IOR − (1 − w)·HLR,  LRS = (e^α − e^−1) / (e − e^−1)   ∈ [0, 1]

    Source: DD-Ranking (Li et al. 2025, arXiv:2505.13300), documentation "DD-Ranking Benchmark:
    Label-Robust Score", github.com/NUS-HPC-AI-Lab/DD-Ranking doc/introduction.md; the
    leaderboard uses w = 0.5 and shows 100 × LRS. Returns (HLR, IOR, LRS).
    """
    hlr = real_hard - syn_hard
    ior = syn_any - rdm_any
    return hlr, ior, _exp_normalise(w * ior - (1.0 - w) * hlr)


def augmentation_robust_score(
    syn_aug: float, rdm_aug: float, syn_naug: float, rdm_naug: float, gamma: float = ARS_WEIGHT
) -> float:
    """DD-Ranking's augmentation-robust score on fractions in [0, 1].

    β = γ·(Acc(syn, aug) − Acc(rdm, aug)) + (1 − γ)·(Acc(syn, no aug) − Acc(rdm, no aug)),
    ARS = (e^β − e^−1) / (e − e^−1) ∈ [0, 1] ("normalised similarly" to LRS). Same source as
    `label_robust_score`; γ = 0.5.
    """
    beta = gamma * (syn_aug - rdm_aug) + (1.0 - gamma) * (syn_naug - rdm_naug)
    return _exp_normalise(beta)


def protocol_params(df: pd.DataFrame) -> dict[str, dict]:
    """Resolved parameters of every protocol found in the evaluation JSONs."""
    out = {}
    if "protocol_params" not in df:
        return out
    for name, params in zip(df["protocol"], df["protocol_params"], strict=True):
        if isinstance(params, dict) and name not in out:
            out[name] = params
    return out


def dd_ranking_scores(
    agg: pd.DataFrame, protocols: dict[str, dict], baseline: str = "random"
) -> pd.DataFrame:
    """LRS per (dataset, protocol, student, method, IPC) and ARS for augmented protocols with a twin.

    Mapping of our grid onto DD-Ranking's terms (all accuracies / 100, seed means):
    syn-hard = the method under the hard-label protocol H (`hard_label_protocol`), real-hard =
    the whole-training-set reference under H, syn-any / rdm-any = the method / the `random`
    baseline under the protocol being scored. ARS: syn-aug / rdm-aug under the scored protocol,
    syn-naug / rdm-naug under its augmentation-free twin (`augmentation_twins`). Missing terms
    give NaN with a reason.
    """
    hard = hard_label_protocol(protocols)
    twins = augmentation_twins(protocols)
    acc = {
        (
            r.dataset,
            r.protocol,
            r.student,
            r.method,
            None if pd.isna(r.ipc) else int(r.ipc),
        ): r.accuracy_mean / 100.0
        for r in agg.itertuples()
    }
    rows = []
    cond = agg[agg["method"] != REFERENCE]
    for r in cond.itertuples():
        ipc = int(r.ipc)
        row = {
            "dataset": r.dataset,
            "protocol": r.protocol,
            "student": r.student,
            "method": r.method,
            "ipc": ipc,
            "budget": r.budget,
            "student_model": r.student_model,
            "hard_protocol": hard,
            "baseline": baseline,
        }
        syn_any = acc.get((r.dataset, r.protocol, r.student, r.method, ipc))
        rdm_any = acc.get((r.dataset, r.protocol, r.student, baseline, ipc))
        syn_hard = acc.get((r.dataset, hard, r.student, r.method, ipc)) if hard else None
        real_hard = acc.get((r.dataset, hard, r.student, REFERENCE, None)) if hard else None
        reason = ""
        if hard is None:
            reason = "no hard-label protocol in the grid"
        elif real_hard is None:
            reason = f"no whole-training-set reference under `{hard}` (reference.enabled)"
        elif syn_hard is None:
            reason = f"no evaluation of this set under `{hard}`"
        elif rdm_any is None:
            reason = f"no `{baseline}` evaluation in this cell"
        if reason:
            row.update(hlr=np.nan, ior=np.nan, lrs=np.nan, lrs_reason=reason)
        else:
            hlr, ior, lrs = label_robust_score(syn_hard, real_hard, syn_any, rdm_any)
            row.update(
                syn_hard=syn_hard,
                real_hard=real_hard,
                syn_any=syn_any,
                rdm_any=rdm_any,
                hlr=hlr,
                ior=ior,
                lrs=lrs,
                lrs_reason="",
            )
        twin = twins.get(r.protocol)
        row["naug_protocol"] = twin
        if twin is None:
            why = (
                "protocol has no augmentation"
                if not has_augmentation(protocols.get(r.protocol, {}))
                else "no augmentation-free twin protocol in the grid"
            )
            row.update(ars=np.nan, ars_reason=why)
        else:
            terms = [
                syn_any,
                rdm_any,
                acc.get((r.dataset, twin, r.student, r.method, ipc)),
                acc.get((r.dataset, twin, r.student, baseline, ipc)),
            ]
            if any(t is None for t in terms):
                row.update(
                    ars=np.nan, ars_reason=f"missing evaluations under `{twin}` or of `{baseline}`"
                )
            else:
                row.update(ars=augmentation_robust_score(*terms), ars_reason="")
        rows.append(row)
    cols = [
        *CELL,
        "hard_protocol",
        "naug_protocol",
        "baseline",
        "syn_hard",
        "real_hard",
        "syn_any",
        "rdm_any",
        "hlr",
        "ior",
        "lrs",
        "lrs_reason",
        "ars",
        "ars_reason",
        "budget",
        "student_model",
    ]
    return pd.DataFrame(rows).reindex(columns=cols)


def dd_ranking_blocks(scores: pd.DataFrame) -> list[Block]:
    blocks = []
    for (proto, student), part in scores.groupby(["protocol", "student"], sort=True):
        hard = part["hard_protocol"].dropna()
        hard = hard.iloc[0] if len(hard) else None
        if part["lrs"].notna().any():
            blocks.append(
                Block(
                    title=f"LRS · protocol `{proto}` · student `{student}` · budget {_budget(part)}",
                    mean=_pivot(part, "method", ["dataset", "ipc"], "lrs"),
                    digits=3,
                    note=f"Hard-label terms from `{hard}` and the whole-training-set reference; "
                    f"IOR under `{proto}`.",
                )
            )
        if part["ars"].notna().any():
            twin = part["naug_protocol"].dropna().iloc[0]
            blocks.append(
                Block(
                    title=f"ARS · protocol `{proto}` vs `{twin}` (no augmentation) · student `{student}`",
                    mean=_pivot(part, "method", ["dataset", "ipc"], "ars"),
                    digits=3,
                )
            )
    return blocks


DD_RANKING_NOTES = (
    "DD-Ranking scores on accuracies as fractions: LRS = (e^a - e^-1)/(e - e^-1) with "
    "a = 0.5 IOR - 0.5 HLR, HLR = Acc(real, hard) - Acc(syn, hard), IOR = Acc(syn, protocol) - "
    "Acc(random, protocol); ARS likewise with b = 0.5 (Acc(syn, aug) - Acc(rdm, aug)) + "
    "0.5 (Acc(syn, no aug) - Acc(rdm, no aug)), where 'no aug' is a protocol identical to the "
    "scored one but with augment: none and cutmix: 0. Both lie in [0, 1]; higher is better. "
    "Missing terms: see lrs_reason / ars_reason in the CSV."
)


# ================================================================== construction cost
def cost_table(bench: pd.DataFrame, metrics: pd.DataFrame) -> pd.DataFrame:
    """Per (dataset, method, IPC): construction seconds and peak RSS (mean ± std over seeds), and
    per protocol the stored soft-label bytes and teacher forward images of the evaluation."""
    keys = ["dataset", "method", "ipc"]
    if bench.empty:
        out = pd.DataFrame(columns=keys)
    else:
        out = (
            bench.groupby(keys, sort=True)
            .agg(
                construct_s_mean=("construct_s", "mean"),
                construct_s_std=("construct_s", _std),
                construct_max_rss_mb_mean=("construct_max_rss_mb", "mean"),
                construct_max_rss_mb_std=("construct_max_rss_mb", _std),
                seeds=("seed", "count"),
            )
            .reset_index()
        )
    cond = metrics[metrics["method"] != REFERENCE] if len(metrics) else metrics
    cond = cond.reindex(  # records of other ddbench versions may lack a cost field
        columns=[
            *cond.columns,
            *sorted(
                {"soft_label_bytes", "teacher_forward_images", "wall_time_s"} - set(cond.columns)
            ),
        ]
    )
    if len(cond):
        per_proto = (
            cond.groupby([*keys, "protocol"], sort=True)
            .agg(
                soft_label_bytes=("soft_label_bytes", "mean"),
                teacher_forward_images=("teacher_forward_images", "mean"),
                eval_wall_time_s=("wall_time_s", "mean"),
            )
            .reset_index()
        )
        wide = per_proto.pivot_table(
            index=keys,
            columns="protocol",
            values=["soft_label_bytes", "teacher_forward_images", "eval_wall_time_s"],
        )
        wide.columns = [f"{v}[{p}]" for v, p in wide.columns]
        wide = wide.reset_index()
        wide["ipc"] = wide["ipc"].astype("Int64")
        out["ipc"] = out["ipc"].astype("Int64")
        out = out.merge(wide, on=keys, how="outer")
    return out


def cost_blocks(cost: pd.DataFrame) -> list[Block]:
    blocks = []
    for ds, part in cost.groupby("dataset", sort=True):
        if "construct_s_mean" in part:
            blocks.append(
                Block(
                    title=f"{ds} · construction time (s)",
                    mean=_pivot(part, "method", ["ipc"], "construct_s_mean"),
                    std=_seed_std(part, "method", ["ipc"], "construct_s_std"),
                    better="min",
                    note="Wall-clock seconds of the condense job (Snakemake benchmark), including "
                    "Python start-up; IPC-independent inputs (teachers, features, scores) are not included.",
                )
            )
            blocks.append(
                Block(
                    title=f"{ds} · construction peak RSS (MB)",
                    mean=_pivot(part, "method", ["ipc"], "construct_max_rss_mb_mean"),
                    better="min",
                    digits=0,
                )
            )
        for quantity, title in (
            ("soft_label_bytes", "stored soft-label bytes"),
            ("teacher_forward_images", "teacher forward images during evaluation"),
        ):
            cols = [c for c in part.columns if c.startswith(f"{quantity}[")]
            if not cols:
                continue
            long = part.melt(
                id_vars=["method", "ipc"], value_vars=cols, var_name="protocol", value_name="v"
            )
            long["protocol"] = long["protocol"].str.slice(len(quantity) + 1, -1)
            mean = _pivot(long, "method", ["protocol", "ipc"], "v")
            mean = mean.loc[:, (mean.fillna(0) != 0).any(axis=0)] if len(mean) else mean
            if mean.shape[1]:
                blocks.append(Block(title=f"{ds} · {title}", mean=mean, better=None, digits=0))
    return blocks


# ================================================================== quality
QUALITY_COLUMNS = {
    "precision": ("precision", "max"),
    "recall": ("recall", "max"),
    "density": ("density", "max"),
    "coverage": ("coverage", "max"),
    "mmd2": ("MMD² (unbiased, RBF, median heuristic)", "min"),
    "nn_feature_mean": ("mean nearest-real distance, features", None),
    "nn_pixel_min": ("min nearest-real distance, pixels", None),
    "exact_copy_fraction": ("fraction of exact copies of training images", None),
}


def quality_summary(q: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over seeds of the class-averaged quality metrics per (dataset, method, IPC)."""
    keys = ["dataset", "method", "ipc"]
    if q.empty:
        return pd.DataFrame(columns=keys)
    aggs = {}
    for col in QUALITY_COLUMNS:
        if col in q:
            q[col] = pd.to_numeric(q[col], errors="coerce")
            aggs[f"{col}_mean"] = (col, "mean")
            aggs[f"{col}_std"] = (col, _std)
    out = q.groupby(keys, sort=True).agg(
        seeds=("seed", "count"), teacher=("teacher", "first"), k=("k", "first"), **aggs
    )
    return out.reset_index()


def quality_blocks(summary: pd.DataFrame) -> list[Block]:
    blocks = []
    for ds, part in summary.groupby("dataset", sort=True):
        teacher, k = part["teacher"].iloc[0], part["k"].iloc[0]
        for col, (title, better) in QUALITY_COLUMNS.items():
            if f"{col}_mean" not in part:
                continue
            mean = _pivot(part, "method", ["ipc"], f"{col}_mean", keep_empty=True)
            std = _seed_std(part, "method", ["ipc"], f"{col}_std")
            blocks.append(
                Block(
                    title=f"{ds} · {title}",
                    mean=mean,
                    std=std,
                    better=better,
                    digits=3,
                    note=f"teacher `{teacher}` features, k = {k}; –: undefined (the JSON names the reason under `undefined`).",
                )
            )
    return blocks


# ================================================================== teacher × student
def teacher_student_matrix(agg: pd.DataFrame, protocols: dict[str, dict]) -> pd.DataFrame:
    """Accuracy of teacher-label protocols per (dataset, IPC, teachers, student), mean over methods."""
    sets = teacher_sets(protocols)
    cond = agg[(agg["method"] != REFERENCE) & agg["protocol"].isin(sets)].copy()
    if cond.empty:
        return pd.DataFrame(columns=["dataset", "ipc", "teachers", "student", "accuracy_mean"])
    cond["teachers"] = [f"{p} ({sets[p]})" for p in cond["protocol"]]
    out = (
        cond.groupby(["dataset", "ipc", "teachers", "protocol", "student"], sort=True)
        .agg(
            accuracy_mean=("accuracy_mean", "mean"),
            accuracy_std=("accuracy_mean", _std),
            methods=("method", "count"),
        )
        .reset_index()
    )
    return out


def teacher_student_blocks(ts: pd.DataFrame) -> list[Block]:
    blocks = []
    for (ds, ipc), part in ts.groupby(["dataset", "ipc"], sort=True):
        blocks.append(
            Block(
                title=f"{ds} · IPC {int(ipc)} · protocol (teachers) × student",
                mean=_pivot(part, "teachers", ["student"], "accuracy_mean"),
                std=_pivot(part, "teachers", ["student"], "accuracy_std"),
                row_header="protocol (teachers)",
                note="Accuracy (%) averaged over methods; ± is the spread across methods.",
            )
        )
    return blocks


# ================================================================== the workflow entry point
def write_study_tables(
    metric_paths: list[str | os.PathLike],
    *,
    benchmark_paths: list[str | os.PathLike] = (),
    quality_paths: list[str | os.PathLike] = (),
    stems: dict[str, str | os.PathLike],
    baseline: str = "random",
) -> dict[str, pd.DataFrame]:
    """Write the tables named in `stems` (gain, dd_ranking, cost, quality, teacher_student)."""
    metrics = read_metrics(metric_paths)
    agg = aggregate(metrics) if len(metrics) else metrics
    protocols = protocol_params(metrics)
    written = {}
    if "gain" in stems:
        gain = gain_over_random(metrics, baseline)
        write_table_stem(
            stems["gain"],
            gain,
            gain_blocks(gain, baseline),
            f"Gain over `{baseline}` (percentage points, mean ± std over seeds)",
        )
        written["gain"] = gain
    if "dd_ranking" in stems:
        scores = dd_ranking_scores(agg, protocols, baseline)
        write_table_stem(
            stems["dd_ranking"],
            scores,
            dd_ranking_blocks(scores),
            "DD-Ranking label-robust (LRS) and augmentation-robust (ARS) scores",
            DD_RANKING_NOTES,
        )
        written["dd_ranking"] = scores
    if "cost" in stems:
        cost = cost_table(read_benchmarks(list(benchmark_paths)), metrics)
        write_table_stem(stems["cost"], cost, cost_blocks(cost), "Construction and label cost")
        written["cost"] = cost
    if "quality" in stems:
        summary = quality_summary(read_quality(list(quality_paths)))
        write_table_stem(
            stems["quality"],
            summary,
            quality_blocks(summary),
            "Quality of the condensed sets (class means; mean ± std over seeds)",
            "Precision, recall, density, coverage: Naeem et al. 2020, k-NN in the teacher's "
            "penultimate features, per class. MMD²: unbiased estimator. Nearest-real distances: "
            "memorisation check (0 = a copy of a training image).",
        )
        written["quality"] = summary
    if "teacher_student" in stems:
        ts = teacher_student_matrix(agg, protocols)
        write_table_stem(
            stems["teacher_student"],
            ts,
            teacher_student_blocks(ts),
            "Teacher × student accuracy (%)",
        )
        written["teacher_student"] = ts
    return written
