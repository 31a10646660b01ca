"""Claims judged from the seeds: known answers on a tiny hand-made results tree."""

import math
import textwrap

import numpy as np
import pandas as pd
import pytest

from ddbench.analysis.claims import (
    interval,
    judge,
    load_claims,
    metric_table,
    verdict,
    write_claims_table,
)
from ddbench.config import ConfigError
from ddbench.data.h5io import write_json
from ddbench.workflow.paths import target_path

# accuracy per (protocol, method) for seeds 0, 1, 2 at IPC 10 of dataset d, student s
ACC = {
    ("hl", "random"): [60.0, 61.0, 59.0],
    ("hl", "herding"): [66.0, 67.5, 65.0],  # ~ +6 over random, tight: held
    ("hl", "dm"): [55.0, 57.0, 54.0],  # ~ -4.7 vs random: "dm > random" not held
    ("hl", "rded"): [70.0, 50.0, 61.5],  # ~ +0.5 ± 10: inconclusive
    ("slkd", "random"): [75.0, 75.2, 74.9],
    ("slkd", "herding"): [75.3, 75.1, 75.0],
    ("slkd", "dm"): [74.8, 75.4, 75.0],
    ("slkd", "rded"): [74.9, 75.0, 75.2],
}
KINDS = {"random": "random", "herding": "herding", "dm": "dm", "rded": "rded"}
CLAIMS = """
claims:
  - id: herding_beats_random
    statement: herding is above random under HL
    source: "hand-made"
    metric: accuracy
    where: {protocol: hl}
    a: {method: herding}
    b: {method: random}
    direction: greater
    margin: 1.0
  - id: dm_beats_random
    statement: DM is above random under HL
    source: "hand-made"
    where: {protocol: hl}
    a: {method: dm}
    b: {method: random}
    direction: greater
  - id: rded_beats_random
    statement: RDED is above random under HL
    source: "hand-made"
    where: {protocol: hl}
    a: {method: rded}
    b: {method: random}
    direction: greater
  - id: slkd_saturates
    statement: under SL+KD all methods are within 1.5 points
    source: "hand-made"
    where: {protocol: slkd}
    a: {spread: all}
    b: {value: 0}
    direction: within
    margin: 1.5
  - id: hl_gap_larger
    statement: the HL spread exceeds the SL+KD spread
    source: "hand-made"
    where: {protocol: slkd}
    a: {spread: [random, herding, dm], protocol: hl}
    b: {spread: [random, herding, dm]}
    direction: greater
  - id: best_coreset_vs_dm
    statement: DM is below the best coreset under HL
    source: "hand-made"
    where: {protocol: hl}
    a: {method: dm}
    b: {method: "@best_coreset"}
    direction: less
  - id: cifar_only
    statement: a claim about a dataset not in these results
    source: "hand-made"
    where: {dataset: cifar10}
    a: {method: dm}
    b: {method: random}
    direction: greater
"""


def _tree(root):
    paths = []
    for (protocol, method), accs in ACC.items():
        for seed, acc in enumerate(accs):
            path = root / target_path(
                "eval",
                dataset="d",
                protocol=protocol,
                student="s",
                method=method,
                ipc=10,
                seed=seed,
            )
            rec = {"dataset": "d", "protocol": protocol, "student": "s", "method": method,
                   "ipc": 10, "seed": seed, "accuracy": acc}  # fmt: skip
            write_json(path, rec)
            paths.append(path)
    return paths


def test_known_answers_held_not_held_inconclusive(tmp_path):
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(textwrap.dedent(CLAIMS))
    config = {"methods": {m: {"kind": k} for m, k in KINDS.items()}}
    result = write_claims_table(claims_file, _tree(tmp_path), [], config, tmp_path / "claims")
    summary = result[result["cell"] == "all"].set_index("claim")
    assert summary.loc["herding_beats_random", "verdict"] == "held"
    assert summary.loc["dm_beats_random", "verdict"] == "not held"
    assert summary.loc["rded_beats_random", "verdict"] == "inconclusive"
    assert summary.loc["slkd_saturates", "verdict"] == "held"
    assert summary.loc["hl_gap_larger", "verdict"] == "held"
    assert summary.loc["best_coreset_vs_dm", "verdict"] == "held"  # herding is the best coreset
    assert summary.loc["cifar_only", "verdict"] == "not tested"
    eff = summary.loc["herding_beats_random", "effect"]
    assert eff == pytest.approx(np.mean([6.0, 6.5, 6.0]))
    md = (tmp_path / "claims.md").read_text()
    assert "6 of 7 claims tested" in md and "**inconclusive**" in md
    for ext in ("csv", "tex", "html"):
        assert (tmp_path / f"claims.{ext}").is_file()


def test_interval_and_rule_by_hand():
    mean, lo, hi = interval(np.array([1.0, 2.0, 3.0]))
    # sd 1, n 3: t(2) = 4.303, half-width 4.303 / sqrt(3)
    assert mean == 2.0 and hi - mean == pytest.approx(4.303 / math.sqrt(3))
    assert verdict("greater", 0.0, 0.5, 3.0) == "held"
    assert verdict("greater", 1.0, 0.5, 3.0) == "inconclusive"
    assert verdict("greater", 1.0, -3.0, 0.5) == "not held"
    assert verdict("within", 1.0, -0.5, 0.5) == "held"
    assert verdict("within", 1.0, 1.5, 2.0) == "not held"
    assert verdict("less", 0.0, -2.0, -1.0) == "held"
    assert all(math.isnan(v) for v in interval(np.array([4.0]))[1:])
    assert verdict("greater", 0.0, math.nan, math.nan) == "inconclusive"  # one seed


def test_average_aggregate_pairs_seeds_across_cells():
    rows = []
    for ipc, shift in ((1, 3.0), (10, -1.0)):
        for seed in range(3):
            for method, acc in (("a", 50.0 + shift + 0.1 * seed), ("b", 50.0)):
                rows.append({"dataset": "d", "protocol": "hl", "student": "s", "ipc": ipc,
                             "preset": "hl", "full_epochs": "none", "method": method,
                             "seed": seed, "metric": "accuracy", "value": acc})  # fmt: skip
    from ddbench.analysis.claims import Claim

    claim = Claim("c", "a over b", "x", {"method": "a"}, {"method": "b"}, "greater",
                  aggregate="average")  # fmt: skip
    out = judge([claim], pd.DataFrame(rows), {})
    agg = out[out["cell"] == "all"].iloc[0]
    assert agg["cells"] == 2 and agg["effect"] == pytest.approx(1.1)
    every = judge([Claim("c", "s", "x", {"method": "a"}, {"method": "b"}, "greater")],
                  pd.DataFrame(rows), {})  # fmt: skip
    assert every[every["cell"] == "all"].iloc[0]["verdict"] == "not held"  # IPC 10 is below


def test_bad_claims_files_are_refused(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text(
        "claims:\n  - {id: x, statement: s, source: p, a: {method: m}, b: {}, direction: up}\n"
    )
    with pytest.raises(ConfigError, match="direction"):
        load_claims(bad)
    bad.write_text(
        "claims:\n  - {id: x, statement: s, source: p, a: {method: m}, b: {}, direction: less}\n"
    )
    with pytest.raises(ConfigError, match=r"claims\[0\]\.b: exactly one of"):
        load_claims(bad)


def test_quality_metrics_join_every_protocol_of_their_cell():
    evals = [{"dataset": "d", "protocol": p, "student": "s", "method": "m", "ipc": 1, "seed": 0,
              "accuracy": 1.0} for p in ("hl", "slkd")]  # fmt: skip
    quality = [{"dataset": "d", "method": "m", "ipc": 1, "seed": 0, "density": 0.8}]
    table = metric_table(evals, quality)
    dens = table[table["metric"] == "density"]
    assert sorted(dens["protocol"]) == ["hl", "slkd"] and set(dens["value"]) == {0.8}


def test_at_least_at_most_and_distilled_selectors():
    assert verdict("at_least", 1.0, -0.5, 2.0) == "held"
    assert verdict("at_least", 1.0, -3.0, -1.5) == "not held"
    assert verdict("at_most", 1.0, -2.0, 0.5) == "held"
    assert verdict("at_most", 1.0, 1.5, 3.0) == "not held"
    from ddbench.analysis.claims import Claim

    rows = [
        {"dataset": "d", "protocol": "hl", "student": "s", "ipc": 1, "preset": "hl",
         "full_epochs": "none", "method": m, "seed": seed, "metric": "accuracy", "value": v + seed}
        for m, v in (("random", 50.0), ("herding", 55.0), ("dm", 40.0), ("sre2l", 52.0))
        for seed in range(3)
    ]  # fmt: skip
    kinds = {"random": "random", "herding": "herding", "dm": "dm", "sre2l": "sre2l"}
    best = Claim("b", "s", "x", {"method": "@best_distilled"}, {"method": "@best_coreset"}, "less")
    worst = Claim("w", "s", "x", {"method": "@worst_distilled"}, {"method": "random"}, "less")
    out = judge([best, worst], pd.DataFrame(rows), kinds).set_index(["claim", "cell"])
    assert out.loc[("b", "all"), "effect"] == pytest.approx(52 - 55)  # sre2l vs herding
    assert out.loc[("w", "all"), "effect"] == pytest.approx(40 - 50)  # dm vs random


def test_shipped_claims_name_methods_and_protocols_the_studies_configure():
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[1]
    claims = load_claims(root / "config/claims.yaml")
    assert len(claims) >= 10 and all(c.source for c in claims)
    methods, presets = set(), set()
    for study in (root / "config/studies").glob("*.yaml"):
        cfg = yaml.safe_load(study.read_text())
        methods |= set(cfg["methods"])
        presets |= {p["preset"] for p in cfg["protocols"].values()}
    for c in claims:
        for side in (c.a, c.b):
            method = side.get("method", [])
            named = method if isinstance(method, list) else [method]
            named = named if "method" in side else side.get("spread", [])
            named = [] if named == "all" else named
            for m in named:
                assert m.startswith("@") or m in methods, (c.id, m)
            if "preset" in side:
                assert side["preset"] in presets, (c.id, side["preset"])
        wanted = c.where.get("preset", [])
        for p in wanted if isinstance(wanted, list) else [wanted]:
            assert p in presets, (c.id, p)


def test_method_variants_pick_the_one_each_cell_evaluates():
    """A list side reads, per cell, the variant evaluated there (CAD-Prune built per budget)."""
    rows = []
    for protocol, budget, variant, shift in (
        ("hl_b05", 0.5, "cp_b05", 2.0),
        ("hl_b2", 2.0, "cp_b2", -2.0),
    ):
        for seed in range(3):
            for method, acc in ((variant, 50.0 + shift + 0.1 * seed), ("el2n", 50.0)):
                rows.append({"dataset": "d", "protocol": protocol, "student": "s", "ipc": 10,
                             "preset": "hl", "full_epochs": budget, "method": method,
                             "seed": seed, "metric": "accuracy", "value": acc})  # fmt: skip
    from ddbench.analysis.claims import Claim

    claim = Claim("c", "cp over el2n", "x", {"method": ["cp_b05", "cp_b2"]}, {"method": "el2n"},
                  "greater")  # fmt: skip
    out = judge([claim], pd.DataFrame(rows), {})
    per_cell = out[out["cell"] != "all"].set_index("cell")["effect"]
    assert sorted(per_cell.round(6)) == [-1.9, 2.1]
    assert out[out["cell"] == "all"].iloc[0]["verdict"] == "not held"
    both = pd.DataFrame(rows + [{**rows[0], "method": "cp_b2"}])
    with pytest.raises(ConfigError, match="several of these variants"):
        judge([claim], both, {})
    bad = Claim("c", "s", "x", {"method": ["@best_coreset"]}, {"method": "el2n"}, "greater")
    from ddbench.analysis.claims import _check_side

    with pytest.raises(ConfigError, match="variants"):
        _check_side(bad.a, "claims[0].a")


def test_every_claim_reports_its_cells_verdicts_and_the_span_of_their_intervals(tmp_path):
    """Two cells, one held and one inconclusive: the claim is inconclusive, the summary row
    counts the cells' verdicts and its interval spans the two cells' intervals."""
    accs = {  # per protocol: (random, herding) over seeds 0..2
        "p1": ([70.0, 71.0, 70.5], [75.0, 76.0, 75.5]),  # +5 every seed: held
        "p2": ([70.0, 71.0, 70.5], [72.0, 70.0, 71.5]),  # +2, -1, +1: inconclusive
    }
    paths = []
    for protocol, (rnd, herd) in accs.items():
        for method, values in (("random", rnd), ("herding", herd)):
            for seed, acc in enumerate(values):
                path = tmp_path / target_path("eval", dataset="d", protocol=protocol,
                                              student="s", method=method, ipc=10, seed=seed)  # fmt: skip
                write_json(path, {"dataset": "d", "protocol": protocol, "student": "s",
                                  "method": method, "ipc": 10, "seed": seed, "accuracy": acc})  # fmt: skip
                paths.append(path)
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(
        textwrap.dedent(
            """\
            claims:
              - id: herding_beats_random
                statement: herding is above random
                source: hand-made
                a: {method: herding}
                b: {method: random}
                direction: greater
                figure: budget_curves
            """
        )
    )
    config = {"methods": {"random": {"kind": "random"}, "herding": {"kind": "herding"}}}
    # a grid that does not draw the claim's figure gets no link to it
    write_claims_table(claims_file, paths, [], config, tmp_path / "claims", figures=set())
    assert "[figure]" not in (tmp_path / "claims.md").read_text()
    result = write_claims_table(
        claims_file, paths, [], config, tmp_path / "claims", figures={"d-budget_curves.png"}
    )
    assert "([figure](../figures/d-budget_curves.png))" in (tmp_path / "claims.md").read_text()
    cells = result[result["cell"] != "all"]
    assert sorted(cells["verdict"]) == ["held", "inconclusive"]
    row = result[result["cell"] == "all"].iloc[0]
    assert row["verdict"] == "inconclusive" and row["cell_verdicts"] == "1 / 0 / 1"
    assert row["ci_low"] == cells["ci_low"].min() and row["ci_high"] == cells["ci_high"].max()
    assert row["effect"] == pytest.approx(np.mean([5.0, 2.0 / 3.0]))
    md = (tmp_path / "claims.md").read_text()
    assert "| 2 (1 / 0 / 1) |" in md and "span of its cells' 95 % intervals" in md


def test_a_selector_whose_only_candidate_is_the_other_side_is_not_tested(tmp_path):
    """@best_coreset against random in a grid whose only coreset is random would compare
    random with itself (effect 0, interval [0, 0], 'held'): that cell is not tested."""
    paths = []
    for method, accs in (("random", [50.0, 52.0, 51.0]), ("gen", [40.0, 41.0, 39.0])):
        for seed, acc in enumerate(accs):
            path = tmp_path / target_path("eval", dataset="d", protocol="sl", student="s",
                                          method=method, ipc=1, seed=seed)  # fmt: skip
            write_json(path, {"dataset": "d", "protocol": "sl", "student": "s", "method": method,
                              "ipc": 1, "seed": seed, "accuracy": acc})  # fmt: skip
            paths.append(path)
    claims_file = tmp_path / "claims.yaml"
    claims_file.write_text(
        textwrap.dedent(
            """\
            claims:
              - id: best_coreset_near_random
                statement: the best coreset is within 1 point of random
                source: hand-made
                a: {method: "@best_coreset"}
                b: {method: random}
                direction: within
                margin: 1.0
              - id: gen_below_best_coreset
                statement: the best distilled set is below the best coreset
                source: hand-made
                a: {method: "@best_distilled"}
                b: {method: "@best_coreset"}
                direction: less
            """
        )
    )
    config = {"methods": {"random": {"kind": "random"}, "gen": {"kind": "gen"}}}
    result = write_claims_table(claims_file, paths, [], config, tmp_path / "claims")
    summary = result[result["cell"] == "all"].set_index("claim")
    assert summary.loc["best_coreset_near_random", "verdict"] == "not tested"
    # a selector against another selector still reads random as the best coreset
    assert summary.loc["gen_below_best_coreset", "verdict"] == "held"
    assert summary.loc["gen_below_best_coreset", "effect"] == pytest.approx(-11.0)
