"""Refactors keep every shipped grid's jobs: the dry-run job list (rule and outputs of every job)
of each shipped config equals the one recorded before the workflow layer moved into Python.

The one intended difference: with `group_seeds: true` (config/paper.yaml) the evaluation and
quality jobs that train every seed of a cell in turn are no longer separate rules
(`evaluate_seeds`, `quality_seeds`); `evaluate` and `quality` take their outputs from the plan.
"""

import pytest
from dag_jobs import CONFIGS, golden, job_list

RENAMED = {"evaluate_seeds": "evaluate", "quality_seeds": "quality"}


def _renamed(lines):
    out = []
    for line in lines:
        rule, _, outputs = line.partition("\t")
        out.append(f"{RENAMED.get(rule, rule)}\t{outputs}")
    return sorted(out)


@pytest.mark.parametrize("name", [n for n in CONFIGS if n != "paper"])
def test_dry_run_jobs_are_unchanged(name):
    assert job_list(name) == _renamed(golden(name))


@pytest.mark.workflow
def test_paper_grid_dry_run_jobs_are_unchanged():
    jobs = job_list("paper")
    assert len(jobs) == 5352
    assert jobs == _renamed(golden("paper"))
