"""The workflow layer on its own: target lists, inputs and parameters, without Snakemake."""

import copy
from pathlib import Path
from types import SimpleNamespace as W

import pytest
import yaml

from ddbench.config import validate_config
from ddbench.workflow import Plan
from ddbench.workflow.inputs import INPUT_KINDS, input_kind

ROOT = Path(__file__).resolve().parents[1]


def _config(name="config/smoke.yaml", **over):
    cfg = yaml.safe_load((ROOT / name).read_text())
    cfg.update(over)
    return validate_config(cfg, check_sources=False, check_device=False)


@pytest.fixture(scope="module")
def smoke():
    return Plan(_config())


def test_targets_of_the_smoke_grid(smoke):
    assert len(smoke.eval_targets()) == 2 * 6 * 3 * 1 * 1  # ipcs x methods x protocols x seeds
    assert smoke.eval_targets()[0] == "results/digits/eval/hl/convnet/random/ipc1/s0.json"
    assert len(smoke.reference_targets()) == 3
    assert len(smoke.quality_targets()) == 12 and len(smoke.benchmark_targets("digits")) == 12
    assert smoke.collected("eval") == ["results/digits/eval/collected.jsonl"]
    assert "results/figures/digits-galleries" in smoke.figure_targets()
    assert smoke.all_targets()[:2] == ["results/tables/accuracy.csv", "results/tables/accuracy.md"]
    assert smoke.teacher_student_study() and not smoke.budget_study()


def test_method_inputs_come_from_the_one_declaration(smoke):
    cell = {"dataset": "digits", "ipc": "1", "seed": "0"}
    assert smoke.method_inputs(W(method="random", **cell)) == {
        "dataset": "resources/datasets/digits.h5"
    }
    assert smoke.method_inputs(W(method="herding", **cell))["features"] == (
        "results/digits/features/convnet.h5"
    )
    assert smoke.method_inputs(W(method="el2n_easy", **cell))["scores"] == (
        "results/digits/scores/dynamics.h5"
    )
    for need in ("teacher", "features", "scores", "crops", "patches", "prior", "pool"):
        assert need in INPUT_KINDS
    with pytest.raises(KeyError, match="unknown method input 'weights'"):
        input_kind("weights")


def test_grouped_seeds_share_one_rule_shape():
    cfg = _config(seeds=[0, 1, 2], group_seeds=True)
    plan = Plan(cfg)
    pattern = "results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.json"
    assert plan.per_seed(pattern) == [pattern.replace("{seed}", str(s)) for s in (0, 1, 2)]
    assert plan.seed_log("logs/x/s{seed}.log") == "logs/x/seeds.log"
    assert plan.grouped_params() == {"seeds": [0, 1, 2]}
    inputs = plan.evaluate_inputs(W(dataset="digits", protocol="slkd", method="random", ipc="1"))
    assert inputs["condensed"] == [
        f"results/digits/condensed/random/ipc1/s{s}.h5" for s in (0, 1, 2)
    ]
    assert inputs["teachers"] == ["results/digits/teachers/convnet.pt"]
    per_seed = Plan(_config(seeds=[0, 1, 2]))
    assert per_seed.per_seed(pattern) == pattern and per_seed.grouped_params() == {}


def test_exclude_and_reference_seeds():
    cfg = _config(exclude=[{"method": "kcenter", "ipc": 5}])
    cfg["reference"] = {**cfg["reference"], "seeds": [3, 4]}
    plan = Plan(cfg)
    assert not any("/kcenter/ipc5/" in t for t in plan.eval_targets())
    assert any("/kcenter/ipc1/" in t for t in plan.eval_targets())
    assert {t.rsplit("/", 1)[1] for t in plan.reference_targets()} == {"s3.json", "s4.json"}


def test_psr_pool_and_ddps_clusters_from_the_default_grid():
    cfg = copy.deepcopy(_config("config/config.yaml"))
    plan = Plan(cfg)
    pools = dict(plan.pool_table())
    assert pools and all(spec["prior"] in cfg["priors"] for spec in pools.values())
    clusters = dict(plan.cluster_table())
    assert clusters and all(name.endswith(f"-k{spec['k']}") for name, spec in clusters.items())
    psr = next(m for m, s in cfg["methods"].items() if s["kind"] == "psr")
    inputs = plan.method_inputs(W(dataset="fashion_mnist", method=psr, ipc="1", seed="0"))
    assert inputs["pool"] == f"results/fashion_mnist/pools/{next(iter(pools))}.h5"
