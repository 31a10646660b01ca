# Grid, wildcard constraints and input functions. No torch here: every job re-parses this file.
import functools
import json

from ddbench.config import (
    ConfigError,
    check_config_files,
    excluded,
    grid,
    method_params,
    validate_config,
)
from ddbench.methods import get_method_class
from ddbench.methods.external import external_inputs
from ddbench.protocols import resolve_protocol

# Every parse (jobs re-parse too): no data file is read. The main process also refuses
# duplicate keys in the config files and `device: cuda` without a GPU (jobs may run elsewhere).
try:
    if workflow.is_main_process:
        check_config_files(workflow.configfiles)
    validate_config(config, read_sources=False, check_device=workflow.is_main_process)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# The config is fixed for the run: compute the grid once, not once per input-function call.
GRID = list(grid(config))


def memo(fn):
    """Memoise a target-list helper of the fixed config; callers get their own list copy."""
    cache = {}

    def wrapper(*args):
        if args not in cache:
            cache[args] = fn(*args)
        return list(cache[args])

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    teacher="[A-Za-z0-9_]+",
    scorer="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_]+",
    protocol="[A-Za-z0-9_]+",
    student="[A-Za-z0-9_]+",
    ipc="\d+",
    seed="\d+",
    extractor="[A-Za-z0-9_]+",
    k="\d+",
    pool="[A-Za-z0-9_]+",


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


def scorer_inputs(wildcards):
    """The dataset, plus the scoring teacher (crops, ddps) and the prior (ddps)."""
    inputs = {"dataset": f"resources/datasets/{wildcards.dataset}.h5"}
    spec = config["scorers"][wildcards.scorer]
    if spec["kind"] == "crops":
        inputs["teacher"] = f"results/{wildcards.dataset}/teachers/{spec['teacher']}.pt"
    elif spec["kind"] == "ddps":
        if spec.get("prior") not in config.get("priors", {}):
            raise WorkflowError(
                f"config error at scorers.{wildcards.scorer}.prior: {spec.get('prior')!r} "
                "is not a configured prior"
            )
        inputs["prior"] = f"results/{wildcards.dataset}/priors/{spec['prior']}"
        inputs["teacher"] = f"results/{wildcards.dataset}/teachers/{spec['teacher']}.pt"
    return inputs


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
        elif need == "crops":
            inputs["crops"] = f"results/{ds}/scores/{name}.h5"
        elif need == "prior":
            inputs["prior"] = f"results/{ds}/priors/{name}"
        elif need == "patches":
            check_scorer(wildcards.method, name, "ddps")
            inputs["patches"] = f"results/{ds}/scores/{name}.h5"
        elif need == "clusters":
            inputs["clusters"] = f"results/{ds}/clusters/{name}.h5"
    if "pool" in method.requires:
        inputs["pool"] = f"results/{ds}/pools/{method_pool(wildcards.method)}.h5"
    return inputs


# ---------------------------------------------------------------- diffusion-driven selection
def check_scorer(method, scorer, kind):
    """A method's scorer must be configured and of the kind the method reads."""
    spec = config["scorers"].get(scorer)
    if spec is None or spec["kind"] != kind:
        got = "not configured" if spec is None else f"of kind {spec['kind']!r}"
        raise WorkflowError(
            f"config error at methods.{method}.scorer: scorer {scorer!r} is {got}; "
            f"this method needs a {kind!r} scorer"
        )


def method_pool(method):
    """File name of the sample pool a pool-reading method (psr) uses."""
    return method_object(method).pool_name(max(config["ipcs"]))


@memo
def pool_table():
    """Pool name -> the pool-defining parameters, over every configured pool-reading method."""
    table = {}
    for name in config["methods"]:
        m = method_object(name)
        if "pool" in m.requires:
            spec = m.pool_params(max(config["ipcs"]))
            table[m.pool_name(max(config["ipcs"]))] = spec
    return list(table.items())


def pool_definition(wildcards):
    table = dict(pool_table())
    if wildcards.pool not in table:
        raise WorkflowError(f"no configured method uses the pool {wildcards.pool!r}")
    return table[wildcards.pool]


def pool_inputs(wildcards):
    spec = pool_definition(wildcards)
    if spec["prior"] not in config.get("priors", {}):
        raise WorkflowError(
            f"config error: pool {wildcards.pool} names prior {spec['prior']!r}, which is not "
            "a configured prior"
        )
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "prior": f"results/{wildcards.dataset}/priors/{spec['prior']}",
    }


def pool_spec_json(wildcards):
    return as_json(pool_definition(wildcards))


@memo
def cluster_table():
    """Clusters target name (`{extractor}-k{k}`) -> what to cluster, over every ddps method."""
    table = {}
    for name in config["methods"]:
        m = method_object(name)
        if "clusters" not in m.requires or m.cluster_extractor() is None:
            continue
        scorer = m.params["scorer"]
        check_scorer(name, scorer, "ddps")
        table[m.input_names()["clusters"]] = {
            "scorer": scorer,
            "features": m.params.get("clustering", "dift"),
            "k": int(m.params.get("k", 32)),
            "seed": int(config["scorers"][scorer].get("seed", 0)),
            "n_init": 4,
        }
    return list(table.items())


def cluster_params(wildcards):
    table = dict(cluster_table())
    key = f"{wildcards.extractor}-k{wildcards.k}"
    if key not in table:
        raise WorkflowError(f"no configured ddps method uses the clusters {key!r}")
    return table[key]


def clusters_inputs(wildcards):
    ds = wildcards.dataset
    return {
        "dataset": f"resources/datasets/{ds}.h5",
        "scores": f"results/{ds}/scores/{cluster_params(wildcards)['scorer']}.h5",
    }


def clusters_spec_json(wildcards):
    return as_json(cluster_params(wildcards))


@functools.cache
def resolved_protocol(name):
    """The resolved protocol of a configured name, once per parse (every evaluation asks)."""
    return resolve_protocol(name, config["protocols"][name])


@functools.cache
def protocol_json(name):
    return as_json(resolved_protocol(name).to_dict())


def protocol_spec(wildcards):
    return protocol_json(wildcards.protocol)


def protocol_teachers(wildcards):
    names = resolved_protocol(wildcards.protocol).teachers
    return [f"results/{wildcards.dataset}/teachers/{t}.pt" for t in names]


def student_spec(wildcards):
    return as_json(config["students"][wildcards.student])


def evaluate_inputs(wildcards):
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "condensed": f"results/{wildcards.dataset}/condensed/{wildcards.method}/ipc{wildcards.ipc}/s{wildcards.seed}.h5",
        "teachers": protocol_teachers(wildcards),
    }


def evaluate_seeds_inputs(wildcards):
    """Grouped evaluation (`group_seeds`): the condensed set of every seed of the cell."""
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "condensed": seed_files(
            f"results/{wildcards.dataset}/condensed/{wildcards.method}/ipc{wildcards.ipc}/s{{seed}}.h5"
        ),
        "teachers": protocol_teachers(wildcards),
    }


def seed_files(pattern):
    """One path per configured seed: `pattern` with `{seed}` filled, other wildcards kept."""
    return [pattern.replace("{seed}", str(s)) for s in config["seeds"]]


def reference_inputs(wildcards):
    return {
        "dataset": f"resources/datasets/{wildcards.dataset}.h5",
        "teachers": protocol_teachers(wildcards),
    }


def reference_epochs(wildcards):
    return config["reference"]["epochs"]


def checkpoint_path(wildcards, output):
    """Where the student checkpoint goes when the protocol keeps it ('' = not kept).

    A grouped evaluation (several metrics files) gets one path per seed, space-separated.
    """
    keep = config["protocols"][wildcards.protocol].get("keep_checkpoint", False)
    if not keep:
        return ""
    metrics = [output.metrics] if isinstance(output.metrics, str) else output.metrics
    return " ".join(str(m).replace(".json", ".pt") for m in metrics)


# ---------------------------------------------------------------- targets
@memo
def eval_targets():
    return [
        f"results/{c['dataset']}/eval/{c['protocol']}/{c['student']}/{c['method']}/ipc{c['ipc']}/s{c['seed']}.json"
        for c in GRID
    ]


@memo
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
    return (
        table_targets()
        + study_table_targets()
        + collected("quality")
        + figure_targets()
    )


# ---------------------------------------------------------------- quality, tables, figures
def quality_teacher(wildcards=None):
    """The teacher whose features measure quality (`quality.teacher`, else the first teacher).

    None when no teachers are configured: then there are no quality targets.
    """
    name = config["quality"]["teacher"]
    if name is None:
        return next(iter(config["teachers"]), None)
    if name not in config["teachers"]:
        known = ", ".join(sorted(config["teachers"])) or "none configured"
        raise WorkflowError(
            f"config error at quality.teacher: {name!r} is not a configured teacher (known: {known})"
        )
    return name


@memo
def condensed_cells(dataset=None):
    """(dataset, method, ipc, seed) of every condensed set the grid evaluates."""
    cells = {}
    for c in GRID:
        if dataset is None or c["dataset"] == dataset:
            cells[(c["dataset"], c["method"], c["ipc"], c["seed"])] = None
    return list(cells)


def resolved_protocols():
    return {
        name: resolve_protocol(name, spec).to_dict()
        for name, spec in config["protocols"].items()
    }


def baseline_method():
    """The method named in `gain over random`: the first configured method of kind random."""
    for name, spec in config["methods"].items():
        if spec["kind"] == "random":
            return name
    return "random"


@memo
def quality_targets(dataset=None):
    if quality_teacher() is None:
        return []
    return [
        f"results/{d}/quality/{m}/ipc{i}/s{s}.json"
        for d, m, i, s in condensed_cells(dataset)
    ]


def quality_real_inputs(wildcards):
    """What quality compares a set with: the dataset and the quality teacher's features."""
    ds, teacher = wildcards.dataset, quality_teacher()
    return {
        "dataset": f"resources/datasets/{ds}.h5",
        "features": f"results/{ds}/features/{teacher}.h5",
        "teacher": f"results/{ds}/teachers/{teacher}.pt",
    }


def quality_inputs(wildcards):
    return {
        **quality_real_inputs(wildcards),
        "condensed": f"results/{wildcards.dataset}/condensed/{wildcards.method}/ipc{wildcards.ipc}/s{wildcards.seed}.h5",
    }


def quality_seeds_inputs(wildcards):
    """Grouped quality (`group_seeds`): the condensed set of every seed of the cell."""
    return {
        **quality_real_inputs(wildcards),
        "condensed": seed_files(
            f"results/{wildcards.dataset}/condensed/{wildcards.method}/ipc{wildcards.ipc}/s{{seed}}.h5"
        ),
    }


@memo
def benchmark_targets(dataset=None):
    """Benchmark TSVs of the condense jobs: the construction cost of every set."""
    return [
        f"benchmarks/{d}/condensed/{m}/ipc{i}/s{s}.tsv"
        for d, m, i, s in condensed_cells(dataset)
    ]


COLLECTED = {
    "eval": "results/{dataset}/eval/collected.jsonl",
    "quality": "results/{dataset}/quality/collected.jsonl",
    "benchmarks": "results/{dataset}/cost/condense_benchmarks.jsonl",
}


def collected(kind, dataset=None):
    """The per-dataset collected results of one kind (all datasets without `dataset`).

    Tables and figures read these instead of listing every result file: one input link per
    dataset instead of one per job keeps the DAG of a paper-sized grid small.
    """
    if kind == "quality" and quality_teacher() is None:
        return []
    names = [dataset] if dataset is not None else list(config["datasets"])
    return [COLLECTED[kind].format(dataset=d) for d in names]


def dataset_collected(kind):
    return lambda wildcards: collected(kind, wildcards.dataset)


def dataset_eval_targets(wildcards):
    return eval_targets_of(wildcards.dataset)


@memo
def eval_targets_of(dataset):
    return [t for t in eval_targets() if t.startswith(f"results/{dataset}/")]


def dataset_reference_targets(wildcards):
    prefix = f"results/{wildcards.dataset}/"
    return [t for t in reference_targets() if t.startswith(prefix)]


def dataset_benchmark_targets(wildcards):
    return benchmark_targets(wildcards.dataset)


def dataset_quality_targets(wildcards):
    return quality_targets(wildcards.dataset)


def first_seed_sets(dataset):
    """(method, ipc, seed) with the smallest seed of each (method, ipc): the sets t-SNE shows."""
    first = {}
    for _, m, i, s in condensed_cells(dataset):
        first[(m, i)] = min(s, first.get((m, i), s))
    return [(m, i, s) for (m, i), s in first.items()]


def tsne_inputs(wildcards):
    ds = wildcards.dataset
    return {
        "features": f"results/{ds}/features/{quality_teacher()}.h5",
        "condensed_features": [
            f"results/{ds}/quality/{m}/ipc{i}/s{s}.h5"
            for m, i, s in first_seed_sets(ds)
        ],
    }


def gallery_inputs(wildcards):
    ds = wildcards.dataset
    return {
        "dataset": f"resources/datasets/{ds}.h5",
        "condensed": [
            f"results/{ds}/condensed/{m}/ipc{i}/s{s}.h5"
            for _, m, i, s in condensed_cells(ds)
        ],
    }


def gallery_cells(wildcards):
    """(method, ipc, seed) of each gallery input, so an unreadable set keeps its panel name."""
    return [[m, i, s] for _, m, i, s in condensed_cells(wildcards.dataset)]


def tsne_sets(wildcards):
    """(method, ipc) of each t-SNE input, so an unreadable one keeps its name."""
    return [[m, i] for m, i, _ in first_seed_sets(wildcards.dataset)]


def teacher_student_study():
    """A teacher x student matrix needs teacher-label protocols and several teachers or students."""
    from ddbench.tables import teacher_sets

    sets = teacher_sets(resolved_protocols())
    return bool(sets) and (len(set(sets.values())) > 1 or len(config["students"]) > 1)


def budget_study():
    """Compute-budget curves need protocols that differ only in `full_epochs`."""
    from ddbench.tables import budget_sweeps

    return bool(budget_sweeps(resolved_protocols()))


def study_table_targets():
    out = []
    names = ["gain", "dd_ranking", "cost"]
    if quality_teacher() is not None:
        names.append("quality")
    if teacher_student_study():
        names.append("teacher_student")
    for name in names:
        out += expand(
            "results/tables/{name}.{ext}", name=name, ext=["csv", "md", "tex", "html"]
        )
    return out + ["results/tables/accuracy.tex", "results/tables/accuracy.html"]


def figure_targets():
    out = []
    for ds in config["datasets"]:
        pairs = {(c["protocol"], c["student"]) for c in GRID if c["dataset"] == ds}
        names = ["label_gap", "accuracy_vs_cost"]
        if quality_teacher() is not None:
            names += ["prdc", "tsne_overview"]
            out.append(f"results/figures/{ds}-tsne")
        if teacher_student_study():
            names.append("teacher_student")
        if budget_study():
            names.append("budget_curves")
        names += [f"accuracy_vs_ipc-{p}-{st}" for p, st in sorted(pairs)]
        out += expand(
            f"results/figures/{ds}-{{name}}.{{ext}}", name=names, ext=["svg", "png"]
        )
        out.append(f"results/figures/{ds}-galleries")
    return out
