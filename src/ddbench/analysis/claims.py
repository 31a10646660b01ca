"""Claims as data, judged from the seeds: a verdict with its interval, never read off by eye.

A claim (config/claims.yaml) compares two sides, A and B, in every cell it ranges over
(dataset × protocol × student × IPC, filtered by `where`). A side reads one number per cell and
seed:

- `method: NAME` — that method's metric; `method: [NAME, …]` — whichever one of these
  variants the cell evaluates (e.g. CAD-Prune built for each budget and evaluated only under
  the protocols of its budget; a cell holding two of them is an error);
- `method: "@best_coreset"` — the coreset method (kinds random, herding, kcenter, el2n,
  forgetting, cad_prune) with the best mean in the cell, per seed; `"@best_distilled"` /
  `"@worst_distilled"` — the distilled (non-coreset) method with the best / worst mean; a
  selector whose only candidate in a cell is the method the other side names (e.g.
  `@best_coreset` against `random` in a grid whose only coreset is random) would compare that
  method with itself, so the cell is not tested;
- `spread: [NAMES] | all` — the largest minus the smallest metric over those methods, per seed;
- `value: X` — a constant;

optionally with `protocol: P` (or `dataset`, `student`, `ipc`) to read another cell than the one
being judged, or `preset: X` to read the protocol of preset X with the same budget (e.g. the HL
spread against the SL+KD spread of the same IPC and budget). `where` filters cells on the cell
keys and on the protocol's `preset` and `full_epochs` (a value or a list). The effect is
A − B in percentage points (accuracy) or metric units (quality), averaged over the seeds present
on both sides (paired by seed).

**Interval.** 95 % Student-t interval of the mean paired difference over n seeds
(mean ± t₀.₉₇₅,ₙ₋₁ · sd / √n). With one seed there is no interval and the verdict is
inconclusive.

**Rule** (m = the claim's margin, [lo, hi] the interval):
- `greater` (A exceeds B by more than m): held if lo > m; not held if hi < m; else inconclusive.
- `less` (A falls below B by more than m): held if hi < −m; not held if lo > −m; else inconclusive.
- `within` (|A − B| < m): held if −m < lo and hi < m; not held if lo > m or hi < −m; else
  inconclusive.
- `at_least` (A ≥ B − m): held if lo > −m; not held if hi < −m; else inconclusive.
- `at_most` (A ≤ B + m): held if hi < m; not held if lo > m; else inconclusive.

**Over cells.** `aggregate: every`: held if held in every cell, not held if not held in any
cell, else inconclusive. `aggregate: average`: the per-seed differences are averaged over the
cells (seeds present in every cell) and judged once. A claim none of whose cells is in the
results is reported as "not tested".
"""

from __future__ import annotations

import html as html_lib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ddbench.data.h5io import atomic_path
from ddbench.errors import ConfigError

CELL_KEYS = ("dataset", "protocol", "student", "ipc")
# what a claim's `where` can also filter on: the protocol's preset and budget
PROTOCOL_KEYS = ("preset", "full_epochs")
CORESET_KINDS = frozenset({"random", "herding", "kcenter", "el2n", "forgetting", "cad_prune"})
DIRECTIONS = ("greater", "less", "within", "at_least", "at_most")
# Student-t 0.975 quantiles for 1..30 degrees of freedom (beyond: the normal 1.96 is within 1 %)
T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
RULE = (
    "95 % Student-t interval of the seed-paired mean difference A − B; greater: held if the "
    "interval lies above +margin, not held if below it; less: held if below −margin, not held "
    "if above it; within: held if inside (−margin, +margin), not held if wholly outside; "
    "at_least: held if above −margin, not held if below it; at_most: held if below +margin, "
    "not held if above it; otherwise, or with one seed, inconclusive. `every`: held in every "
    "cell; `average`: the per-seed differences averaged over cells, judged once."
)


@dataclass(frozen=True)
class Claim:
    """One comparison from a paper, with the cells it ranges over."""

    id: str
    statement: str
    source: str
    a: dict
    b: dict
    direction: str
    metric: str = "accuracy"
    margin: float = 0.0
    where: dict = field(default_factory=dict)
    aggregate: str = "every"
    figure: str | None = None


def t_quantile(df: int) -> float:
    """t₀.₉₇₅ with `df` degrees of freedom."""
    return T975[df - 1] if df <= len(T975) else 1.96


def interval(diffs: np.ndarray) -> tuple[float, float, float]:
    """(mean, lo, hi): the 95 % t interval of the mean; lo = hi = nan with one value."""
    diffs = np.asarray(diffs, dtype=np.float64)
    mean = float(diffs.mean())
    if len(diffs) < 2:
        return mean, math.nan, math.nan
    half = t_quantile(len(diffs) - 1) * float(diffs.std(ddof=1)) / math.sqrt(len(diffs))
    return mean, mean - half, mean + half


def verdict(direction: str, margin: float, lo: float, hi: float) -> str:
    """held / not held / inconclusive by the rule in the module docstring."""
    if math.isnan(lo) or math.isnan(hi):
        return "inconclusive"
    m = abs(float(margin))
    if direction == "greater":
        return "held" if lo > m else "not held" if hi < m else "inconclusive"
    if direction == "less":
        return "held" if hi < -m else "not held" if lo > -m else "inconclusive"
    if direction == "within":
        if -m < lo and hi < m:
            return "held"
        return "not held" if lo > m or hi < -m else "inconclusive"
    if direction == "at_least":
        return "held" if lo > -m else "not held" if hi < -m else "inconclusive"
    if direction == "at_most":
        return "held" if hi < m else "not held" if lo > m else "inconclusive"
    raise ValueError(f"unknown direction {direction!r} (known: {', '.join(DIRECTIONS)})")


# ------------------------------------------------------------------ loading
def claims_files(path: str | os.PathLike) -> list[Path]:
    """A claims file and every file it includes (`include:` paths relative to it), in order."""
    from ddbench.config import load_yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"claims file {path} does not exist")
    data = load_yaml(path.read_text(), str(path))
    if not isinstance(data, dict) or not set(data) <= {"claims", "include"}:
        raise ConfigError(f"{path}: expected a mapping with `claims:` and/or `include:`")
    out = [path]
    for name in data.get("include") or []:
        out += claims_files(path.parent / str(name))
    return out


def load_claims(path: str | os.PathLike) -> list[Claim]:
    """Read and check a claims file and its includes; ConfigError names the claim and key."""
    from ddbench.config import load_yaml

    items, origin = [], []
    for f in claims_files(path):
        data = load_yaml(f.read_text(), str(f))
        found = data.get("claims") or []
        if not isinstance(found, list):
            raise ConfigError(f"{f}: `claims:` must be a list")
        items += found
        origin += [f] * len(found)
    if not items:
        raise ConfigError(f"{path}: no claims (in `claims:` or the files of `include:`)")
    claims, seen = [], set()
    known = {f for f in Claim.__dataclass_fields__}
    for i, (item, f) in enumerate(zip(items, origin, strict=True)):
        where = f"{f}: claims[{origin[:i].count(f)}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{where}: each claim is a mapping")
        unknown = sorted(set(item) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown} (allowed: {sorted(known)})")
        missing = [k for k in ("id", "statement", "source", "a", "b", "direction") if k not in item]
        if missing:
            raise ConfigError(f"{where}: missing {missing}")
        if item["id"] in seen:
            raise ConfigError(f"{where}: id {item['id']!r} is used twice")
        seen.add(item["id"])
        if item["direction"] not in DIRECTIONS:
            raise ConfigError(
                f"{where}.direction: {item['direction']!r} is not one of {DIRECTIONS}"
            )
        if item.get("aggregate", "every") not in ("every", "average"):
            raise ConfigError(f"{where}.aggregate: 'every' or 'average'")
        for side in ("a", "b"):
            _check_side(item[side], f"{where}.{side}")
        bad = set(item.get("where") or {}) - {*CELL_KEYS, *PROTOCOL_KEYS}
        if bad:
            raise ConfigError(
                f"{where}.where: unknown key(s) {sorted(bad)} (allowed: "
                f"{', '.join((*CELL_KEYS, *PROTOCOL_KEYS))})"
            )
        claims.append(Claim(**item))
    return claims


def _check_side(side: Any, where: str) -> None:
    if not isinstance(side, dict):
        raise ConfigError(f"{where}: a side is a mapping (method, spread or value)")
    readers = [k for k in ("method", "spread", "value") if k in side]
    if len(readers) != 1:
        raise ConfigError(f"{where}: exactly one of method, spread, value (got {readers})")
    extra = set(side) - {"method", "spread", "value", "preset", *CELL_KEYS}
    if extra:
        raise ConfigError(f"{where}: unknown key(s) {sorted(extra)}")
    method = side.get("method")
    if isinstance(method, list) and (
        not method or not all(isinstance(m, str) and not m.startswith("@") for m in method)
    ):
        raise ConfigError(
            f"{where}.method: a list names method variants (e.g. one per budget), "
            f"without @selectors; got {method!r}"
        )


# ------------------------------------------------------------------ judging
def _plain_method(side: dict) -> str | None:
    """The one method a side names outright (not a selector, a list or a spread), else None."""
    name = side.get("method")
    return name if isinstance(name, str) and not name.startswith("@") else None


def _side_values(
    side: dict,
    cell: dict,
    table: pd.DataFrame,
    kinds: dict[str, str],
    against: str | None = None,
) -> dict[int, float]:
    """seed -> the side's number in `cell` (the side's cell overrides applied).

    `against`: the method the other side names outright; a selector whose only candidate in
    the cell is that method would compare it with itself, so the side is empty there.
    """
    if "value" in side:
        return {int(s): float(side["value"]) for s in table["seed"].unique()}
    target = {k: cell[k] for k in CELL_KEYS}
    target.update({k: side[k] for k in CELL_KEYS if k in side})
    rows = table
    if "preset" in side:  # the protocol of that preset with the cell's budget
        del target["protocol"]
        rows = rows[
            (rows["preset"] == side["preset"]) & (rows["full_epochs"] == cell["full_epochs"])
        ]
    for key, value in target.items():
        rows = rows[rows[key] == value]
    if rows.empty:
        return {}
    by = rows.pivot_table(index="seed", columns="method", values="value", aggfunc="mean")
    if "method" in side:
        name = side["method"]
        if isinstance(name, list):  # variants of one method: the one this cell evaluates
            present = [m for m in name if m in by]
            if len(present) > 1:
                raise ConfigError(
                    f"claim side {name}: cell {target} holds several of these variants "
                    f"({present}); exclude all but one per cell"
                )
            if not present:
                return {}
            name = present[0]
        if name.startswith("@"):
            coreset = name == "@best_coreset"
            pool = [m for m in by.columns if (kinds.get(m) in CORESET_KINDS) == coreset]
            pool = [m for m in pool if kinds.get(m) != "external"]
            if name not in ("@best_coreset", "@best_distilled", "@worst_distilled"):
                raise ConfigError(f"unknown method selector {name!r}")
            if not pool or pool == [against]:
                return {}
            means = by[pool].mean()
            name = means.idxmin() if name == "@worst_distilled" else means.idxmax()
        if name not in by:
            return {}
        col = by[name].dropna()
        return {int(s): float(v) for s, v in col.items()}
    names = list(by.columns) if side["spread"] == "all" else list(side["spread"])
    present = [m for m in names if m in by]
    if len(present) < 2:
        return {}
    sub = by[present].dropna()
    return {int(s): float(row.max() - row.min()) for s, row in sub.iterrows()}


def _matches(where: dict, cell: dict) -> bool:
    for key, allowed in where.items():
        allowed = allowed if isinstance(allowed, list) else [allowed]
        if key == "full_epochs":
            allowed = [a if a in (None, "none") else float(a) for a in allowed]
            allowed = ["none" if a is None else a for a in allowed]
        if cell.get(key) not in allowed:
            return False
    return True


def judge(claims: list[Claim], table: pd.DataFrame, kinds: dict[str, str]) -> pd.DataFrame:
    """One row per (claim, cell) and one `all` row per claim with the aggregate verdict.

    `table`: long format with columns dataset, protocol, student, ipc, method, seed, metric,
    value (see `metric_table`). `kinds`: method name -> kind (for @best_coreset).
    """
    rows = []
    keys = [*CELL_KEYS, *PROTOCOL_KEYS]
    cells = table[keys].drop_duplicates().sort_values(list(CELL_KEYS))
    for claim in claims:
        metric_rows = table[table["metric"] == claim.metric]
        per_cell: list[tuple[dict, dict[int, float]]] = []
        for cell in cells.to_dict("records"):
            if not _matches(claim.where, cell):
                continue
            a = _side_values(claim.a, cell, metric_rows, kinds, _plain_method(claim.b))
            b = _side_values(claim.b, cell, metric_rows, kinds, _plain_method(claim.a))
            seeds = sorted(set(a) & set(b))
            if not seeds:
                continue
            diffs = {s: a[s] - b[s] for s in seeds}
            mean, lo, hi = interval(np.array(list(diffs.values())))
            rows.append(
                _row(
                    claim,
                    cell,
                    len(seeds),
                    mean,
                    lo,
                    hi,
                    verdict(claim.direction, claim.margin, lo, hi),
                )
            )
            per_cell.append((cell, diffs))
        rows.append(_aggregate_row(claim, per_cell, rows))
    return pd.DataFrame(rows)


def _row(claim: Claim, cell: dict | None, n: int, mean, lo, hi, result: str) -> dict:
    label = "all" if cell is None else ", ".join(f"{k}={cell[k]}" for k in CELL_KEYS)
    return {
        "claim": claim.id,
        "cell": label,
        "seeds": n,
        "effect": mean,
        "ci_low": lo,
        "ci_high": hi,
        "direction": claim.direction,
        "margin": claim.margin,
        "verdict": result,
    }


def cell_verdict_counts(cell_rows: list[dict]) -> str:
    """'held / not held / inconclusive' counts of a claim's cells, e.g. '2 / 1 / 1'."""
    verdicts = [r["verdict"] for r in cell_rows]
    return " / ".join(str(verdicts.count(v)) for v in ("held", "not held", "inconclusive"))


def _aggregate_row(claim: Claim, per_cell: list, rows: list[dict]) -> dict:
    if not per_cell:
        row = _row(claim, None, 0, math.nan, math.nan, math.nan, "not tested")
    elif claim.aggregate == "average":
        common = sorted(set.intersection(*(set(d) for _, d in per_cell)))
        diffs = np.array([np.mean([d[s] for _, d in per_cell]) for s in common])
        if len(diffs):
            mean, lo, hi = interval(diffs)
            row = _row(
                claim,
                None,
                len(diffs),
                mean,
                lo,
                hi,
                verdict(claim.direction, claim.margin, lo, hi),
            )
        else:
            row = _row(claim, None, 0, math.nan, math.nan, math.nan, "inconclusive")
    else:
        mine = [r for r in rows if r["claim"] == claim.id]
        results = {r["verdict"] for r in mine}
        result = (
            "not held"
            if "not held" in results
            else "held"
            if results == {"held"}
            else "inconclusive"
        )
        effects = [r["effect"] for r in mine]
        row = _row(
            claim,
            None,
            min(r["seeds"] for r in mine),
            float(np.mean(effects)),
            min(r["ci_low"] for r in mine),
            max(r["ci_high"] for r in mine),
            result,
        )
    row["cells"] = len(per_cell)
    mine = [r for r in rows if r["claim"] == claim.id]
    row["cell_verdicts"] = cell_verdict_counts(mine) if mine else ""
    row["statement"] = claim.statement
    row["source"] = claim.source
    row["aggregate"] = claim.aggregate
    row["metric"] = claim.metric
    # the figure that shows it, as seen from results/tables/ (the first tested dataset's)
    row["figure"] = (
        f"../figures/{per_cell[0][0]['dataset']}-{claim.figure}.png"
        if claim.figure and per_cell
        else ""
    )
    return row


def metric_table(eval_records: list[dict], quality_records: list[dict]) -> pd.DataFrame:
    """Long format (cell keys, method, seed, metric, value) from evaluation and quality records.

    Accuracy comes from the evaluations (the whole-set reference rows are left out); quality
    metrics are class means and have no protocol or student: they join every protocol and
    student of their (dataset, IPC) cell.
    """
    rows = []
    for r in eval_records:
        if r.get("method") == "full_train" or r.get("accuracy") is None:
            continue
        params = r.get("protocol_params") or {}
        budget = params.get("full_epochs")
        rows.append({**{k: r[k] for k in (*CELL_KEYS, "method", "seed")}, "metric": "accuracy",
                     "value": float(r["accuracy"]), "preset": r.get("preset", params.get("preset")),
                     "full_epochs": "none" if budget is None else float(budget)})  # fmt: skip
    protocol_keys = {r["protocol"]: (r["preset"], r["full_epochs"]) for r in rows}
    pairs = {(r["dataset"], r["protocol"], r["student"]) for r in rows}
    for q in quality_records:
        for metric in ("precision", "recall", "density", "coverage", "mmd2"):
            value = q.get(metric)
            if value is None:
                continue
            for ds, protocol, student in sorted(pairs):
                if ds == q["dataset"]:
                    preset, budget = protocol_keys[protocol]
                    rows.append({"dataset": ds, "protocol": protocol, "student": student,
                                 "ipc": int(q["ipc"]), "method": q["method"], "seed": int(q["seed"]),
                                 "metric": metric, "value": float(value), "preset": preset,
                                 "full_epochs": budget})  # fmt: skip
    columns = [*CELL_KEYS, *PROTOCOL_KEYS, "method", "seed", "metric", "value"]
    return pd.DataFrame(rows, columns=columns)


# ------------------------------------------------------------------ rendering
HEADING = "Claims of the papers, judged from the seeds"


def _fmt(x: float, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.{digits}f}"


def _summary(result: pd.DataFrame) -> pd.DataFrame:
    return result[result["cell"] == "all"].reset_index(drop=True)


def _counts_note(summary: pd.DataFrame) -> str:
    tested = summary[summary["verdict"] != "not tested"]
    counts = tested["verdict"].value_counts()
    parts = [f"{counts.get(v, 0)} {v}" for v in ("held", "not held", "inconclusive")]
    return (
        f"{len(tested)} of {len(summary)} claims tested on these results ({', '.join(parts)}); "
        f"the others have no cell in this grid. Rule: {RULE}"
    )


CELLS_HEADER = "cells (held / not held / inconclusive)"
INTERVAL_NOTE = (
    "Effect and 95 % CI of an `every` claim: the mean of its cells' effects, and the span of "
    "its cells' 95 % intervals (lowest lower bound, highest upper bound); its verdict is the "
    "rule over the cells, whose counts are given. An `average` claim's effect and interval are "
    "those of the seed-paired differences averaged over its cells."
)


def _cells_text(r: dict) -> str:
    """The cells column: how many, and per-cell verdicts (`every`) or 'averaged'."""
    if not r["cells"] or r["verdict"] == "not tested":
        return str(r["cells"] or 0)
    if r.get("aggregate") == "average":
        return f"{r['cells']} (averaged)"
    return f"{r['cells']} ({r.get('cell_verdicts', '')})"


def render_markdown(result: pd.DataFrame) -> str:
    summary = _summary(result)
    lines = [
        f"# {HEADING}",
        "",
        f"| claim | statement | source | {CELLS_HEADER} | seeds | effect | 95 % CI | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in summary.to_dict("records"):
        ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        fig = f" ([figure]({r['figure']}))" if r["figure"] else ""
        lines.append(
            f"| {r['claim']} | {r['statement']}{fig} | {r['source']} | {_cells_text(r)} | "
            f"{r['seeds']} | {_fmt(r['effect'])} | {ci} | **{r['verdict']}** |"
        )
    return "\n".join([*lines, "", _counts_note(summary), "", INTERVAL_NOTE, ""])


def render_html(result: pd.DataFrame) -> str:
    summary = _summary(result)
    esc = html_lib.escape
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "claim",
            "statement",
            "source",
            CELLS_HEADER,
            "seeds",
            "effect",
            "95 % CI",
            "verdict",
        )  # fmt: skip
    )
    body = []
    for r in summary.to_dict("records"):
        ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        body.append(
            "<tr>"
            + "".join(
                f"<td>{esc(str(v))}</td>"
                for v in (
                    r["claim"],
                    r["statement"],
                    r["source"],
                    _cells_text(r),
                    r["seeds"],
                    _fmt(r["effect"]),
                    ci,
                )  # fmt: skip
            )
            + f"<td><b>{esc(r['verdict'])}</b></td></tr>"
        )
    return (
        f"<html><head><meta charset='utf-8'><title>{HEADING}</title></head><body>"
        f"<h2>{HEADING}</h2><table border='1' cellpadding='4'><tr>{head}</tr>{''.join(body)}"
        f"</table><p>{esc(_counts_note(summary))}</p><p>{esc(INTERVAL_NOTE)}</p></body></html>\n"
    )


def render_latex(result: pd.DataFrame) -> str:
    from ddbench.analysis.tables import tex_escape

    summary = _summary(result)
    lines = [
        "\\begin{tabular}{llrrrl}",
        "\\toprule",
        "claim & source & cells (h/n/i) & effect & 95\\,\\% CI & verdict \\\\",
        "\\midrule",
    ]
    for r in summary.to_dict("records"):
        ci = f"[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]"
        lines.append(
            f"{tex_escape(r['claim'])} & {tex_escape(r['source'])} & {_cells_text(r)} & "
            f"{_fmt(r['effect'])} & {ci} & {tex_escape(r['verdict'])} \\\\"
        )
    lines += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(lines)


def write_claims_table(
    claims_path: str | os.PathLike,
    metric_paths: list[str | os.PathLike],
    quality_paths: list[str | os.PathLike],
    config: dict,
    stem: str | os.PathLike,
    figures: set[str] | None = None,
) -> pd.DataFrame:
    """Judge every claim of `claims_path` on the collected results; write stem.{csv,md,tex,html}.

    `figures`: the file names of the figures this grid draws; a claim's figure link is kept
    only when its figure is among them (None keeps every link).
    """
    from ddbench.analysis.tables import _records

    claims = load_claims(claims_path)
    evals = list(_records(list(metric_paths)))
    quality = list(_records(list(quality_paths)))
    kinds = {name: spec["kind"] for name, spec in config["methods"].items()}
    result = judge(claims, metric_table(evals, quality), kinds)
    if figures is not None:
        drawn = result["figure"].map(lambda f: isinstance(f, str) and Path(f).name in figures)
        result.loc[~drawn, "figure"] = ""
    result["cells"] = result["cells"].astype("Int64")
    stem = str(stem)
    with atomic_path(f"{stem}.csv") as tmp:
        result.to_csv(tmp, index=False, float_format="%.6g")
    for ext, render in (("md", render_markdown), ("tex", render_latex), ("html", render_html)):
        with atomic_path(f"{stem}.{ext}") as tmp:
            Path(tmp).write_text(render(result))
    return result


def claims_file_of(config: dict, basedir: str | os.PathLike | None = None) -> str | None:
    """The claims file a config names (`claims`), relative to the working directory or else to
    the workflow's folder; None when the key is null."""
    name = config.get("claims")
    if not name:
        return None
    path = Path(name)
    if path.is_absolute() or path.exists() or basedir is None:
        return str(path)
    return str(Path(basedir) / path)
