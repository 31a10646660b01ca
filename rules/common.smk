# Grid, wildcard constraints and input functions. No torch here: every job re-parses this file.
import json

from ddbench.config import ConfigError, excluded, grid, method_params, validate_config
from ddbench.methods import get_method_class
from ddbench.methods.external import external_inputs
from ddbench.protocols import resolve_protocol

try:
    validate_config(config)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    teacher="[A-Za-z0-9_]+",
    scorer="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_]+",
    protocol="[A-Za-z0-9_]+",
    student="[A-Za-z0-9_]+",
    ipc="\d+",
    seed="\d+",


def config_container():
    return config["container"]


def scaled(base):
    """A resource that grows with the retry attempt (jobs killed for memory get more)."""

    def value(wildcards, attempt):
        return base * attempt

    return value


def as_json(obj):
    return json.dumps(obj, sort_keys=True)


# ---------------------------------------------------------------- inputs of each stage
def dataset_file(wildcards):
    return f"resources/datasets/{wildcards.dataset}.h5"


def dataset_spec(wildcards):
    return as_json(config["datasets"][wildcards.dataset])


def teacher_spec(wildcards):
    return as_json(config["teachers"][wildcards.teacher])


def scorer_spec(wildcards):
    return as_json(config["scorers"][wildcards.scorer])


def method_object(name):
    spec = config["methods"][name]
    return get_method_class(spec["kind"])(**method_params(config, name))


def method_spec(wildcards):
    return as_json(config["methods"][wildcards.method])


def method_inputs(wildcards):
    """The dataset plus the IPC-independent targets the method kind declares.

    A method that requires `external` reads a set made elsewhere: its `path` pattern, filled
    with the cell's ipc and seed (relative to the working directory), is an input, so
    editing the file reruns the set and its evaluations.
    """
    ds = wildcards.dataset
    inputs = {"dataset": f"resources/datasets/{ds}.h5"}
    method = method_object(wildcards.method)
    if "external" in method.requires:
        inputs.update(
            external_inputs(method.params["path"], wildcards.ipc, wildcards.seed)
        )
    for need, name in method.input_names().items():
        if need == "teacher":
            inputs["teacher"] = f"results/{ds}/teachers/{name}.pt"
        elif need == "features":
            inputs["features"] = f"results/{ds}/features/{name}.h5"
        elif need == "scores":
            inputs["scores"] = f"results/{ds}/scores/{name}.h5"
        elif need == "prior":
            inputs["prior"] = f"results/{ds}/priors/{name}"
    return inputs


def protocol_spec(wildcards):
    return as_json(
        resolve_protocol(
            wildcards.protocol, config["protocols"][wildcards.protocol]
        ).to_dict()
    )


def protocol_teachers(wildcards):
    names = resolve_protocol(
        wildcards.protocol, config["protocols"][wildcards.protocol]
    ).teachers
    return [f"results/{wildcards.dataset}/teachers/{t}.pt" for t in names]


def student_spec(wildcards):
    return as_json(config["students"][wildcards.student])


def evaluate_inputs(wildcards):
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "condensed": f"results/{wildcards.dataset}/condensed/{wildcards.method}/ipc{wildcards.ipc}/s{wildcards.seed}.h5",
        "teachers": protocol_teachers(wildcards),
    }


def reference_inputs(wildcards):
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "teachers": protocol_teachers(wildcards),
    }


def reference_epochs(wildcards):
    return config["reference"]["epochs"]


def checkpoint_path(wildcards, output):
    """Where the student checkpoint goes when the protocol keeps it ('' = not kept)."""
    keep = config["protocols"][wildcards.protocol].get("keep_checkpoint", False)
    return str(output.metrics).replace(".json", ".pt") if keep else ""


# ---------------------------------------------------------------- targets
def eval_targets():
    return [
        f"results/{c['dataset']}/eval/{c['protocol']}/{c['student']}/{c['method']}/ipc{c['ipc']}/s{c['seed']}.json"
        for c in grid(config)
    ]


def reference_targets():
    if not config["reference"]["enabled"]:
        return []
    seeds = config["reference"]["seeds"] or config["seeds"]
    out = []
    for ds in config["datasets"]:
        for p in config["protocols"]:
            for st in config["students"]:
                for s in seeds:
                    cell = {"dataset": ds, "protocol": p, "student": st, "seed": s}
                    if not excluded(config, cell):
                        out.append(f"results/{ds}/eval/{p}/{st}/full_train/s{s}.json")
    return out


def table_targets():
    return expand("results/tables/accuracy.{ext}", ext=["csv", "md"])


def all_targets():
    return table_targets()
