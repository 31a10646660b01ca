"""What a method can read: every kind of shared input, declared once.

A method says which inputs it needs (`Method.requires`, and `Method.input_names()` for the
configured variant behind each). This table says, for each kind of input, which config
section the variant must be in (and of which scorer kind), which target file provides it,
and how `condense.run_method` hands it to the method. Config validation, the workflow's
input functions, `run_method`, `verify` and the conformance checks all read this table, so a
new kind of shared input is one entry here plus the rule that produces its target.
No heavy imports: the Snakefile imports this.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InputKind:
    """One kind of input a method can declare in `requires`."""

    name: str
    target: str | None  # target kind of its file (ddbench.workflow.paths); None: the method's own
    param: str | None  # the method parameter naming the configured variant, if any
    section: str | None  # the config section that variant must be in
    scorer_kind: str | None = None  # the kind the referenced scorer must be
    # how run_method hands it over: "teacher" (loaded model in ctx.teacher), "features"
    # (array in ctx.features), "scores" (training dynamics in ctx.scores), "path" (the file or
    # folder in ctx.extras["<name>_path"])
    load: str = "path"
    doc: str = ""
    needs_model: bool = False  # made by a trained model (tests must give such methods a context)


INPUT_KINDS: dict[str, InputKind] = {}


def register_input_kind(kind: InputKind) -> InputKind:
    """Add a kind of shared input (its producing rule must build `kind.target` files)."""
    if kind.name in INPUT_KINDS and INPUT_KINDS[kind.name] != kind:
        raise ValueError(f"input kind {kind.name!r} is registered twice")
    INPUT_KINDS[kind.name] = kind
    return kind


for _kind in (
    InputKind(
        "teacher",
        "teacher",
        "teacher",
        "teachers",
        load="teacher",
        doc="a trained teacher",
        needs_model=True,
    ),
    InputKind(
        "features",
        "features",
        "features",
        "teachers",
        load="features",
        doc="penultimate features of the train split, embedded by a teacher",
    ),
    InputKind(
        "scores",
        "scores",
        "scorer",
        "scorers",
        "dynamics",
        load="scores",
        doc="training dynamics of proxy runs",
    ),
    InputKind(
        "crops",
        "scores",
        "crops",
        "scorers",
        "crops",
        doc="teacher-scored random crops",
        needs_model=True,
    ),
    InputKind("prior", "prior", "prior", "priors", doc="a diffusion prior", needs_model=True),
    InputKind(
        "patches",
        "scores",
        "scorer",
        "scorers",
        "ddps",
        doc="diffusion-scored patches",
        needs_model=True,
    ),
    InputKind(
        "clusters",
        "clusters",
        None,
        None,
        doc="per-class k-means of kept patches",
        needs_model=True,
    ),
    InputKind(
        "pool", "pool", None, None, doc="an over-complete sample pool of a prior", needs_model=True
    ),
    InputKind(
        "experts",
        "experts",
        "experts",
        "experts",
        doc="expert training trajectories (parameters after every epoch)",
        needs_model=True,
    ),
    InputKind("external", None, None, None, doc="a set made elsewhere (the method's `path`)"),
):
    register_input_kind(_kind)


def input_kind(name: str) -> InputKind:
    """The declaration of an input kind; KeyError naming the known ones."""
    if name not in INPUT_KINDS:
        raise KeyError(f"unknown method input {name!r} (known: {', '.join(sorted(INPUT_KINDS))})")
    return INPUT_KINDS[name]


def named_inputs(requires, params: dict) -> dict[str, str]:
    """need -> configured variant name, for the needs whose variant a parameter names."""
    unknown = set(requires) - set(INPUT_KINDS)
    if unknown:
        input_kind(sorted(unknown)[0])  # raises, naming the known kinds
    out = {}
    for need, kind in INPUT_KINDS.items():  # declaration order
        if need in requires and kind.param is not None and kind.param in params:
            out[need] = params[kind.param]
    return out
