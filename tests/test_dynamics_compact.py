"""Compact training dynamics: same scores as the full softmax, sub-epoch records, old files, size."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from ddbench.config import ConfigError, _check_recorded_epochs
from ddbench.data.datasets import load_dataset, prepare_dataset
from ddbench.data.h5io import write_h5
from ddbench.methods import Context, get_method_class
from ddbench.stages.dynamics import record_dynamics
from ddbench.stages.scores import (
    COMPACT_FIELDS,
    Dynamics,
    as_dynamics,
    cad_points,
    cad_score,
    el2n_score,
    forgetting_score,
    load_dynamics,
)

# the smoke scorer (config/smoke.yaml) with enough epochs for CAD's default J = W = 3
SPEC = {
    "kind": "dynamics",
    "model": "convnet-d2-w16-in",
    "runs": 2,
    "epochs": 7,
    "batch_size": 64,
    "lr": 0.05,
}


# --- the per-epoch definitions on a full softmax array, as computed before the compact layout --


def ref_el2n(probs, labels, epoch):
    p = probs[:, epoch]
    onehot = np.eye(p.shape[-1], dtype=np.float32)[labels]
    return np.linalg.norm(p - onehot[None], axis=-1).mean(axis=0)


def ref_forgetting(probs, labels):
    correct = probs.argmax(-1) == labels[None, None, :]
    flips = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)
    flips[~correct.any(axis=1)] = np.inf
    return flips.mean(axis=0)


def ref_cad(probs, labels, budget, window_j=3, window_w=3):
    last_k = budget - window_j - 1
    first_k = last_k - window_w + 1
    assert first_k >= 1 and last_k + window_j - 1 <= probs.shape[1]
    pt = np.take_along_axis(probs, labels[None, None, :, None], axis=-1)[..., 0]
    u = np.stack([pt[:, k - 1 : k - 1 + window_j].std(axis=1) for k in range(first_k, last_k + 1)])
    return u.mean(axis=0).mean(axis=0)


# --- one proxy training on digits, recorded three ways ----------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("dynamics")
    ds = root / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, ds)
    files = {
        "full": {**SPEC, "store": "full"},
        "compact": SPEC,
        "every11": {**SPEC, "epochs": 3, "record_every_steps": 11},  # 22 steps per epoch
        "epoch3": {**SPEC, "epochs": 3},
    }
    for name, spec in files.items():
        record_dynamics(ds, "dynamics", spec, root / f"{name}.h5", device="cpu", threads=1)
    return {"dataset": ds, **{name: root / f"{name}.h5" for name in files}}


def test_compact_file_holds_13_bytes_per_sample_point_run(recorded) -> None:
    with h5py.File(recorded["compact"], "r") as f:
        assert "probs" not in f
        runs, points, n = f["p_true"].shape
        assert (runs, points, n) == (2, 7, 1347)
        raw = sum(f[k].size * f[k].dtype.itemsize for k in COMPACT_FIELDS)
        stored = sum(f[k].id.get_storage_size() for k in COMPACT_FIELDS)
        assert {k: f[k].dtype for k in COMPACT_FIELDS} == {
            "p_true": np.float32,
            "correct": np.uint8,
            "el2n": np.float32,
            "margin": np.float32,
        }
        np.testing.assert_array_equal(f["steps"][()], 22 * np.arange(1, 8))
        assert int(f["steps_per_epoch"][()]) == 22
    assert raw / (runs * points * n) == 13
    assert stored / (runs * points * n) <= 16
    with h5py.File(recorded["full"], "r") as f:  # the full softmax: 4·K = 40 bytes
        assert f["probs"].size * 4 / (runs * points * n) == 40


def test_compact_run_equals_full_run(recorded) -> None:
    full, compact = load_dynamics(recorded["full"]), load_dynamics(recorded["compact"])
    assert "probs" in full and "probs" not in compact
    for key in (*COMPACT_FIELDS, "labels", "steps", "steps_per_epoch"):
        np.testing.assert_array_equal(full[key], compact[key])


def test_compact_scores_equal_the_full_softmax_scores(recorded) -> None:
    full = load_dynamics(recorded["full"])
    probs, labels = full["probs"], full["labels"]
    dyn = as_dynamics(load_dynamics(recorded["compact"]))
    for epoch in range(7):
        np.testing.assert_array_equal(el2n_score(dyn, epoch), ref_el2n(probs, labels, epoch))
    got = forgetting_score(dyn)
    np.testing.assert_array_equal(got, ref_forgetting(probs, labels))
    assert (got > 0).any()
    for budget, j, w in [(7, 3, 3), (8, 3, 3), (9, 3, 3), (6, 2, 2), (5, 2, 1)]:
        np.testing.assert_array_equal(
            cad_score(dyn, budget, j, w), ref_cad(probs, labels, budget, j, w)
        )
    # margin: p(y|x) minus the largest other probability
    others = probs.copy()
    np.put_along_axis(others, labels[None, None, :, None], -1.0, axis=-1)
    np.testing.assert_array_equal(dyn.margin, dyn.p_true - others.max(-1))


@pytest.mark.parametrize(
    "kind, params",
    [
        ("el2n", {"scorer": "dynamics", "epoch": 2, "keep": "easy"}),
        ("el2n", {"scorer": "dynamics", "epoch": 2, "keep": "band", "band": [0.3, 0.7]}),
        ("forgetting", {"scorer": "dynamics"}),
        ("cad_prune", {"scorer": "dynamics"}),
        ("cad_prune", {"scorer": "dynamics", "budget": 6, "window_j": 2, "window_w": 2}),
    ],
)
def test_coreset_methods_select_the_same_from_compact_and_full(recorded, kind, params) -> None:
    data = load_dataset(recorded["dataset"])
    full = load_dynamics(recorded["full"])
    method = get_method_class(kind)(**params)
    old = Context(data=data, dataset="digits", scores={k: full[k] for k in ("probs", "labels")})
    new = Context(data=data, dataset="digits", scores=load_dynamics(recorded["compact"]))
    a, b = method.condense(old, 5, seed=0), method.condense(new, 5, seed=0)
    np.testing.assert_array_equal(a.source_indices, b.source_indices)
    # and the selection is the one today's scores give
    ref = {
        "el2n": lambda: ref_el2n(full["probs"], full["labels"], 2),
        "forgetting": lambda: ref_forgetting(full["probs"], full["labels"]),
        "cad_prune": lambda: ref_cad(
            full["probs"],
            full["labels"],
            params.get("budget", 7),
            params.get("window_j", 3),
            params.get("window_w", 3),
        ),
    }[kind]()
    keep = params.get("keep", "easy" if kind == "el2n" else "hard")
    if keep != "band":
        for c in range(data.num_classes):
            chosen = b.source_indices[b.labels == c]
            rest = np.setdiff1d(np.flatnonzero(data.train_labels == c), chosen)
            if keep == "easy":
                assert ref[chosen].max() <= ref[rest].min()
            else:
                assert ref[chosen].min() >= ref[rest].max()


def test_ca2d_ranks_the_same_from_compact_and_full(recorded, tmp_path) -> None:
    data = load_dataset(recorded["dataset"])
    n = len(data.train_labels)
    rng = np.random.default_rng(0)
    crops = tmp_path / "crops.h5"
    write_h5(
        crops,
        "scores",
        {
            "patch_scores": rng.random((n, 2)).astype(np.float32),
            "patch_boxes": np.tile(np.array([0, 0, 8, 8]), (n, 2, 1)).astype(np.int64),
            "image_indices": np.arange(n, dtype=np.int64),
        },
        created_by="test",
    )
    full = load_dynamics(recorded["full"])
    method = get_method_class("ca2d")(crops="c", scorer="dynamics", factor=1)
    sets = []
    for scores in ({k: full[k] for k in ("probs", "labels")}, load_dynamics(recorded["compact"])):
        ctx = Context(data=data, dataset="digits", scores=scores, extras={"crops_path": str(crops)})
        sets.append(method.condense(ctx, 2, seed=0))
    np.testing.assert_array_equal(sets[0].images, sets[1].images)
    difficulty = ref_cad(full["probs"], full["labels"], 7)
    for c in range(data.num_classes):  # the first image of a class is its hardest source
        rows = np.flatnonzero(data.train_labels == c)
        hardest = rows[np.argmax(difficulty[rows])]
        np.testing.assert_allclose(
            sets[1].images[sets[1].labels == c][0],
            data.train_float_subset([hardest])[0],
            atol=1e-6,
        )


# --- sub-epoch records --------------------------------------------------------------------------


def test_sub_epoch_records_hold_the_epoch_records(recorded) -> None:
    every, epoch = load_dynamics(recorded["every11"]), load_dynamics(recorded["epoch3"])
    np.testing.assert_array_equal(every["steps"], 11 * np.arange(1, 7))
    assert int(every["steps_per_epoch"]) == 22
    for key in COMPACT_FIELDS:  # the records at steps 22, 44, 66 are the per-epoch ones
        np.testing.assert_array_equal(every[key][:, 1::2], epoch[key])
    dyn = as_dynamics(every)
    np.testing.assert_array_equal(el2n_score(dyn, 1), el2n_score(as_dynamics(epoch), 1))
    assert dyn.point_at(1.5) == 3 and dyn.epochs_of(3) == 1.5


def _dynamics(pt: np.ndarray, steps_per_epoch: int, interval: int) -> Dynamics:
    """Dynamics with p(y|x) = pt [R, P, N] (two classes, labels 0) on a regular step grid."""
    probs = np.stack([pt, 1 - pt], axis=-1).astype(np.float32)
    steps = interval * np.arange(1, pt.shape[1] + 1)
    return Dynamics.from_probs(probs, np.zeros(pt.shape[2], np.int64), steps, steps_per_epoch)


def test_sub_epoch_cad_known_answer() -> None:
    # 4 steps per epoch, a record every 2 steps: points 1..8 are epochs 0.5, 1, ..., 4
    ramp = np.arange(1, 9) / 10  # 0.1 .. 0.8
    flip = np.array([0, 1] * 4, dtype=float)
    late = np.array([0] * 4 + [1] * 4, dtype=float)  # learned between points 4 and 5
    pt = np.stack([ramp, flip, late], axis=1)[None]  # [R=1, P=8, N=3]
    dyn = _dynamics(pt, steps_per_epoch=4, interval=2)
    # K = 2.5 epochs = step 10 = point a = 5; J = 2, W = 2: windows start at a-J-W = 1 and
    # a-J-1 = 2, i.e. points (1, 2) and (2, 3); the last point read is a - 2 = 3
    assert cad_points(dyn, 2.5, 2, 2) == [1, 2]
    got = cad_score(dyn, 2.5, 2, 2)
    np.testing.assert_allclose(got, [0.05, 0.5, 0.0], rtol=1e-5, atol=1e-7)
    # a budget between two records ends at the earlier one: 2.75 epochs = step 11 -> point 5
    np.testing.assert_array_equal(cad_score(dyn, 2.75, 2, 2), got)
    # K = 4 epochs = point 8: windows (4, 5), (5, 6)
    assert cad_points(dyn, 4, 2, 2) == [4, 5]
    np.testing.assert_allclose(cad_score(dyn, 4, 2, 2), [0.05, 0.5, 0.25], rtol=1e-5)
    # K = 1.5 epochs = point 3: a window would have to start at point 0
    with pytest.raises(ValueError, match=r"needs record points 1..1 \(K is point 3"):
        cad_score(dyn, 1.5, 2, 1)
    # a grid that does not divide the epoch: 4 steps per epoch, a record every 3 steps;
    # K = 4 epochs = step 16 -> point floor(16 / 3) = 5
    dyn3 = _dynamics(pt, steps_per_epoch=4, interval=3)
    assert cad_points(dyn3, 4, 2, 2) == [1, 2]


def test_per_epoch_cad_with_integer_budget_is_unchanged() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(3, 12, 30)).astype(np.float32)
    labels = rng.integers(0, 4, 30)
    dyn = Dynamics.from_probs(probs, labels, steps_per_epoch=17, steps=17 * np.arange(1, 13))
    for budget, j, w in [(12, 3, 3), (13, 3, 3), (14, 3, 3), (9, 2, 4), (7, 3, 3)]:
        np.testing.assert_array_equal(
            cad_score(dyn, budget, j, w), ref_cad(probs, labels, budget, j, w)
        )
    with pytest.raises(ValueError, match="needs record points"):
        cad_score(dyn, 15, 3, 3)  # reads up to point 13 of 12


# --- files written before the compact layout ----------------------------------------------------


def test_old_full_softmax_files_still_read(tmp_path) -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(5), size=(2, 8, 40)).astype(np.float32)
    labels = rng.integers(0, 5, 40).astype(np.int64)
    path = tmp_path / "old.h5"
    write_h5(path, "scores", {"probs": probs, "labels": labels}, created_by="old")
    loaded = load_dynamics(path)
    np.testing.assert_array_equal(loaded["probs"], probs)
    np.testing.assert_array_equal(loaded["steps"], np.arange(1, 9))
    dyn = as_dynamics(loaded)
    np.testing.assert_array_equal(el2n_score(dyn, 3), ref_el2n(probs, labels, 3))
    np.testing.assert_array_equal(forgetting_score(dyn), ref_forgetting(probs, labels))
    np.testing.assert_array_equal(cad_score(dyn, 8), ref_cad(probs, labels, 8))


# --- EL2N-SL needs the full softmax ---------------------------------------------------------------


def test_el2n_sl_on_compact_dynamics_names_the_key(recorded) -> None:
    data = load_dataset(recorded["dataset"])
    ctx = Context(data=data, dataset="digits", scores=load_dynamics(recorded["compact"]))
    method = get_method_class("el2n")(
        scorer="dynamics", epoch=1, keep="easy", target="teacher", features="convnet"
    )
    with pytest.raises(ValueError, match=r"scorers\.dynamics\.store: full"):
        method.condense(ctx, 1, seed=0)


def test_config_checks_store_and_sub_epoch_budgets() -> None:
    el2n_sl = {"epoch": 1, "keep": "easy", "target": "teacher", "features": "t"}
    with pytest.raises(ConfigError, match=r"scorers\.proxy\.store: full"):
        _check_recorded_epochs("m", el2n_sl, "proxy", {"epochs": 4})
    _check_recorded_epochs("m", el2n_sl, "proxy", {"epochs": 4, "store": "full"})
    cad = {"window_j": 3, "window_w": 3}
    _check_recorded_epochs("m", cad, "proxy", {"epochs": 7})  # reads epochs 1..5
    _check_recorded_epochs("m", {**cad, "budget": 7.5}, "proxy", {"epochs": 7})  # point 7
    with pytest.raises(ConfigError, match="K=6.5"):
        _check_recorded_epochs("m", {**cad, "budget": 6.5}, "proxy", {"epochs": 7})
    sub = {"epochs": 4, "record_every_steps": 5}  # the points per epoch depend on the data
    _check_recorded_epochs("m", {**cad, "budget": 2.5}, "proxy", sub)
    with pytest.raises(ConfigError, match="beyond the 4 epochs"):
        _check_recorded_epochs("m", {**cad, "budget": 5}, "proxy", sub)
