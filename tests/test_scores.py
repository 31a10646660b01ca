"""Dynamics-derived scores against direct loop computations, and the scores file reader."""

from __future__ import annotations

import numpy as np
import pytest

from ddbench.data.h5io import DataFileError, write_h5
from ddbench.methods.selection import rank_by_score
from ddbench.stages.scores import (
    as_dynamics,
    compact_stats,
    el2n,
    el2n_score,
    forgetting,
    load_dynamics,
    p_true,
)


def _labels(n: int = 10, k: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, k, size=n).astype(np.int64)


# --- EL2N ------------------------------------------------------------------------------------


@pytest.mark.parametrize("epoch", [0, 2, 4])
def test_el2n_matches_direct_loop(fake_dynamics, epoch: int) -> None:
    dyn = fake_dynamics(_labels(), runs=3, epochs=5)
    probs, labels = dyn["probs"], dyn["labels"]
    runs, _, n, k = probs.shape
    expected = np.zeros(n)
    for i in range(n):
        per_run = []
        for r in range(runs):
            onehot = np.zeros(k)
            onehot[labels[i]] = 1.0
            per_run.append(np.sqrt(np.sum((probs[r, epoch, i].astype(np.float64) - onehot) ** 2)))
        expected[i] = np.mean(per_run)
    got = el2n(probs, labels, epoch)
    assert got.shape == (n,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_el2n_perfect_sample_is_easiest_and_last_when_hard(fake_dynamics) -> None:
    dyn = fake_dynamics(_labels(12), runs=2, epochs=3)
    probs, labels = dyn["probs"], dyn["labels"]
    perfect = 7
    probs[:, 1, perfect] = np.eye(3, dtype=np.float32)[labels[perfect]]
    s = el2n(probs, labels, 1)
    assert s[perfect] == 0.0
    assert np.all(np.delete(s, perfect) > 0)
    assert rank_by_score(s, "easy", np.random.default_rng(0))[0] == perfect
    assert rank_by_score(s, "hard", np.random.default_rng(0))[-1] == perfect


@pytest.mark.parametrize("epoch", [-1, 5, 100])
def test_el2n_epoch_out_of_range_raises(fake_dynamics, epoch: int) -> None:
    dyn = fake_dynamics(_labels(), epochs=5)
    with pytest.raises(ValueError, match="epoch"):
        el2n(dyn["probs"], dyn["labels"], epoch)


# --- forgetting ------------------------------------------------------------------------------


def _forgetting_by_loop(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    runs, epochs, n, _ = probs.shape
    out = np.zeros(n)
    for i in range(n):
        per_run = []
        for r in range(runs):
            correct = [int(np.argmax(probs[r, e, i])) == labels[i] for e in range(epochs)]
            if not any(correct):
                per_run.append(np.inf)
            else:
                per_run.append(sum(correct[e] and not correct[e + 1] for e in range(epochs - 1)))
        out[i] = np.mean(per_run)
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_forgetting_matches_direct_count(fake_dynamics, seed: int) -> None:
    dyn = fake_dynamics(_labels(40, seed=seed), runs=2, epochs=6, seed=seed)
    expected = _forgetting_by_loop(dyn["probs"], dyn["labels"])
    got = forgetting(dyn["probs"], dyn["labels"])
    # the random data must exercise both finite counts > 0 and never-learned samples
    assert np.isfinite(expected).any() and (expected[np.isfinite(expected)] > 0).any()
    np.testing.assert_array_equal(got, expected)


def test_forgetting_counts_explicit_histories() -> None:
    # one run, 5 epochs, K=2, label 0 for all; correct <=> argmax == 0
    correct = np.array(
        [
            [1, 1, 1, 1, 1],  # learned, never forgotten -> 0
            [1, 0, 1, 0, 1],  # forgotten twice -> 2
            [0, 0, 1, 1, 0],  # learned late, forgotten once -> 1
            [0, 0, 0, 0, 0],  # never learned -> inf
        ],
        dtype=bool,
    ).T  # [E, N]
    probs = np.where(correct[None, ..., None], [0.9, 0.1], [0.1, 0.9]).astype(np.float32)
    labels = np.zeros(4, dtype=np.int64)
    np.testing.assert_array_equal(forgetting(probs, labels), [0.0, 2.0, 1.0, np.inf])


def test_never_learned_sample_ranks_as_most_forgotten(fake_dynamics) -> None:
    labels = np.zeros(10, dtype=np.int64)
    dyn = fake_dynamics(labels, runs=2, epochs=8, num_classes=2, seed=3)
    probs = dyn["probs"]
    probs[:, 0, 1:9] = [0.9, 0.1]  # every other sample is learned at least once per run
    # sample 0 flips every epoch (the most a learned sample can be forgotten), sample 9 never learned
    probs[:, :, 0] = np.where(np.arange(8)[None, :, None] % 2 == 0, [0.9, 0.1], [0.1, 0.9])
    probs[:, :, 9] = [0.2, 0.8]
    s = forgetting(probs, labels)
    assert s[9] == np.inf
    assert s[0] == 4.0 and np.isfinite(np.delete(s, 9)).all()
    assert rank_by_score(s, "hard", np.random.default_rng(0))[0] == 9
    assert rank_by_score(s, "easy", np.random.default_rng(0))[-1] == 9


def test_p_true_picks_the_label_column(fake_dynamics) -> None:
    dyn = fake_dynamics(_labels(), runs=2, epochs=3)
    probs, labels = dyn["probs"], dyn["labels"]
    got = p_true(probs, labels)
    assert got.shape == probs.shape[:3]
    for i, y in enumerate(labels):
        np.testing.assert_array_equal(got[:, :, i], probs[:, :, i, y])


# --- load_dynamics ---------------------------------------------------------------------------


def test_load_dynamics_round_trip(tmp_path, fake_dynamics) -> None:
    dyn = fake_dynamics(_labels(), runs=2, epochs=4)
    path = tmp_path / "dyn.h5"
    write_h5(
        path,
        "scores",
        {"probs": dyn["probs"], "labels": dyn["labels"].astype(np.int32)},
        created_by="test",
    )
    got = load_dynamics(path)
    assert got["probs"].dtype == np.float32 and got["labels"].dtype == np.int64
    np.testing.assert_array_equal(got["probs"], dyn["probs"])
    np.testing.assert_array_equal(got["labels"], dyn["labels"])


def test_load_dynamics_rejects_other_file_kind(tmp_path, fake_dynamics) -> None:
    dyn = fake_dynamics(_labels())
    path = tmp_path / "feats.h5"
    write_h5(path, "features", dict(dyn), created_by="test")
    with pytest.raises(DataFileError, match="feats.h5") as info:
        load_dynamics(path)
    assert "ddbench.stages.scores/1" in str(info.value)


def test_load_dynamics_rejects_sample_count_mismatch(tmp_path, fake_dynamics) -> None:
    dyn = fake_dynamics(_labels(10))
    path = tmp_path / "dyn.h5"
    write_h5(
        path, "scores", {"probs": dyn["probs"], "labels": dyn["labels"][:9]}, created_by="test"
    )
    with pytest.raises(DataFileError, match="10 samples but labels 9"):
        load_dynamics(path)


def test_load_dynamics_missing_file_names_path(tmp_path) -> None:
    with pytest.raises(DataFileError, match="nope.h5.*does not exist"):
        load_dynamics(tmp_path / "nope.h5")


# --- compact dynamics files ------------------------------------------------------------------


def _compact_arrays(dyn: dict) -> dict[str, np.ndarray]:
    points = dyn["probs"].shape[1]
    return {
        **compact_stats(dyn["probs"], dyn["labels"]),
        "labels": dyn["labels"],
        "steps": 5 * np.arange(1, points + 1),
        "steps_per_epoch": np.int64(10),
    }


def test_load_dynamics_compact_round_trip(tmp_path, fake_dynamics) -> None:
    dyn = fake_dynamics(_labels(), runs=2, epochs=4)
    arrays = _compact_arrays(dyn)
    path = tmp_path / "dyn.h5"
    write_h5(path, "scores", arrays, created_by="test", attrs={"num_classes": 3})
    got = load_dynamics(path)
    assert "probs" not in got
    for key, value in arrays.items():
        np.testing.assert_array_equal(got[key], value)
    d = as_dynamics(got)
    assert d.points == 4 and d.interval == 5 and d.epochs_of(4) == 2.0
    assert d.correct.dtype == bool
    # two records per epoch: epoch 0 (0-based) ends at point 2, EL2N reads record index 1
    np.testing.assert_array_equal(el2n_score(d, 0), arrays["el2n"][:, 1].mean(axis=0))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"steps": np.array([5, 10, 20, 25])}, "not a regular grid"),
        ({"steps": np.array([5, 10, 15])}, "3 record steps for 4 record points"),
        ({"margin": np.zeros((2, 3, 10), np.float32)}, "margin has shape"),
        ({"labels": np.full(10, 3, np.int64)}, r"labels outside 0..2"),
        ({"el2n": np.full((2, 4, 10), np.nan, np.float32)}, "el2n contains NaN"),
    ],
)
def test_load_dynamics_rejects_bad_compact_files(tmp_path, fake_dynamics, change, message) -> None:
    arrays = {**_compact_arrays(fake_dynamics(_labels(), runs=2, epochs=4)), **change}
    path = tmp_path / "dyn.h5"
    write_h5(path, "scores", arrays, created_by="test", attrs={"num_classes": 3})
    with pytest.raises(DataFileError, match=message):
        load_dynamics(path)
