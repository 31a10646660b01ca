"""Config loading and validation: JSON schema with defaults, then cross-reference checks.

Every problem is reported as one `ConfigError` naming the key path, before any job runs.
Imports stay light (no torch): the Snakefile calls this on every parse.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .protocols import resolve_protocol

GRID_KEYS = ("dataset", "ipc", "method", "protocol", "student", "seed")


from .errors import ConfigError  # noqa: E402  (re-exported: `from ddbench.config import ConfigError`)


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
    """Every mapping key must be a string (YAML turns `1:` or `~:` into int / None keys)."""
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


def load_config(path: str | Path) -> dict:
    """Read a YAML config and validate it fully."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file {path} does not exist")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(config, dict):
        raise ConfigError(f"config file {path}: top level must be a mapping")
    return validate_config(config)


def validate_config(config: dict, *, check_sources: bool = True) -> dict:
    """Schema + cross-reference checks; returns the config with defaults filled in."""
    validate_schema(config)
    _check_unique(config)
    _check_students(config)
    _check_teachers(config)
    _check_priors(config, check_sources)
    _check_methods(config)
    _check_protocols(config)
    _check_exclude(config)
    if check_sources:
        _check_sources(config)
    return config


def _check_unique(config: dict) -> None:
    for key in ("ipcs", "seeds"):
        values = config[key]
        dup = sorted({v for v in values if values.count(v) > 1})
        if dup:
            raise ConfigError(f"config error at {key}: duplicate value(s) {dup}")


def _check_model(where: str, name: str) -> None:
    from .models import parse_model_name

    try:
        parse_model_name(name)
    except ValueError as exc:
        raise ConfigError(f"config error at {where}: {exc}") from None


def _check_students(config: dict) -> None:
    for name, spec in config["students"].items():
        _check_model(f"students.{name}.model", spec["model"])


def _check_teachers(config: dict) -> None:
    for name, spec in config["teachers"].items():
        _check_model(f"teachers.{name}.model", spec["model"])
    for name, spec in config["scorers"].items():
        if spec["kind"] == "dynamics":
            if "model" not in spec:
                raise ConfigError(
                    f"config error at scorers.{name}: a dynamics scorer needs `model`"
                )
            _check_model(f"scorers.{name}.model", spec["model"])
        else:
            if "teacher" not in spec:
                raise ConfigError(f"config error at scorers.{name}: a crops scorer needs `teacher`")
            _require(config, "teachers", spec["teacher"], f"scorers.{name}.teacher")


def _check_priors(config: dict, check_sources: bool) -> None:
    from .priors import PriorSourceError, check_prompt_template, check_sd_source, check_unet_shape

    for name, spec in config["priors"].items():
        try:
            if spec["kind"] == "unet":
                check_unet_shape(spec["block_out_channels"], spec["norm_groups"])
            else:
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
    from .methods import get_method_class, list_methods

    for name, spec in config["methods"].items():
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
        method = cls(**params)
        try:
            method.check_params()
        except ValueError as exc:
            raise ConfigError(f"config error at methods.{name}.{exc}") from None
        section_of = {
            "teacher": "teachers",
            "features": "teachers",
            "scores": "scorers",
            "crops": "scorers",
            "patches": "scorers",
            "prior": "priors",
        }
        param_of = {
            "teacher": "teacher",
            "features": "features",
            "scores": "scorer",
            "crops": "crops",
            "patches": "scorer",
            "prior": "prior",
        }
        for need, ref in method.input_names().items():
            if need not in section_of:
                continue  # e.g. `external`: a file, checked when the job runs
            _require(config, section_of[need], ref, f"methods.{name}.{param_of[need]}")
            if need in ("scores", "crops", "patches"):
                want = {"scores": "dynamics", "crops": "crops", "patches": "ddps"}[need]
                got = config["scorers"][ref]["kind"]
                if got != want:
                    raise ConfigError(
                        f"config error at methods.{name}.{param_of[need]}: scorer {ref!r} is of kind "
                        f"{got!r}; this method needs a {want!r} scorer"
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


def _check_sources(config: dict) -> None:
    from .sources import SourceError, check_source

    for name, spec in config["datasets"].items():
        try:
            info = check_source(spec)
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
