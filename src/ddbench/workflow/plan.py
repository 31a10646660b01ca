"""The workflow's plan for one validated config: every target list, input and parameter.

`Plan(config)` is what the rule files call: target lists (`all_targets`, `eval_targets`, …),
input functions (`method_inputs(wildcards)`, …) and parameter functions (`method_spec`, …).
Everything here is plain Python on the config, unit-tested without Snakemake; the rule files
only wire it. `wildcards` is anything with the wildcard names as attributes. No torch, no
pandas: every Snakemake job re-parses the workflow.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from ddbench.config import ConfigError, excluded, grid, method_params
from ddbench.methods import get_method_class
from ddbench.training.protocols import resolve_protocol
from ddbench.workflow import studies
from ddbench.workflow.inputs import input_kind
from ddbench.workflow.paths import REFERENCE_METHOD, target_path

TABLE_FORMATS = ("csv", "md", "tex", "html")
FIGURE_FORMATS = ("svg", "png")
COLLECTED = {
    "eval": "collected_eval",
    "quality": "collected_quality",
    "tm_loss": "collected_tm_loss",
    "benchmarks": "collected_benchmarks",
}


def _memo(fn):
    """Memoise a target-list method of the fixed config; callers get their own list copy."""
    cache: dict = {}

    @functools.wraps(fn)
    def wrapper(self, *args):
        key = (id(self), *args)
        if key not in cache:
            cache[key] = fn(self, *args)
        return list(cache[key])

    return wrapper


def as_json(obj: Any) -> str:
    """Canonical JSON of a parameter (Snakemake reruns a job when its params change)."""
    return json.dumps(obj, sort_keys=True)


def scaled(base: int):
    """A resource that grows with the retry attempt (jobs killed for memory get more)."""

    def value(wildcards, attempt):
        return base * attempt

    return value


class Plan:
    """Targets, inputs and parameters of every rule for one validated config."""

    def __init__(self, config: dict, basedir: str | None = None):
        self.config = config
        self.basedir = basedir  # the workflow's folder (shipped files such as the claims)
        self.grid = list(grid(config))
        self.grouped = bool(config["group_seeds"])
        self.max_ipc = max(config["ipcs"])

    # ------------------------------------------------------------ per-variant parameters
    def dataset_file(self, wildcards) -> str:
        return target_path("dataset", dataset=wildcards.dataset)

    def dataset_spec(self, wildcards) -> str:
        return as_json(self.config["datasets"][wildcards.dataset])

    def teacher_spec(self, wildcards) -> str:
        return as_json(self.config["teachers"][wildcards.teacher])

    def teacher_file(self, wildcards) -> str:
        return target_path("teacher", dataset=wildcards.dataset, name=wildcards.teacher)

    def scorer_spec(self, wildcards) -> str:
        return as_json(self.config["scorers"][wildcards.scorer])

    def experts_spec(self, wildcards) -> str:
        """The expert trajectories' spec (rule train_experts): no IPC, no seed of the grid, so
        every IPC and seed of the methods that name them reads one folder."""
        return as_json(self.config["experts"][wildcards.experts])

    def student_spec(self, wildcards) -> str:
        return as_json(self.config["students"][wildcards.student])

    def method_spec(self, wildcards) -> str:
        return as_json(self.config["methods"][wildcards.method])

    def scorer_inputs(self, wildcards) -> dict[str, str]:
        """The dataset, plus what the scorer kind reads (registry: crops a teacher, ddps a prior
        and a teacher)."""
        from ddbench.registry import SCORERS

        ds = wildcards.dataset
        spec = self.config["scorers"][wildcards.scorer]
        inputs = {"dataset": target_path("dataset", dataset=ds)}
        for need in SCORERS.get(spec["kind"]).inputs:  # e.g. teacher, prior
            inputs[need] = target_path(need, dataset=ds, name=spec[need])
        return inputs

    # ------------------------------------------------------------ methods and their inputs
    @functools.cache  # noqa: B019  (one Plan per parse)
    def method(self, name: str):
        """The configured method object of a method name."""
        spec = self.config["methods"][name]
        return get_method_class(spec["kind"])(**method_params(self.config, name))

    def method_input_names(self, name: str) -> dict[str, str]:
        """need -> file name stem of every shared input the method reads (see workflow.inputs)."""
        method = self.method(name)
        names = dict(method.input_names())
        if "pool" in method.requires:
            names["pool"] = method.pool_name(self.max_ipc)
        return names

    def method_inputs(self, wildcards) -> dict[str, str]:
        """The dataset plus every shared target the method declares.

        A method that requires `external` reads a set made elsewhere: its `path` pattern,
        filled with the cell's ipc and seed (relative to the working directory), is an input,
        so editing the file reruns the set and its evaluations.
        """
        ds = wildcards.dataset
        inputs = {"dataset": target_path("dataset", dataset=ds)}
        method = self.method(wildcards.method)
        if "external" in method.requires:
            from ddbench.methods.external import external_inputs

            inputs.update(external_inputs(method.params["path"], wildcards.ipc, wildcards.seed))
        for need, name in self.method_input_names(wildcards.method).items():
            kind = input_kind(need)
            if kind.target is not None:
                inputs[need] = target_path(kind.target, dataset=ds, name=name)
        return inputs

    @_memo
    def pool_table(self) -> list[tuple[str, dict]]:
        """Pool name -> the pool-defining parameters, over every pool-reading method."""
        table = {}
        for name in self.config["methods"]:
            m = self.method(name)
            if "pool" in m.requires:
                table[m.pool_name(self.max_ipc)] = m.pool_params(self.max_ipc)
        return list(table.items())

    def pool_definition(self, wildcards) -> dict:
        table = dict(self.pool_table())
        if wildcards.pool not in table:
            raise ConfigError(f"no configured method uses the pool {wildcards.pool!r}")
        return table[wildcards.pool]

    def pool_inputs(self, wildcards) -> dict[str, str]:
        spec = self.pool_definition(wildcards)
        return {
            "dataset": target_path("dataset", dataset=wildcards.dataset),
            "prior": target_path("prior", dataset=wildcards.dataset, name=spec["prior"]),
        }

    def pool_spec(self, wildcards) -> str:
        return as_json(self.pool_definition(wildcards))

    @_memo
    def cluster_table(self) -> list[tuple[str, dict]]:
        """Clusters target name (`{extractor}-k{k}`) -> what to cluster, over every ddps method."""
        table = {}
        for name in self.config["methods"]:
            m = self.method(name)
            if "clusters" not in m.requires or m.cluster_extractor() is None:
                continue
            scorer = m.params["scorer"]
            table[m.input_names()["clusters"]] = {
                "scorer": scorer,
                "features": m.params["clustering"],
                "k": int(m.params["k"]),
                "seed": int(self.config["scorers"][scorer]["seed"]),
                "n_init": 4,
            }
        return list(table.items())

    def cluster_params(self, wildcards) -> dict:
        table = dict(self.cluster_table())
        key = f"{wildcards.extractor}-k{wildcards.k}"
        if key not in table:
            raise ConfigError(f"no configured ddps method uses the clusters {key!r}")
        return table[key]

    def clusters_inputs(self, wildcards) -> dict[str, str]:
        ds = wildcards.dataset
        scorer = self.cluster_params(wildcards)["scorer"]
        return {
            "dataset": target_path("dataset", dataset=ds),
            "scores": target_path("scores", dataset=ds, name=scorer),
        }

    def clusters_spec(self, wildcards) -> str:
        return as_json(self.cluster_params(wildcards))

    # ------------------------------------------------------------ protocols and evaluation
    @functools.cache  # noqa: B019
    def resolved_protocol(self, name: str):
        """The resolved protocol of a configured name, once per parse (every evaluation asks)."""
        return resolve_protocol(name, self.config["protocols"][name])

    @functools.cache  # noqa: B019
    def _protocol_json(self, name: str) -> str:
        return as_json(self.resolved_protocol(name).to_dict())

    def protocol_spec(self, wildcards) -> str:
        return self._protocol_json(wildcards.protocol)

    def resolved_protocols(self) -> dict[str, dict]:
        return {name: self.resolved_protocol(name).to_dict() for name in self.config["protocols"]}

    def protocol_teachers(self, wildcards) -> list[str]:
        names = self.resolved_protocol(wildcards.protocol).teachers
        return [target_path("teacher", dataset=wildcards.dataset, name=t) for t in names]

    def seed_files(self, pattern: str) -> list[str]:
        """One path per configured seed: `pattern` with `{seed}` filled, other wildcards kept."""
        return [pattern.replace("{seed}", str(s)) for s in self.config["seeds"]]

    def per_seed(self, pattern: str) -> str | list[str]:
        """A rule's per-seed output: the pattern, or with `group_seeds` one path per seed."""
        return self.seed_files(pattern) if self.grouped else pattern

    def seed_log(self, pattern: str) -> str:
        """A rule's log or benchmark file: per seed, or one `seeds.*` for a grouped job."""
        return pattern.replace("/s{seed}.", "/seeds.") if self.grouped else pattern

    def grouped_params(self) -> dict[str, list[int]]:
        """Extra rule params of a grouped job (`seeds`); none for per-seed jobs, so their
        recorded params, and with them Snakemake's rerun decisions, stay as they were."""
        return {"seeds": list(self.config["seeds"])} if self.grouped else {}

    def seed_runtime(self, minutes: int):
        """A per-seed runtime, times the seeds of a grouped job, scaled by the attempt."""
        return scaled(minutes * (len(self.config["seeds"]) if self.grouped else 1))

    def _condensed_input(self, wildcards) -> str | list[str]:
        pattern = target_path(
            "condensed",
            dataset=wildcards.dataset,
            method=wildcards.method,
            ipc=wildcards.ipc,
            seed=None if self.grouped else wildcards.seed,
        )
        return self.seed_files(pattern) if self.grouped else pattern

    def evaluate_inputs(self, wildcards) -> dict[str, Any]:
        """The dataset, the condensed set (every seed's, grouped) and the protocol's teachers."""
        return {
            "dataset": target_path("dataset", dataset=wildcards.dataset),
            "condensed": self._condensed_input(wildcards),
            "teachers": self.protocol_teachers(wildcards),
        }

    def reference_inputs(self, wildcards) -> dict[str, Any]:
        return {
            "dataset": target_path("dataset", dataset=wildcards.dataset),
            "teachers": self.protocol_teachers(wildcards),
        }

    def reference_epochs(self, wildcards) -> int:
        return self.config["reference"]["epochs"]

    def checkpoint_path(self, wildcards, output) -> str:
        """Where the student checkpoint goes when the protocol keeps it ('' = not kept).

        A grouped evaluation (several metrics files) gets one path per seed, space-separated.
        """
        if not self.config["protocols"][wildcards.protocol].get("keep_checkpoint", False):
            return ""
        metrics = [output.metrics] if isinstance(output.metrics, str) else output.metrics
        return " ".join(str(m).replace(".json", ".pt") for m in metrics)

    # ------------------------------------------------------------ target lists
    @_memo
    def eval_targets(self) -> list[str]:
        return [
            target_path(
                "eval",
                dataset=c["dataset"],
                protocol=c["protocol"],
                student=c["student"],
                method=c["method"],
                ipc=c["ipc"],
                seed=c["seed"],
            )
            for c in self.grid
        ]

    @_memo
    def eval_targets_of(self, dataset: str) -> list[str]:
        prefix = f"results/{dataset}/"
        return [t for t in self.eval_targets() if t.startswith(prefix)]

    @_memo
    def reference_targets(self) -> list[str]:
        ref = self.config["reference"]
        if not ref["enabled"]:
            return []
        out = []
        for ds in self.config["datasets"]:
            for p in self.config["protocols"]:
                for st in self.config["students"]:
                    for s in ref["seeds"] or self.config["seeds"]:
                        cell = {"dataset": ds, "protocol": p, "student": st, "seed": s}
                        if not excluded(self.config, cell):
                            out.append(
                                target_path("reference", dataset=ds, protocol=p, student=st, seed=s)
                            )
        return out

    @_memo
    def condensed_cells(self, dataset: str | None = None) -> list[tuple[str, str, int, int]]:
        """(dataset, method, ipc, seed) of every condensed set the grid evaluates."""
        cells = {}
        for c in self.grid:
            if dataset is None or c["dataset"] == dataset:
                cells[(c["dataset"], c["method"], c["ipc"], c["seed"])] = None
        return list(cells)

    def quality_teacher(self, wildcards=None) -> str | None:
        """The teacher whose features measure quality (`quality.teacher`, else the first).

        None when no teachers are configured: then there are no quality targets.
        """
        name = self.config["quality"]["teacher"]
        return next(iter(self.config["teachers"]), None) if name is None else name

    @_memo
    def quality_targets(self, dataset: str | None = None) -> list[str]:
        if self.quality_teacher() is None:
            return []
        return [
            target_path("quality", dataset=d, method=m, ipc=i, seed=s)
            for d, m, i, s in self.condensed_cells(dataset)
        ]

    def quality_inputs(self, wildcards) -> dict[str, Any]:
        """The dataset, the quality teacher and its features, and the set (every seed's, grouped)."""
        ds, teacher = wildcards.dataset, self.quality_teacher()
        return {
            "dataset": target_path("dataset", dataset=ds),
            "features": target_path("features", dataset=ds, name=teacher),
            "teacher": target_path("teacher", dataset=ds, name=teacher),
            "condensed": self._condensed_input(wildcards),
        }

    # ------------------------------------------------------------ TM-loss analysis
    def tm_loss(self) -> dict | None:
        """The `tm_loss` section with defaults (None: no TM-loss analysis, no targets)."""
        from ddbench.analysis.tm_loss import resolved

        return resolved(self.config.get("tm_loss"))

    @_memo
    def tm_loss_targets(self, dataset: str | None = None) -> list[str]:
        """One TM-loss JSON per condensed set, when `tm_loss` is configured."""
        if self.tm_loss() is None:
            return []
        return [
            target_path("tm_loss", dataset=d, method=m, ipc=i, seed=s)
            for d, m, i, s in self.condensed_cells(dataset)
        ]

    def dataset_tm_loss_targets(self, wildcards) -> list[str]:
        return self.tm_loss_targets(wildcards.dataset)

    def tm_loss_inputs(self, wildcards) -> dict[str, Any]:
        """The dataset, the condensed set and every experts folder `tm_loss.experts` names."""
        ds = wildcards.dataset
        spec = self.tm_loss() or {"experts": []}
        return {
            "dataset": target_path("dataset", dataset=ds),
            "condensed": target_path(
                "condensed",
                dataset=ds,
                method=wildcards.method,
                ipc=wildcards.ipc,
                seed=wildcards.seed,
            ),
            "experts": [target_path("experts", dataset=ds, name=n) for n in spec["experts"]],
        }

    def tm_loss_spec(self, wildcards=None) -> str:
        """The analysis parameters of rule tm_loss (protocol and student excluded: they
        choose the accuracy of the figure, not the loss)."""
        spec = self.tm_loss()
        if spec is None:
            return ""
        return as_json({k: v for k, v in spec.items() if k not in ("protocol", "student")})

    def tm_loss_accuracy(self) -> tuple[str, str]:
        """(protocol, student) whose accuracy the TM-loss figure and table show: the
        configured ones, else the first configured of each."""
        spec = self.tm_loss() or {}
        protocol = spec.get("protocol") or next(iter(self.config["protocols"]))
        student = spec.get("student") or next(iter(self.config["students"]))
        return protocol, student

    @_memo
    def benchmark_targets(self, dataset: str | None = None) -> list[str]:
        """Benchmark TSVs of the condense jobs: the construction cost of every set."""
        return [
            target_path("benchmark", dataset=d, method=m, ipc=i, seed=s)
            for d, m, i, s in self.condensed_cells(dataset)
        ]

    def collected(self, kind: str, dataset: str | None = None) -> list[str]:
        """The per-dataset collected results of one kind (all datasets without `dataset`).

        Tables and figures read these instead of listing every result file: one input link per
        dataset instead of one per job keeps the DAG of a paper-sized grid small.
        """
        if kind == "quality" and self.quality_teacher() is None:
            return []
        if kind == "tm_loss" and self.tm_loss() is None:
            return []
        names = [dataset] if dataset is not None else list(self.config["datasets"])
        return [target_path(COLLECTED[kind], dataset=d) for d in names]

    def dataset_collected(self, kind: str):
        """An input function: the collected results of one kind for the job's dataset."""

        def inputs(wildcards) -> list[str]:
            return self.collected(kind, wildcards.dataset)

        return inputs

    def dataset_eval_targets(self, wildcards) -> list[str]:
        return self.eval_targets_of(wildcards.dataset)

    def dataset_reference_targets(self, wildcards) -> list[str]:
        prefix = f"results/{wildcards.dataset}/"
        return [t for t in self.reference_targets() if t.startswith(prefix)]

    def dataset_benchmark_targets(self, wildcards) -> list[str]:
        return self.benchmark_targets(wildcards.dataset)

    def dataset_quality_targets(self, wildcards) -> list[str]:
        return self.quality_targets(wildcards.dataset)

    # ------------------------------------------------------------ figures and tables
    def baseline_method(self) -> str:
        """The method named in `gain over random`: the first configured method of kind random."""
        for name, spec in self.config["methods"].items():
            if spec["kind"] == "random":
                return name
        return "random"

    @_memo
    def first_seed_sets(self, dataset: str) -> list[tuple[str, int, int]]:
        """(method, ipc, seed) with the smallest seed of each (method, ipc): the t-SNE sets."""
        first: dict[tuple[str, int], int] = {}
        for _, m, i, s in self.condensed_cells(dataset):
            first[(m, i)] = min(s, first.get((m, i), s))
        return [(m, i, s) for (m, i), s in first.items()]

    def tsne_inputs(self, wildcards) -> dict[str, Any]:
        ds = wildcards.dataset
        return {
            "features": target_path("features", dataset=ds, name=self.quality_teacher()),
            "condensed_features": [
                target_path("quality_features", dataset=ds, method=m, ipc=i, seed=s)
                for m, i, s in self.first_seed_sets(ds)
            ],
        }

    def tsne_sets(self, wildcards) -> list[list]:
        """(method, ipc) of each t-SNE input, so an unreadable one keeps its name."""
        return [[m, i] for m, i, _ in self.first_seed_sets(wildcards.dataset)]

    def gallery_inputs(self, wildcards) -> dict[str, Any]:
        ds = wildcards.dataset
        return {
            "dataset": target_path("dataset", dataset=ds),
            "condensed": [
                target_path("condensed", dataset=ds, method=m, ipc=i, seed=s)
                for _, m, i, s in self.condensed_cells(ds)
            ],
        }

    def gallery_cells(self, wildcards) -> list[list]:
        """(method, ipc, seed) of each gallery input, so an unreadable set keeps its panel name."""
        return [[m, i, s] for _, m, i, s in self.condensed_cells(wildcards.dataset)]

    @functools.cache  # noqa: B019
    def teacher_student_study(self) -> bool:
        return studies.teacher_student_study(
            self.resolved_protocols(), len(self.config["students"])
        )

    @functools.cache  # noqa: B019
    def budget_study(self) -> bool:
        return studies.budget_study(self.resolved_protocols())

    @_memo
    def claims_file(self) -> list[str]:
        """The claims file the config names and the files it includes (empty: no claims table)."""
        from ..analysis.claims import claims_file_of, claims_files

        path = claims_file_of(self.config, self.basedir)
        return [] if path is None else [str(p) for p in claims_files(path)]

    def table_targets(self) -> list[str]:
        return [target_path("table", name="accuracy", ext=e) for e in ("csv", "md")]

    def study_table_targets(self) -> list[str]:
        names = ["gain", "dd_ranking", "cost"]
        if self.quality_teacher() is not None:
            names.append("quality")
        if self.teacher_student_study():
            names.append("teacher_student")
        if self.claims_file():
            names.append("claims")
        if self.tm_loss() is not None:
            names.append("tm_loss")
        out = [target_path("table", name=n, ext=e) for n in names for e in TABLE_FORMATS]
        return out + [target_path("table", name="accuracy", ext=e) for e in ("tex", "html")]

    def figure_targets(self) -> list[str]:
        out = []
        for ds in self.config["datasets"]:
            pairs = {(c["protocol"], c["student"]) for c in self.grid if c["dataset"] == ds}
            names = ["label_gap", "accuracy_vs_cost"]
            if self.quality_teacher() is not None:
                names += ["prdc", "tsne_overview"]
                out.append(target_path("figure_folder", dataset=ds, name="tsne"))
            if self.teacher_student_study():
                names.append("teacher_student")
            if self.budget_study():
                names.append("budget_curves")
            if self.tm_loss() is not None:
                names.append("tm_loss_vs_accuracy")
            names += [f"accuracy_vs_ipc-{p}-{st}" for p, st in sorted(pairs)]
            out += [
                target_path("figure", dataset=ds, name=n, ext=e)
                for n in names
                for e in FIGURE_FORMATS
            ]
            out.append(target_path("figure_folder", dataset=ds, name="galleries"))
        return out

    def all_targets(self) -> list[str]:
        """What `rule all` asks for: tables, study tables, collected quality, figures."""
        return (
            self.table_targets()
            + self.study_table_targets()
            + self.collected("quality")
            + self.figure_targets()
        )


__all__ = ["REFERENCE_METHOD", "Plan", "as_json", "scaled"]
