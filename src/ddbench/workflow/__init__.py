"""The workflow layer: target paths, the plan of every rule, method inputs, study detection.

The rule files only wire what this package computes, so all of it is importable and tested
without Snakemake. No torch, no pandas.
"""

from ddbench.workflow.inputs import INPUT_KINDS, InputKind, input_kind, register_input_kind
from ddbench.workflow.paths import (
    REFERENCE_METHOD,
    Target,
    check_identity,
    identity_mismatch,
    parse_target,
    pattern,
    target_path,
)

_PLAN = ("Plan", "as_json", "scaled")


def __getattr__(name: str):
    # the plan imports the method registry, whose modules import `paths`: load it on first use
    if name in _PLAN:
        from ddbench.workflow import plan

        return getattr(plan, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "INPUT_KINDS",
    "REFERENCE_METHOD",
    "InputKind",
    "Plan",
    "Target",
    "as_json",
    "check_identity",
    "identity_mismatch",
    "input_kind",
    "parse_target",
    "pattern",
    "register_input_kind",
    "scaled",
    "target_path",
]
