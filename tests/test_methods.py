"""Method contract: every registered kind condenses a class-balanced, reproducible, valid set."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import pytest
from conftest import make_dynamics, make_image_data

import ddbench
from ddbench.config import validate_schema
from ddbench.data.datasets import ImageData
from ddbench.data.h5io import DataFileError, config_sha256, read_attrs, write_h5
from ddbench.methods import CondensedSet, Context, Method, get_method_class, list_methods
from ddbench.methods.selection import herding_order
from ddbench.testing import KNOWN_INPUTS

KINDS = list_methods()
SUPPORTED_INPUTS = {"features", "scores", "crops"}

# parameters for the built-in kinds; other (plugin) kinds get minimal ones from their schema
KNOWN_PARAMS = {
    "random": {},
    "herding": {"features": "teacher_a"},
    "kcenter": {"features": "teacher_a"},
    "el2n": {"scorer": "proxy", "epoch": 2, "keep": "easy"},
    "forgetting": {"scorer": "proxy"},
    "cad_prune": {"scorer": "proxy", "budget": 5, "window_j": 2, "window_w": 2},
    "dm": {"model": "convnet-d1-w4-in", "iterations": 2, "batch_real": 4},
    "idm": {
        "model": "convnet-d1-w4-in",
        "iterations": 2,
        "batch_real": 4,
        "net_batch": 8,
        "num_models": 2,
        "net_max_steps": 3,
    },
    "dc": {"model": "convnet-d1-w4-in", "iterations": 1, "outer_loop": 1, "batch_real": 4},
    "dsa": {"model": "convnet-d1-w4-in", "iterations": 1, "outer_loop": 1, "batch_real": 4},
    "rded": {"crops": "crops", "factor": 2},
    "ca2d": {
        "crops": "crops",
        "scorer": "proxy",
        "factor": 2,
        "budget": 4,
        "window_j": 2,
        "window_w": 1,
    },
}


def _params_from_schema(schema: dict) -> dict:
    out = {}
    for name in schema.get("required", []):
        prop = schema.get("properties", {}).get(name, {})
        if "enum" in prop:
            out[name] = prop["enum"][0]
        elif prop.get("type") == "string":
            out[name] = "x"
        elif prop.get("type") in ("integer", "number"):
            out[name] = prop.get("minimum", 0)
        elif prop.get("type") == "boolean":
            out[name] = False
        else:
            pytest.skip(f"cannot invent a value for required parameter {name!r} ({prop})")
    return out


def _params(kind: str) -> dict:
    cls = get_method_class(kind)
    params = (
        copy.deepcopy(KNOWN_PARAMS[kind])
        if kind in KNOWN_PARAMS
        else _params_from_schema(cls.param_schema)
    )
    validate_schema(copy.deepcopy(params), cls.param_schema, prefix=f"methods.{kind}")
    return params


def _crop_scores_file(data: ImageData) -> str:
    """A crop-score file over every training image: 3 random boxes each, seeded scores."""
    import tempfile

    from ddbench.data.h5io import write_h5
    from ddbench.stages.crops import sample_boxes

    rng = np.random.default_rng(3)
    n = len(data.train_labels)
    boxes = np.stack([sample_boxes(rng, data.image_size, 3, (0.3, 1.0)) for _ in range(n)])
    path = Path(tempfile.mkdtemp()) / "crops.h5"
    write_h5(
        path,
        "scores",
        {
            "patch_scores": rng.random((n, 3)).astype(np.float32),
            "patch_boxes": boxes,
            "image_indices": np.arange(n),
            "labels": data.train_labels,
        },
        created_by="test",
    )
    return str(path)


def _context(kind: str, data: ImageData) -> Context:
    cls = get_method_class(kind)
    missing = set(cls.requires) - SUPPORTED_INPUTS
    if missing:
        pytest.skip(
            f"{kind!r} requires {sorted(missing)} (a trained model or prior file), not available in unit tests"
        )
    ctx = Context(data=data, dataset=data.name)
    if "features" in cls.requires:
        rng = np.random.default_rng(11)
        ctx.features = rng.normal(size=(len(data.train_labels), 8)).astype(np.float32)
    if "crops" in cls.requires:
        ctx.extras["crops_path"] = _crop_scores_file(data)
    if "scores" in cls.requires:
        ctx.scores = make_dynamics(
            data.train_labels, runs=2, epochs=4, num_classes=data.num_classes, seed=5
        )
    return ctx


def _condense(
    kind: str, data: ImageData, ipc: int, seed: int, params: dict | None = None
) -> CondensedSet:
    ctx = _context(kind, data)
    method = get_method_class(kind)(**(_params(kind) if params is None else params))
    return method.condense(ctx, ipc, seed)


def _shape(data: ImageData) -> tuple[int, int, int]:
    return (data.in_chans, data.image_size, data.image_size)


# --- conformance over every registered kind -------------------------------------------------


def test_builtin_kinds_are_registered() -> None:
    assert {"random", "herding", "kcenter", "el2n", "forgetting"} <= set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("ipc", [1, 4])
def test_exact_class_balanced_ipc(kind: str, ipc: int, tiny_data: ImageData) -> None:
    cset = _condense(kind, tiny_data, ipc, seed=0)
    assert len(cset.labels) == len(cset.images) == ipc * tiny_data.num_classes
    np.testing.assert_array_equal(np.bincount(cset.labels, minlength=3), [ipc] * 3)
    assert cset.ipc == ipc and cset.kind == kind and cset.dataset == tiny_data.name


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_set(kind: str, tiny_data: ImageData) -> None:
    a = _condense(kind, tiny_data, 4, seed=3)
    b = _condense(kind, tiny_data, 4, seed=3)
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.labels, b.labels)
    if a.source_indices is not None or b.source_indices is not None:
        np.testing.assert_array_equal(a.source_indices, b.source_indices)


@pytest.mark.parametrize("kind", KINDS)
def test_source_indices_point_to_returned_images(kind: str, tiny_data: ImageData) -> None:
    cset = _condense(kind, tiny_data, 4, seed=1)
    if cset.source_indices is None:
        pytest.skip(f"{kind!r} synthesises images and reports no source indices")
    idx = cset.source_indices
    assert len(set(idx.tolist())) == len(idx), "a training image was selected twice"
    np.testing.assert_array_equal(cset.images, tiny_data.train_float()[idx])
    np.testing.assert_array_equal(cset.labels, tiny_data.train_labels[idx])


@pytest.mark.parametrize("kind", KINDS)
def test_output_is_valid_float32_nchw_in_unit_range(kind: str, tiny_data: ImageData) -> None:
    cset = _condense(kind, tiny_data, 4, seed=2)
    cset.validate(tiny_data.num_classes, _shape(tiny_data))
    assert cset.images.dtype == np.float32
    assert cset.images.shape == (12, 1, 6, 6)
    assert cset.images.min() >= 0.0 and cset.images.max() <= 1.0
    assert cset.labels.dtype == np.int64


@pytest.mark.parametrize("kind", KINDS)
def test_save_load_round_trip(kind: str, tiny_data: ImageData, tmp_path) -> None:
    cset = _condense(kind, tiny_data, 4, seed=7)
    cset.method = f"my_{kind}"  # the workflow sets the variant name
    path = tmp_path / "sub" / "set.h5"
    cset.save(path, created_by="test:condense", seed=7)
    back = CondensedSet.load(path, tiny_data.num_classes, _shape(tiny_data))
    for f in dataclasses.fields(CondensedSet):
        if f.name == "extra_attrs":
            continue
        mine, theirs = getattr(cset, f.name), getattr(back, f.name)
        if isinstance(mine, np.ndarray) or isinstance(theirs, np.ndarray):
            np.testing.assert_array_equal(theirs, mine, err_msg=f.name)
            assert theirs.dtype == mine.dtype, f.name
        else:
            assert theirs == mine, f.name
    attrs = read_attrs(path, "condensed")
    assert attrs["format"] == "ddbench.condensed/1"
    assert attrs["ddbench_version"] == ddbench.__version__
    assert attrs["created_by"] == "test:condense"
    assert attrs["seed"] == 7
    assert attrs["config_sha256"] == config_sha256(
        {"method": f"my_{kind}", "kind": kind, **cset.params}
    )
    assert not list(path.parent.glob(".*.tmp")), "temporary file left behind"


@pytest.mark.parametrize("kind", KINDS)
def test_init_only_stores_params(kind: str) -> None:
    params = _params(kind)
    method = get_method_class(kind)(**params)  # names of inputs that do not exist: no work done
    assert method.params == params
    assert method.kind == kind
    assert set(method.input_names()) <= KNOWN_INPUTS


@pytest.mark.parametrize("kind", KINDS)
def test_ipc_larger_than_a_class_raises_naming_it(kind: str) -> None:
    data = make_image_data(counts=(12, 12, 3))
    with pytest.raises(ValueError, match="'c'"):
        _condense(kind, data, 4, seed=0)


# --- kind-specific behaviour -----------------------------------------------------------------


def test_random_different_seeds_give_different_sets(tiny_data: ImageData) -> None:
    a = _condense("random", tiny_data, 4, seed=0)
    b = _condense("random", tiny_data, 4, seed=1)
    assert set(a.source_indices.tolist()) != set(b.source_indices.tolist())


def test_kcenter_seed_changes_the_start_point(tiny_data: ImageData) -> None:
    starts = {
        tuple(_condense("kcenter", tiny_data, 1, seed=s).source_indices.tolist()) for s in range(4)
    }
    assert len(starts) > 1


def test_herding_selected_mean_beats_random_subsets(tiny_data: ImageData) -> None:
    ctx = _context("herding", tiny_data)
    cset = get_method_class("herding")(**_params("herding")).condense(ctx, 4, seed=0)
    rng = np.random.default_rng(0)
    for c, idx in enumerate(tiny_data.class_indices()):
        chosen = cset.source_indices[cset.labels == c]
        np.testing.assert_array_equal(chosen, idx[herding_order(ctx.features[idx], 4)])
        mu = ctx.features[idx].mean(axis=0)
        gap = np.linalg.norm(ctx.features[chosen].mean(axis=0) - mu)
        random_gaps = [
            np.linalg.norm(ctx.features[rng.choice(idx, 4, replace=False)].mean(axis=0) - mu)
            for _ in range(50)
        ]
        assert gap <= np.median(random_gaps)


def _chosen_and_rest(cset: CondensedSet, data: ImageData, scores: np.ndarray, c: int):
    chosen = cset.source_indices[cset.labels == c]
    rest = np.setdiff1d(data.class_indices()[c], chosen)
    return scores[chosen], scores[rest]


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("el2n", {"scorer": "proxy", "epoch": 1, "keep": "easy"}),
        ("el2n", {"scorer": "proxy", "epoch": 1, "keep": "hard"}),
        ("forgetting", {"scorer": "proxy"}),  # default keep: hard (most forgotten)
        ("forgetting", {"scorer": "proxy", "keep": "easy"}),
    ],
)
def test_score_methods_keep_easiest_or_hardest_per_class(
    kind: str, params: dict, tiny_data: ImageData
) -> None:
    from ddbench.stages.scores import el2n, forgetting

    ctx = _context(kind, tiny_data)
    cset = get_method_class(kind)(**params).condense(ctx, 3, seed=0)
    probs, labels = ctx.scores["probs"], ctx.scores["labels"]
    scores = el2n(probs, labels, 1) if kind == "el2n" else forgetting(probs, labels)
    for c in range(tiny_data.num_classes):
        chosen, rest = _chosen_and_rest(cset, tiny_data, scores, c)
        if params.get("keep", "hard") == "easy":
            assert chosen.max() <= rest.min()
        else:
            assert chosen.min() >= rest.max()


def test_el2n_band_keeps_scores_inside_the_window(tiny_data: ImageData) -> None:
    from ddbench.stages.scores import el2n

    ctx = _context("el2n", tiny_data)
    params = {"scorer": "proxy", "epoch": 0, "keep": "band", "band": [0.25, 0.75]}
    cset = get_method_class("el2n")(**params).condense(ctx, 3, seed=0)
    scores = el2n(ctx.scores["probs"], ctx.scores["labels"], 0)
    for c, idx in enumerate(tiny_data.class_indices()):
        window = idx[np.argsort(scores[idx])][3:9]  # 12 per class: ranks 3..8
        chosen = cset.source_indices[cset.labels == c]
        assert set(chosen.tolist()) <= set(window.tolist())


# --- CondensedSet.validate -------------------------------------------------------------------


@pytest.fixture
def valid_set() -> CondensedSet:
    rng = np.random.default_rng(0)
    return CondensedSet(
        images=rng.random((6, 1, 6, 6), dtype=np.float32),
        labels=np.array([0, 0, 1, 1, 2, 2], dtype=np.int64),
        method="m",
        kind="random",
        params={},
        ipc=2,
        dataset="tiny",
    )


def test_validate_accepts_valid_set(valid_set: CondensedSet) -> None:
    valid_set.validate(3, (1, 6, 6))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda s: setattr(s, "images", s.images[:, :, :5]), r"shape \(6, 1, 5, 6\)"),
        (lambda s: setattr(s, "images", s.images[:, 0]), "shape"),
        (lambda s: s.images.__setitem__((2, 0, 3, 3), np.nan), "NaN"),
        (lambda s: s.images.__setitem__((0, 0, 0, 0), 1.5), r"outside \[0, 1\]"),
        (lambda s: s.images.__setitem__((0, 0, 0, 0), -0.1), r"outside \[0, 1\]"),
        (lambda s: s.labels.__setitem__(5, 3), "labels outside 0..2"),
        (lambda s: s.labels.__setitem__(5, -1), "labels outside 0..2"),
        (lambda s: s.labels.__setitem__(5, 1), "exactly 2 images per class"),
        (lambda s: setattr(s, "labels", s.labels[:5]), "6 images but 5 labels"),
        (lambda s: setattr(s, "soft_labels", np.ones((6, 4), np.float32)), "soft labels"),
    ],
    ids=[
        "short-side",
        "ndim",
        "nan",
        "above-1",
        "below-0",
        "label-high",
        "label-neg",
        "counts",
        "n-labels",
        "soft",
    ],
)
def test_validate_rejects_with_a_clear_message(
    valid_set: CondensedSet, mutate, message: str
) -> None:
    mutate(valid_set)
    with pytest.raises(DataFileError, match=message) as info:
        valid_set.validate(3, (1, 6, 6), where="set.h5")
    assert str(info.value).startswith("set.h5:")


def test_load_validates_and_names_the_file(valid_set: CondensedSet, tmp_path) -> None:
    valid_set.labels[5] = 1  # class 2 has one image, class 1 three
    path = tmp_path / "bad.h5"
    valid_set.save(path, created_by="test", seed=0)
    CondensedSet.load(path)  # without the dataset, no validation
    with pytest.raises(DataFileError, match=r"bad\.h5.*exactly 2 images per class"):
        CondensedSet.load(path, 3, (1, 6, 6))


def test_load_rejects_other_file_kind(tmp_path) -> None:
    path = tmp_path / "scores.h5"
    write_h5(path, "scores", {"probs": np.zeros((1, 1, 2, 2), np.float32)}, created_by="test")
    with pytest.raises(DataFileError, match=r"scores\.h5.*ddbench\.condensed/1"):
        CondensedSet.load(path)


def test_base_method_condense_is_abstract(tiny_data: ImageData) -> None:
    with pytest.raises(NotImplementedError):
        Method().condense(Context(data=tiny_data, dataset="tiny"), 1, 0)
