"""Config loading and validation: JSON schema with defaults, then cross-reference checks.

Every problem is reported as one `ConfigError` naming the key path, before any job runs.
Imports stay light (no torch): the Snakefile calls this on every parse.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import sys
from collections.abc import Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from ddbench.training.protocols import resolve_protocol

GRID_KEYS = ("dataset", "ipc", "method", "protocol", "student", "seed")

# The method name of the whole-training-set reference row (results/.../full_train/, tables).
REFERENCE_METHOD = "full_train"

# Largest seed every consumer accepts: numpy's legacy RandomState (scikit-learn's
# `random_state`, e.g. the k-means of psr and ddps) takes 0..2**32 - 1.
MAX_SEED = 2**32 - 1

# Set to 1 to skip the "device: cuda but no GPU here" check (e.g. a SLURM login node
# without the GPUs of the compute nodes).
SKIP_DEVICE_CHECK_ENV = "DDBENCH_SKIP_DEVICE_CHECK"


from ddbench.errors import ConfigError  # noqa: E402  (re-exported: `from ddbench.config import ConfigError`)


def schema() -> dict:
    """The config JSON schema shipped with the package."""
    return yaml.safe_load(files("ddbench").joinpath("schema/config.schema.yaml").read_text())


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _is_integer(checker, instance) -> bool:
    # 1.0 is not an IPC: it would become the path component "ipc1.0"
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    _with_defaults(jsonschema.Draft202012Validator),
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)


def _check_keys(node, parts=()) -> None:
    """Every mapping key must be a string (YAML turns `1:` or `~:` into int / None keys), and
    every number finite (YAML's `.nan`, `.inf`, `-.inf` pass the schema's bounds unnoticed)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if not isinstance(key, str):
                raise ConfigError(
                    f"config error at {_path([*parts, str(key)])}: key {key!r} must be a string"
                )
            _check_keys(value, (*parts, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _check_keys(value, (*parts, i))
    elif isinstance(node, float) and not math.isfinite(node):
        raise ConfigError(
            f"config error at {_path(parts)}: {node} is not a finite number "
            "(YAML .nan, .inf and -.inf are not allowed)"
        )


def _path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _schema_error(err: jsonschema.ValidationError, prefix: str = "") -> ConfigError:
    where = _path([*([prefix] if prefix else []), *err.absolute_path])
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})), key=str)
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return ConfigError(
            f"config error at {where}: unknown key(s) {', '.join(map(repr, extra))} (allowed: {allowed})"
        )
    if err.validator == "enum":
        return ConfigError(
            f"config error at {where}: {err.instance!r} is not one of {err.validator_value}"
        )
    if "propertyNames" in err.schema_path:
        return ConfigError(
            f"config error at {where}: name {err.instance!r} must use only letters, digits and '_'"
        )
    return ConfigError(f"config error at {where}: {err.message}")


def validate_schema(config: dict, sub_schema: dict | None = None, prefix: str = "") -> dict:
    """Validate against the schema, filling defaults in place; raise the most relevant error."""
    _check_keys(config, (prefix,) if prefix else ())
    validator = _Validator(schema() if sub_schema is None else sub_schema)
    errors = sorted(
        validator.iter_errors(config), key=lambda e: (-len(e.absolute_path), str(e.absolute_path))
    )
    if errors:
        raise _schema_error(jsonschema.exceptions.best_match(errors), prefix)
    return config


class _DuplicateKey(Exception):
    """A mapping key given twice; carries where (key path) and both line numbers (1-based)."""

    def __init__(self, parts: tuple, key: Any, first_line: int, second_line: int):
        super().__init__(key)
        self.parts, self.key = parts, key
        self.first_line, self.second_line = first_line, second_line


class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping.

    PyYAML keeps the last value silently, so a second `random:` under `methods:` would
    replace the first definition. Explicit keys that override a merged `<<: *anchor` are
    allowed (that is what merge keys are for).
    """

    def construct_document(self, node):
        self._refuse_duplicates(node, (), set())
        return super().construct_document(node)

    def _refuse_duplicates(self, node, parts: tuple, seen: set) -> None:
        if id(node) in seen:  # an alias of a node already walked
            return
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, yaml.Node] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._refuse_duplicates(value_node, parts, seen)
                    continue
                key = (
                    self.construct_object(key_node)
                    if isinstance(key_node, yaml.ScalarNode)
                    else None
                )
                try:
                    hash(key)
                except TypeError:
                    key = None
                if key is not None and key in first:
                    raise _DuplicateKey(
                        (*parts, str(key)),
                        key,
                        first[key].start_mark.line + 1,
                        key_node.start_mark.line + 1,
                    )
                if key is not None:
                    first[key] = key_node
                # mapping keys as text, list positions as int: the form `_path` prints
                self._refuse_duplicates(
                    value_node, (*parts, "?" if key is None else str(key)), seen
                )
        elif isinstance(node, yaml.SequenceNode):
            for i, child in enumerate(node.value):
                self._refuse_duplicates(child, (*parts, i), seen)


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML with `StrictLoader`; a duplicate key is a `ConfigError` naming `source` and both lines."""
    loader = StrictLoader(text)
    try:
        return loader.get_single_data()
    except _DuplicateKey as dup:
        raise ConfigError(
            f"config error at {_path(dup.parts)}: key {dup.key!r} is defined twice in {source} "
            f"(lines {dup.first_line} and {dup.second_line}); YAML would silently keep only the "
            "second definition: remove or rename one"
        ) from None
    finally:
        loader.dispose()


def load_config(path: str | Path) -> dict:
    """Read a YAML config (duplicate keys refused) and validate it fully."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = load_yaml(path.read_text(encoding="utf-8"), str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return validate_config(config)


def check_config_files(paths: Iterable[str | os.PathLike]) -> None:
    """Re-read config files with the strict loader: a duplicate key is a `ConfigError`.

    Snakemake reads `--configfile` and `configfile:` files with its own loader, which keeps
    the last of two equal keys; the workflow calls this on `workflow.configfiles`. Files that
    are missing or that PyYAML cannot parse are left to Snakemake's own error.
    """
    for p in paths:
        path = Path(p)
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8")
        try:
            load_yaml(text, str(path))
        except yaml.YAMLError:
            _check_json_duplicates(text, str(path))


def _check_json_duplicates(text: str, source: str) -> None:
    def refuse(pairs):
        keys = [k for k, _ in pairs]
        dup = next((k for k in keys if keys.count(k) > 1), None)
        if dup is not None:
            raise ConfigError(
                f"config error at {dup}: key {dup!r} is defined twice in one object of {source}; "
                "JSON readers silently keep only the second definition: remove or rename one"
            )
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=refuse)
    except ValueError as exc:
        if isinstance(exc, ConfigError):
            raise


def validate_config(
    config: dict,
    *,
    check_sources: bool = True,
    read_sources: bool = True,
    check_device: bool = True,
) -> dict:
    """Schema + cross-reference checks; returns the config with defaults filled in.

    check_sources: check the dataset and prior folders at all. read_sources: also read the
    data files (class counts, IPC vs the smallest class); False only checks that paths exist,
    which is what the workflow does on every parse. check_device: refuse `device: cuda` on a
    machine without a GPU (unless DDBENCH_SKIP_DEVICE_CHECK=1).
    """
    validate_schema(config)
    _check_kinds(config)
    _check_unique(config)
    _check_students(config)
    _check_teachers(config)
    _check_priors(config, check_sources)
    _check_methods(config)
    _check_protocols(config)
    _check_exclude(config)
    _check_series(config)
    _check_quality(config)
    _check_tm_loss(config)
    if check_device:
        _check_device(config)
    if check_sources:
        _check_sources(config, read_sources)
    return config


def _check_unique(config: dict) -> None:
    lists = {"ipcs": config["ipcs"], "seeds": config["seeds"]}
    if config["reference"].get("seeds") is not None:
        lists["reference.seeds"] = config["reference"]["seeds"]
    for key, values in lists.items():
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ConfigError(f"config error at {key}: duplicate value(s) {dup}")


def _check_model(where: str, name: str) -> None:
    from ddbench.training.models import parse_model_name

    try:
        parse_model_name(name)
    except ValueError as exc:
        raise ConfigError(f"config error at {where}: {exc}") from None


def _check_students(config: dict) -> None:
    for name, spec in config["students"].items():
        _check_model(f"students.{name}.model", spec["model"])


_SECTION_OF_NEED = {"teacher": "teachers", "prior": "priors"}


def _check_kinds(config: dict) -> None:
    """Every dataset source, scorer and prior names a registered kind (plugins included)."""
    from ddbench.registry import EXPERTS, PRIORS, SCORERS, SOURCES

    for section, registry in (
        ("datasets", SOURCES),
        ("scorers", SCORERS),
        ("priors", PRIORS),
        ("experts", EXPERTS),
    ):
        for name, spec in config.get(section, {}).items():
            if spec["kind"] not in registry.names():
                raise ConfigError(
                    f"config error at {section}.{name}.kind: {spec['kind']!r} is not one of "
                    f"{registry.names()} (registered {registry.what} kinds)"
                )


def _check_teachers(config: dict) -> None:
    for name, spec in config["teachers"].items():
        _check_model(f"teachers.{name}.model", spec["model"])
    for name, spec in config.get("experts", {}).items():
        _check_model(f"experts.{name}.model", spec["model"])
        if spec.get("zca"):
            raise ConfigError(
                f"config error at experts.{name}.zca: ZCA whitening is not implemented; "
                "set it to false (the trajectories are recorded on unwhitened images)"
            )
    from ddbench.registry import SCORERS

    for name, spec in config["scorers"].items():
        try:
            kind = SCORERS.get(spec["kind"])
        except KeyError as exc:
            raise ConfigError(f"config error at scorers.{name}.kind: {exc.args[0]}") from None
        if "model" in kind.keys:  # trains proxies
            if "model" not in spec:
                raise ConfigError(
                    f"config error at scorers.{name}: a {kind.name} scorer needs `model`"
                )
            _check_model(f"scorers.{name}.model", spec["model"])
        for need in kind.inputs:  # what its job reads: a configured teacher, prior
            if need not in spec:
                raise ConfigError(
                    f"config error at scorers.{name}: a {kind.name} scorer needs `{need}`"
                )
            _require(config, _SECTION_OF_NEED[need], spec[need], f"scorers.{name}.{need}")
        for key in ("scale", "t_range"):
            if key in spec:
                _check_range(spec[key], f"scorers.{name}.{key}")


def _check_range(pair: list, where: str) -> None:
    """A [low, high] pair of the schema (bounds checked there) must not be reversed."""
    if pair[0] > pair[1]:
        raise ConfigError(
            f"config error at {where}: [{pair[0]}, {pair[1]}] is reversed; give [low, high]"
        )


def _check_priors(config: dict, check_sources: bool) -> None:
    from ddbench.stages.priors import (
        PriorSourceError,
        check_prompt_template,
        check_sd_source,
        check_unet_shape,
    )

    for name, spec in config["priors"].items():
        try:
            if spec["kind"] == "unet":
                check_unet_shape(spec["block_out_channels"], spec["norm_groups"])
            elif spec["kind"] == "stable_diffusion":
                check_prompt_template(spec["prompt_template"])
        except ValueError as exc:
            raise ConfigError(f"config error at priors.{name}.{exc}") from None
        if spec["kind"] == "stable_diffusion" and check_sources:
            try:
                check_sd_source(spec["path"])
            except PriorSourceError as exc:
                raise ConfigError(f"config error at priors.{name}.path: {exc}") from None


def _require(config: dict, section: str, value: str, where: str) -> None:
    if value not in config.get(section, {}):
        known = ", ".join(sorted(map(str, config.get(section, {})))) or "none configured"
        raise ConfigError(
            f"config error at {where}: {value!r} is not a configured {section[:-1]} (known: {known})"
        )


def _check_methods(config: dict) -> None:
    from ddbench.methods import get_method_class, list_methods
    from ddbench.workflow.inputs import input_kind

    for name, spec in config["methods"].items():
        if name == REFERENCE_METHOD:
            raise ConfigError(
                f"config error at methods.{name}: the name {REFERENCE_METHOD!r} is reserved for "
                "the whole-training-set reference row; rename the method"
            )
        kind = spec["kind"]
        try:
            cls = get_method_class(kind)
        except KeyError:
            raise ConfigError(
                f"config error at methods.{name}.kind: unknown method kind {kind!r} "
                f"(registered: {', '.join(list_methods())})"
            ) from None
        params = {k: v for k, v in spec.items() if k != "kind"}
        validate_schema(params, cls.param_schema, prefix=f"methods.{name}")
        spec.update(params)  # defaults filled by the method's schema
        _check_seed_params(params, f"methods.{name}")
        method = cls(**params)
        try:
            method.check_params()
        except ValueError as exc:
            raise ConfigError(f"config error at methods.{name}.{exc}") from None
        for need, ref in method.input_names().items():
            kind = input_kind(need)
            if kind.section is None:
                continue  # e.g. `external`: a file, checked when the job runs
            where = f"methods.{name}.{kind.param}"
            _require(config, kind.section, ref, where)
            if kind.scorer_kind is not None:
                got = config["scorers"][ref]["kind"]
                if got != kind.scorer_kind:
                    raise ConfigError(
                        f"config error at {where}: scorer {ref!r} is of kind {got!r}; this "
                        f"method needs a {kind.scorer_kind!r} scorer"
                    )
            if need == "scores":
                _check_recorded_epochs(name, params, ref, config["scorers"][ref])


def _check_seed_params(params: dict, where: str) -> None:
    """Method parameters named `seed` or `*_seed` (their schemas live with the methods)."""
    for key, value in params.items():
        if (key == "seed" or key.endswith("_seed")) and isinstance(value, int):
            if value > MAX_SEED:
                raise ConfigError(
                    f"config error at {where}.{key}: {value} is larger than the largest seed "
                    f"{MAX_SEED} (2**32 - 1)"
                )


def _check_recorded_epochs(name: str, params: dict, scorer: str, spec: dict) -> None:
    """Parameters that read a dynamics scorer's record points (ddbench.stages.scores).

    Record point p is taken after p × interval proxy steps (interval = one epoch, or the
    scorer's `record_every_steps`); a budget of K full-set epochs is point
    a = floor(K × steps_per_epoch / interval), and CAD reads points a-J-W .. a-2. With one
    record per epoch this is checked here; with sub-epoch records steps_per_epoch depends on
    the dataset's size, so only K <= epochs is checked here and the rest when the job runs.
    """
    epochs = spec["epochs"]
    if "epoch" in params and params["epoch"] >= epochs:
        raise ConfigError(
            f"config error at methods.{name}.epoch: epoch {params['epoch']} is beyond the "
            f"{epochs} epochs recorded by scorer {scorer!r} (0-based: 0..{epochs - 1}); lower it "
            f"or raise scorers.{scorer}.epochs"
        )
    if params.get("target") == "teacher" and spec.get("store", "compact") != "full":
        raise ConfigError(
            f"config error at methods.{name}.target: EL2N-SL (target: teacher) needs the "
            f"proxies' full softmax, but scorer {scorer!r} stores compact dynamics; set "
            f"scorers.{scorer}.store: full"
        )
    if "window_j" in params:
        k = params.get("budget") or epochs
        j, w = params["window_j"], params.get("window_w", 3)
        key = "budget" if params.get("budget") else "window_j"
        if spec.get("record_every_steps"):
            if k > epochs:
                raise ConfigError(
                    f"config error at methods.{name}.budget: CAD at K={k:g} epochs is beyond "
                    f"the {epochs} epochs recorded by scorer {scorer!r}; lower budget or raise "
                    f"scorers.{scorer}.epochs"
                )
            return
        a = math.floor(k + 1e-9)  # one record per epoch: the budget's record point
        first, last = a - j - w, a - 2
        if first < 1 or last > epochs:
            raise ConfigError(
                f"config error at methods.{name}.{key}: CAD with K={k:g}, J={j}, W={w} needs "
                f"recorded epochs {max(first, 1)}..{last}, but scorer {scorer!r} records "
                f"1..{epochs}; lower budget/window_j/window_w or raise scorers.{scorer}.epochs"
            )


def _check_protocols(config: dict) -> None:
    for name, spec in config["protocols"].items():
        try:
            p = resolve_protocol(name, spec)
        except ValueError as exc:
            raise ConfigError(f"config error at protocols.{name}: {exc}") from None
        for i, t in enumerate(p.teachers):
            _require(config, "teachers", t, f"protocols.{name}.teachers[{i}]")
        if p.labels in ("soft", "kd") and not p.teachers:
            raise ConfigError(
                f"config error at protocols.{name}.teachers: preset {p.preset!r} uses teacher "
                "labels; list at least one teacher"
            )
        if p.preset == "mt" and len(set(p.teachers)) < 2:
            raise ConfigError(
                f"config error at protocols.{name}.teachers: multi-teacher needs two or more "
                f"distinct teachers (got {list(p.teachers)})"
            )
        if "rrc_scale" in spec:
            _check_range(spec["rrc_scale"], f"protocols.{name}.rrc_scale")


def _check_series(config: dict) -> None:
    """figures.series: every member a configured method, in at most one series."""
    seen: dict[str, str] = {}
    for name, members in config.get("figures", {}).get("series", {}).items():
        if name in config["methods"] and name not in members:
            raise ConfigError(
                f"config error at figures.series.{name}: the series name is a configured method "
                "that is not in the series; name the series differently"
            )
        for i, method in enumerate(members):
            _require(config, "methods", method, f"figures.series.{name}[{i}]")
            if method in seen:
                raise ConfigError(
                    f"config error at figures.series.{name}[{i}]: {method!r} is already in "
                    f"series {seen[method]!r}"
                )
            seen[method] = name


def _check_exclude(config: dict) -> None:
    section = {
        "dataset": "datasets",
        "method": "methods",
        "protocol": "protocols",
        "student": "students",
    }
    for i, rule in enumerate(config["exclude"]):
        for key, value in rule.items():
            if key in section:
                _require(config, section[key], value, f"exclude[{i}].{key}")
            elif key == "ipc" and value not in config["ipcs"]:
                raise ConfigError(
                    f"config error at exclude[{i}].ipc: {value} is not in ipcs {config['ipcs']}"
                )
            elif key == "seed" and value not in config["seeds"]:
                raise ConfigError(
                    f"config error at exclude[{i}].seed: {value} is not in seeds {config['seeds']}"
                )
    if config["exclude"] and next(grid(config), None) is None:
        raise ConfigError(
            "config error at exclude: the grid is empty after exclude (the rules remove every "
            "dataset x ipc x method x protocol x student x seed cell); remove or narrow a rule"
        )


def _check_tm_loss(config: dict) -> None:
    """`tm_loss` names configured experts of different architectures, long enough for every
    start epoch, and (when given) a configured protocol and student."""
    spec = config.get("tm_loss")
    if spec is None:
        return
    from ddbench.analysis.tm_loss import resolved

    spec = resolved(spec)
    models: dict[str, str] = {}
    for i, name in enumerate(spec["experts"]):
        where = f"tm_loss.experts[{i}]"
        _require(config, "experts", name, where)
        ex = config["experts"][name]
        model = ex.get("model", "convnet-d3-w128-in")
        if model in models:
            raise ConfigError(
                f"config error at {where}: experts {name!r} and {models[model]!r} are both "
                f"{model!r}; the TM-loss analysis compares architectures, name experts of "
                "different models"
            )
        models[model] = name
        epochs = int(ex.get("epochs", 50))
        last = max(spec["start_epochs"]) + int(spec["expert_epochs"])
        if last > epochs:
            raise ConfigError(
                f"config error at tm_loss.start_epochs: start epoch {max(spec['start_epochs'])} "
                f"+ expert_epochs {spec['expert_epochs']} = {last} exceeds the {epochs} epochs "
                f"of experts {name!r}"
            )
    for key, section in (("protocol", "protocols"), ("student", "students")):
        if spec[key] is not None:
            _require(config, section, spec[key], f"tm_loss.{key}")


def _check_quality(config: dict) -> None:
    teacher = config["quality"]["teacher"]
    if teacher is not None:
        _require(config, "teachers", teacher, "quality.teacher")


def cuda_available() -> bool:
    """Whether this machine has a usable CUDA (or ROCm) GPU, without importing torch.

    torch's own answer when torch is already imported; else the driver's files, with
    CUDA_VISIBLE_DEVICES="" or "-1" (no visible device) honoured.
    """
    torch = sys.modules.get("torch")
    if torch is not None and hasattr(torch, "cuda"):
        return bool(torch.cuda.is_available())
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    drivers = ("/proc/driver/nvidia/version", "/dev/nvidiactl", "/dev/kfd")
    return any(os.path.exists(f) for f in drivers)


def _check_device(config: dict) -> None:
    device = config["device"]
    if not device.startswith("cuda") or os.environ.get(SKIP_DEVICE_CHECK_ENV) == "1":
        return
    torch = sys.modules.get("torch")
    if device.startswith("cuda:") and torch is not None and cuda_available():
        count = torch.cuda.device_count()
        if int(device[5:]) >= count:
            raise ConfigError(
                f"config error at device: {device!r} but this machine has {count} CUDA "
                f"device(s) (cuda:0..cuda:{count - 1}); or set {SKIP_DEVICE_CHECK_ENV}=1 where "
                "the jobs run on other machines"
            )
    if not cuda_available():
        raise ConfigError(
            f"config error at device: {device!r} but this machine has no CUDA GPU (no driver "
            "found, or CUDA_VISIBLE_DEVICES hides every device); use `auto` or `cpu`, or set "
            f"{SKIP_DEVICE_CHECK_ENV}=1 where the jobs run on other machines (e.g. a SLURM "
            "login node)"
        )


def _check_sources(config: dict, read_files: bool = True) -> None:
    from ddbench.data.sources import SourceError, check_source

    for name, spec in config["datasets"].items():
        try:
            info = check_source(spec, read_files=read_files)
        except SourceError as exc:
            raise ConfigError(f"config error at datasets.{name}: {exc}") from None
        smallest = info.get("min_train_per_class")
        if smallest is not None:
            too_big = [i for i in config["ipcs"] if i > smallest]
            if too_big:
                raise ConfigError(
                    f"config error at ipcs: IPC {too_big} exceeds the smallest class of dataset "
                    f"{name!r} ({smallest} training images)"
                )


def excluded(config: dict, cell: dict) -> bool:
    """Whether a grid cell matches any `exclude` rule."""
    return any(all(cell.get(k) == v for k, v in rule.items()) for rule in config["exclude"])


def grid(config: dict) -> Iterator[dict]:
    """Every (dataset, ipc, method, protocol, student, seed) cell not excluded."""
    for ds, ipc, m, p, st, s in itertools.product(
        config["datasets"],
        config["ipcs"],
        config["methods"],
        config["protocols"],
        config["students"],
        config["seeds"],
    ):
        cell = dict(zip(GRID_KEYS, (ds, ipc, m, p, st, s), strict=True))
        if not excluded(config, cell):
            yield cell


def method_params(config: dict, method: str) -> dict[str, Any]:
    """A method's parameters without `kind`."""
    return {k: v for k, v in config["methods"][method].items() if k != "kind"}
