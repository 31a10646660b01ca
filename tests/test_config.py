"""Tests for ddbench.config: schema + cross-reference validation, defaults, grid and exclude.

Every bad config is a mutation of config/smoke.yaml (sklearn digits, no files needed) and must
raise `ConfigError` whose message names the key path and the offending value.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddbench.config import GRID_KEYS, ConfigError, excluded, grid, load_config, validate_config

SMOKE_PATH = Path(__file__).resolve().parents[1] / "config" / "smoke.yaml"
SMOKE: dict = yaml.safe_load(SMOKE_PATH.read_text())


def smoke() -> dict:
    """A fresh deep copy of the smoke config (validate_config fills defaults in place), without
    its matching methods (dsa, mtt) and their experts, so the grid arithmetic below is that of
    the coreset grid: 2 IPCs x 4 methods x 3 protocols."""
    config = copy.deepcopy(SMOKE)
    config["methods"] = {k: v for k, v in config["methods"].items() if k not in ("dsa", "mtt")}
    config.pop("experts", None)
    return config


def mentions(*parts: str) -> str:
    """A regex that matches when every part occurs in the message, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts)


# --------------------------------------------------------------------------- error catalogue

Mutation = Callable[[dict, Path], None]


def _set(*path: Any, value: Any) -> Mutation:
    def mutate(c: dict, tmp: Path) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value(tmp) if callable(value) else value

    return mutate


def _delete(*path: Any) -> Mutation:
    def mutate(c: dict, tmp: Path) -> None:
        node = c
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(c: dict, tmp: Path) -> None:
        for m in mutations:
            m(c, tmp)

    return mutate


# (id, mutation, substrings the message must contain: key path first, then the offending value)
CATALOGUE: list[tuple[str, Mutation, tuple[str, ...]]] = [
    ("unknown_top_level_key", _set("bogus", value=1), ("(top level)", "'bogus'")),
    (
        "unknown_reference_key",
        _set("reference", "bogus", value=1),
        ("reference", "'bogus'"),
    ),
    (
        "unknown_method_param",
        _set("methods", "herding", "foo", value=1),
        ("methods.herding", "'foo'"),
    ),
    (
        "unknown_method_kind",
        _set("methods", "herding", "kind", value="herdingg"),
        ("methods.herding.kind", "'herdingg'"),
    ),
    (
        "method_kind_not_string",
        _set("methods", "random", "kind", value=3),
        ("methods.random.kind", "3"),
    ),
    ("method_without_kind", _delete("methods", "random", "kind"), ("methods.random", "'kind'")),
    ("methods_empty", _set("methods", value={}), ("methods", "{}")),
    (
        "method_unknown_teacher",
        _set("methods", "herding", "features", value="nope"),
        ("methods.herding.features", "'nope'"),
    ),
    (
        "method_missing_required_param",
        _delete("methods", "kcenter", "features"),
        ("methods.kcenter", "'features'"),
    ),
    (
        "el2n_unknown_scorer",
        _set("methods", "el2n_easy", "scorer", value="nope"),
        ("methods.el2n_easy.scorer", "'nope'"),
    ),
    (
        "el2n_bad_keep",
        _set("methods", "el2n_easy", "keep", value="medium"),
        ("methods.el2n_easy.keep", "'medium'"),
    ),
    (
        "el2n_negative_epoch",
        _set("methods", "el2n_easy", "epoch", value=-1),
        ("methods.el2n_easy.epoch", "-1"),
    ),
    (
        "protocol_unknown_teacher",
        _set("protocols", "slkd", "teachers", value=["nope"]),
        ("protocols.slkd.teachers[0]", "'nope'"),
    ),
    (
        "sl_without_teachers",
        _set("protocols", "sl", value={"preset": "sl", "epochs": 1}),  # no teachers listed
        ("protocols.sl.teachers", "'sl'"),
    ),
    (
        "slkd_without_teachers",
        _delete("protocols", "slkd", "teachers"),
        ("protocols.slkd.teachers", "'slkd'"),
    ),
    (
        "mt_single_teacher",
        _set("protocols", "mt", "teachers", value=["convnet"]),
        ("protocols.mt.teachers", "two or more distinct teachers"),
    ),
    (
        "mt_same_teacher_twice",
        _set("protocols", "mt", "teachers", value=["convnet", "convnet"]),
        ("protocols.mt.teachers", "two or more distinct teachers"),
    ),
    (
        "protocol_epochs_and_full_epochs",
        _set("protocols", "hl", "full_epochs", value=2),
        ("protocols.hl", "`epochs` or `full_epochs`, not both"),
    ),
    ("protocol_without_budget", _delete("protocols", "hl", "epochs"), ("protocols.hl", "budget")),
    (
        "unknown_preset",
        _set("protocols", "hl", "preset", value="xx"),
        ("protocols.hl.preset", "'xx'"),
    ),
    (
        "protocol_unknown_key",
        _set("protocols", "hl", "epoch", value=3),
        ("protocols.hl", "'epoch'"),
    ),
    (
        "protocol_zero_epochs",
        _set("protocols", "hl", "epochs", value=0),
        ("protocols.hl.epochs", "0"),
    ),
    (
        "student_bad_model",
        _set("students", "convnet", "model", value="convnet-dx-w16-in"),
        ("students.convnet.model", "'convnet-dx-w16-in'"),
    ),
    (
        "teacher_unknown_model_family",
        _set("teachers", "convnet", "model", value="resnet18"),
        ("teachers.convnet.model", "'resnet18'"),
    ),
    (
        "scorer_bad_model",
        _set("scorers", "dynamics", "model", value="convnet-d2-w0-in"),
        ("scorers.dynamics.model", "'convnet-d2-w0-in'"),
    ),
    (
        "scorer_unknown_kind",
        _set("scorers", "dynamics", "kind", value="oracle"),
        ("scorers.dynamics.kind", "'oracle'"),
    ),
    ("ipcs_zero", _set("ipcs", value=[0, 1]), ("ipcs[0]", "0 is less than the minimum of 1")),
    ("ipcs_negative", _set("ipcs", value=[1, -3]), ("ipcs[1]", "-3")),
    ("ipcs_empty", _set("ipcs", value=[]), ("ipcs", "[]")),
    ("ipcs_wrong_type", _set("ipcs", value="ten"), ("ipcs", "'ten'")),
    ("ipcs_item_wrong_type", _set("ipcs", value=[1, "ten"]), ("ipcs[1]", "'ten'")),
    ("seeds_negative", _set("seeds", value=[-1]), ("seeds[0]", "-1")),
    ("duplicate_seeds", _set("seeds", value=[0, 1, 0]), ("seeds", "duplicate", "[0]")),
    ("duplicate_ipcs", _set("ipcs", value=[1, 5, 5]), ("ipcs", "duplicate", "[5]")),
    (
        "ipc_larger_than_smallest_class",
        _set("ipcs", value=[1, 1000]),
        ("ipcs", "1000", "'digits'"),
    ),
    (
        "ipc_larger_than_class_cap",
        _set("datasets", "digits", "max_train_per_class", value=3),
        ("ipcs", "[5]", "'digits'", "3 training images"),
    ),
    (
        "dataset_name_with_dash",
        _set("datasets", "dig-its", value={"kind": "digits"}),
        ("datasets", "'dig-its'"),
    ),
    (
        "dataset_name_with_slash",
        _set("datasets", "dig/its", value={"kind": "digits"}),
        ("datasets", "'dig/its'"),
    ),
    (
        "method_name_with_dot",
        _set("methods", "ran.dom", value={"kind": "random"}),
        ("methods", "'ran.dom'"),
    ),
    (
        "unknown_dataset_kind",
        _set("datasets", "digits", "kind", value="mnist"),
        ("datasets.digits.kind", "'mnist'"),
    ),
    (
        "digits_test_fraction_out_of_range",
        _set("datasets", "digits", "test_fraction", value=1.5),
        ("datasets.digits.test_fraction", "1.5"),
    ),
    ("bad_device", _set("device", value="gpu"), ("device", "'gpu'")),
    ("threads_zero", _set("threads", value=0), ("threads", "0")),
    (
        "exclude_unknown_method",
        _set("exclude", value=[{"method": "nope"}]),
        ("exclude[0].method", "'nope'"),
    ),
    (
        "exclude_unknown_protocol",
        _set("exclude", value=[{"method": "random"}, {"protocol": "nope"}]),
        ("exclude[1].protocol", "'nope'"),
    ),
    ("exclude_ipc_not_in_grid", _set("exclude", value=[{"ipc": 7}]), ("exclude[0].ipc", "7")),
    ("exclude_seed_not_in_grid", _set("exclude", value=[{"seed": 9}]), ("exclude[0].seed", "9")),
    (
        "exclude_unknown_axis",
        _set("exclude", value=[{"colour": "red"}]),
        ("exclude[0]", "'colour'"),
    ),
    ("exclude_empty_rule", _set("exclude", value=[{}]), ("exclude[0]", "{}")),
    (
        "series_unknown_method",
        _set("figures", value={"series": {"sel": ["herding", "nope"]}}),
        ("figures.series.sel[1]", "'nope'"),
    ),
    (
        "series_method_twice",
        _set("figures", value={"series": {"a": ["herding"], "b": ["kcenter", "herding"]}}),
        ("figures.series.b[1]", "'herding'", "series 'a'"),
    ),
    (
        "series_named_after_another_method",
        _set("figures", value={"series": {"random": ["herding", "kcenter"]}}),
        ("figures.series.random", "series name"),
    ),
    (
        "fashion_mnist_missing_folder",
        _set(
            "datasets",
            "fm",
            value=lambda tmp: {"kind": "fashion_mnist", "path": str(tmp / "no_such_fm")},
        ),
        ("datasets.fm", "no_such_fm", "does not exist", "apt-get install dataset-fashion-mnist"),
    ),
    (
        "imagefolder_missing_folder",
        _set(
            "datasets",
            "imgs",
            value=lambda tmp: {
                "kind": "imagefolder",
                "path": str(tmp / "no_such_imgs"),
                "image_size": 8,
            },
        ),
        ("datasets.imgs", "no_such_imgs", "does not exist", "<path>/train/<class>"),
    ),
    (
        "imagefolder_without_path",
        _set("datasets", "imgs", value={"kind": "imagefolder", "image_size": 8}),
        ("datasets.imgs", "needs a folder", ".path"),
    ),
    (
        "imagefolder_without_image_size",
        _set("datasets", "imgs", value=lambda tmp: {"kind": "imagefolder", "path": str(tmp)}),
        ("datasets.imgs", "image_size", "None"),
    ),
]


@pytest.mark.parametrize(
    ("mutate", "parts"),
    [pytest.param(m, parts, id=name) for name, m, parts in CATALOGUE],
)
def test_bad_config_raises_config_error_naming_path_and_value(
    mutate: Mutation, parts: tuple[str, ...], tmp_path: Path
) -> None:
    config = smoke()
    mutate(config, tmp_path)
    # pytest.raises(ConfigError) lets any other exception (KeyError, TypeError...) fail the test
    with pytest.raises(ConfigError, match=mentions(*parts)) as info:
        validate_config(config)
    assert str(info.value).startswith("config error at "), str(info.value)


def test_catalogue_is_large_and_ids_unique() -> None:
    names = [name for name, _, _ in CATALOGUE]
    assert len(names) >= 15
    assert len(set(names)) == len(names)


def test_check_sources_false_skips_dataset_checks(tmp_path: Path) -> None:
    config = smoke()
    config["datasets"]["fm"] = {"kind": "fashion_mnist", "path": str(tmp_path / "absent")}
    config["ipcs"] = [1, 1000]
    validate_config(config, check_sources=False)  # no source access, no IPC-vs-class check
    with pytest.raises(ConfigError, match=mentions("datasets.fm", "absent")):
        validate_config(smoke() | {"datasets": config["datasets"]})


# --------------------------------------------------------------------------- valid config, defaults


def test_smoke_config_is_valid_and_defaults_are_filled() -> None:
    config = smoke()
    del config["device"]
    out = validate_config(config)
    assert out is config  # filled in place and returned
    assert config["device"] == "auto"
    assert config["container"] == "containers/ddbench.sif"
    assert config["threads"] == 1  # given values are kept
    assert config["reference"] == {"enabled": True, "epochs": 10, "seeds": None}
    assert config["exclude"] == []
    teacher = config["teachers"]["convnet"]
    assert teacher["optimizer"] == "sgd"
    assert teacher["seed"] == 0
    assert teacher["small_stem"] is None
    assert teacher["lr"] == 0.05  # not overwritten by the default 0.01
    assert config["scorers"]["dynamics"]["runs"] == 2
    assert config["students"]["convnet"]["small_stem"] is None


def test_missing_optional_sections_get_empty_defaults() -> None:
    config = smoke()
    for key in ("reference", "exclude", "threads", "eval_threads"):
        config.pop(key, None)
    validate_config(config)
    assert config["reference"] == {"enabled": True, "epochs": 1, "seeds": None}
    assert config["exclude"] == []
    assert config["threads"] == 2
    assert config["eval_threads"] == 1


def test_validation_is_idempotent() -> None:
    once = validate_config(smoke())
    twice = validate_config(copy.deepcopy(once))
    assert twice == once


def test_cuda_device_forms_are_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    # the schema accepts every form; whether this machine has the GPU is checked separately
    monkeypatch.setenv("DDBENCH_SKIP_DEVICE_CHECK", "1")
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        config = smoke()
        config["device"] = device
        validate_config(config, check_sources=False)


# --------------------------------------------------------------------------- grid and exclude


def _axes(config: dict) -> list[list]:
    return [
        list(config["datasets"]),
        list(config["ipcs"]),
        list(config["methods"]),
        list(config["protocols"]),
        list(config["students"]),
        list(config["seeds"]),
    ]


def test_grid_is_the_full_product_of_the_axes() -> None:
    config = validate_config(smoke())
    cells = list(grid(config))
    assert len(cells) == math.prod(len(a) for a in _axes(config)) == 1 * 2 * 4 * 3 * 1 * 1
    assert all(tuple(cell) == GRID_KEYS for cell in cells)
    as_tuples = [tuple(cell[k] for k in GRID_KEYS) for cell in cells]
    assert len(set(as_tuples)) == len(as_tuples)
    assert set(as_tuples) == set(itertools.product(*_axes(config)))


def test_grid_size_with_more_seeds_and_students() -> None:
    config = smoke()
    config["seeds"] = [0, 1, 2]
    config["students"]["convnet_bn"] = {"model": "convnet-d2-w16-bn"}
    validate_config(config)
    assert len(list(grid(config))) == 2 * 4 * 3 * 2 * 3


def test_exclude_removes_exactly_the_matching_cells() -> None:
    rules = [{"method": "herding"}, {"ipc": 5, "protocol": "mt"}]
    config = smoke()
    config["exclude"] = copy.deepcopy(rules)
    validate_config(config)
    kept = [tuple(c[k] for k in GRID_KEYS) for c in grid(config)]

    def matches(cell: dict) -> bool:
        return any(all(cell[k] == v for k, v in rule.items()) for rule in rules)

    full = [dict(zip(GRID_KEYS, t, strict=True)) for t in itertools.product(*_axes(config))]
    expected = [tuple(c[k] for k in GRID_KEYS) for c in full if not matches(c)]
    assert kept == expected
    # 24 cells - 6 herding - 4 (ipc 5, mt) + 1 counted twice
    assert len(kept) == 24 - 6 - 4 + 1
    assert all(excluded(config, c) for c in full if matches(c))
    assert not any(excluded(config, dict(zip(GRID_KEYS, t, strict=True))) for t in kept)


def test_exclude_rule_needs_every_key_to_match() -> None:
    config = smoke()
    config["exclude"] = [{"method": "random", "seed": 0, "student": "convnet"}]
    validate_config(config)
    assert excluded(config, {"method": "random", "seed": 0, "student": "convnet", "ipc": 1})
    assert not excluded(config, {"method": "random", "seed": 1, "student": "convnet"})
    assert not excluded(config, {"method": "herding", "seed": 0, "student": "convnet"})
    assert len(list(grid(config))) == 24 - 2 * 3


# --------------------------------------------------------------------------- load_config


def test_load_config_reads_and_validates_the_smoke_file() -> None:
    config = load_config(SMOKE_PATH)
    assert config["exclude"] == []
    assert config["reference"]["enabled"] is True
    assert len(list(grid(config))) == 36  # 2 IPCs x 6 methods (4 coresets, dsa, mtt) x 3 protocols


def test_load_config_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=mentions(str(path), "does not exist")):
        load_config(path)


def test_load_config_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("datasets:\n  digits: {kind: digits\nipcs: [1\n")
    with pytest.raises(ConfigError, match=mentions(str(path), "not valid YAML")):
        load_config(path)


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string\n", "42\n"])
def test_load_config_top_level_not_a_mapping(tmp_path: Path, text: str) -> None:
    path = tmp_path / "scalar.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=mentions(str(path), "mapping")):
        load_config(path)


def test_load_config_reports_validation_errors(tmp_path: Path) -> None:
    config = smoke()
    config["methods"]["herding"]["kind"] = "herdingg"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError, match=mentions("methods.herding.kind", "'herdingg'")):
        load_config(path)


# --------------------------------------------------------------------------- regressions of bugs found and fixed
# These document crashes/holes found while writing the tests; remove the marker once fixed.


def test_mixed_type_unknown_keys_raise_config_error() -> None:
    config = smoke()
    config["reference"] = {1: 2, "bogus": 3}  # YAML `1: 2` gives an int key
    with pytest.raises(ConfigError):
        validate_config(config)


def test_non_string_teacher_name_with_bad_reference_raises_config_error() -> None:
    config = smoke()
    config["teachers"][1] = {"model": "convnet-d2-w16-in"}
    config["methods"]["herding"]["features"] = "nope"
    with pytest.raises(ConfigError):
        validate_config(config)


def test_mixed_type_protocol_names_raise_config_error() -> None:
    config = smoke()
    config["protocols"] = {"x": ["a"], 5: 2.0}
    with pytest.raises(ConfigError):
        validate_config(config)


@pytest.mark.parametrize("name", [1, None])
def test_non_string_method_name_is_rejected(name: Any) -> None:
    config = smoke()
    config["methods"][name] = {"kind": "random"}
    with pytest.raises(ConfigError):
        validate_config(config)


@pytest.mark.parametrize("fraction", [0.999, 1e-9])
def test_digits_extreme_test_fraction_raises_config_error(fraction: float) -> None:
    config = smoke()
    config["datasets"]["digits"]["test_fraction"] = fraction
    with pytest.raises(ConfigError, match="datasets.digits"):
        validate_config(config)


def test_float_ipc_is_rejected() -> None:
    config = smoke()
    config["ipcs"] = [1.0, 5]
    with pytest.raises(ConfigError, match="ipcs"):
        validate_config(config)


# --------------------------------------------------------------------------- property test


def _key_paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out: list[tuple] = []
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list):
        items = enumerate(node)
    else:
        return out
    for key, value in items:
        out.append((*prefix, key))
        out.extend(_key_paths(value, (*prefix, key)))
    return out


KEY_PATHS = _key_paths(SMOKE)

_scalars = st.one_of(
    st.integers(min_value=0, max_value=2000),
    st.integers(min_value=-1000, max_value=-1),
    st.text(max_size=10),
    st.sampled_from(["digits", "convnet", "hl", "random", "herding", "dynamics", "cpu"]),
    st.none(),
    st.booleans(),
)
# Dict keys are strings only: non-string keys hit the known TypeError bugs above.
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=8,
)
_mutation = st.one_of(
    st.tuples(st.just("set"), st.sampled_from(KEY_PATHS), _values),
    st.tuples(st.just("delete"), st.sampled_from(KEY_PATHS), st.none()),
)


def _apply(config: dict, mutation: tuple) -> None:
    op, path, value = mutation
    node: Any = config
    for key in path[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return  # an earlier mutation removed or replaced the parent
    last = path[-1]
    if isinstance(node, dict) or (
        isinstance(node, list) and isinstance(last, int) and last < len(node)
    ):
        if op == "set":
            node[last] = value
        elif isinstance(node, dict):
            node.pop(last, None)
        else:
            del node[last]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=st.lists(_mutation, min_size=1, max_size=3))
def test_random_mutations_raise_only_config_error(mutations: list[tuple]) -> None:
    config = smoke()
    for mutation in mutations:
        _apply(config, mutation)
    try:
        validate_config(config)
    except ConfigError as exc:
        assert str(exc).startswith("config error at "), str(exc)


SHIPPED = sorted(  # the grid configs (config/claims.yaml is the claims file, not a grid)
    p
    for pattern in ("*.yaml", "studies/*.yaml")
    for p in (SMOKE_PATH.parent).glob(pattern)
    if p.name != "claims.yaml"
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(SMOKE_PATH.parent)))
def test_every_shipped_config_validates_and_has_a_grid(path: Path) -> None:
    """The configs users start from are valid (data folders aside: checked on their machines)."""
    config = validate_config(yaml.safe_load(path.read_text()), check_sources=False)
    cells = grid(config)
    assert cells, f"{path} has an empty grid"
    used = {c["method"] for c in cells}
    assert used == set(config["methods"]), (
        f"{path}: methods outside the grid: {set(config['methods']) - used}"
    )


def test_default_and_paper_configs_name_every_method_family() -> None:
    """The default grid and the paper grid carry the patch and diffusion methods too."""
    for name in ("config.yaml", "paper.yaml"):
        config = validate_config(
            yaml.safe_load((SMOKE_PATH.parent / name).read_text()), check_sources=False
        )
        kinds = {spec["kind"] for spec in config["methods"].values()}
        assert {
            "random",
            "herding",
            "kcenter",
            "el2n",
            "forgetting",
            "rded",
            "ddps",
            "gen",
            "psr",
        } <= kinds, name


def _shared_folder_groups() -> list[list[Path]]:
    """Study configs whose datasets are identical (same names and parameters): such studies
    can share one working directory, since their dataset files are the same."""
    groups: dict[str, list[Path]] = {}
    for path in sorted((SMOKE_PATH.parent / "studies").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        groups.setdefault(repr(sorted(config["datasets"].items())), []).append(path)
    return [g for g in groups.values() if len(g) > 1]


@pytest.mark.parametrize(
    "paths", _shared_folder_groups(), ids=lambda g: "+".join(p.stem for p in g)
)
def test_studies_on_the_same_data_never_reuse_a_name_for_other_parameters(paths):
    """A method, teacher, scorer, expert set or prior named alike in two such studies has the
    same parameters, so running one study in the other's folder reuses its targets instead of
    overwriting them (Snakemake would recompute, and the two studies would keep replacing each
    other's sets)."""
    sections = ("methods", "teachers", "scorers", "experts", "priors", "students")
    seen: dict[tuple[str, str], tuple[str, dict]] = {}
    for path in paths:
        config = yaml.safe_load(path.read_text())
        for section in sections:
            for name, spec in (config.get(section) or {}).items():
                key = (section, name)
                if key in seen:
                    other, before = seen[key]
                    assert spec == before, (
                        f"{section}.{name} differs between {other} and {path.name}: "
                        f"{before} vs {spec}"
                    )
                else:
                    seen[key] = (path.name, spec)
