"""Selection algorithms checked against their definitions by brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ddbench.methods.selection import covering_radius, herding_order, kcenter_order, rank_by_score


def _points(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


# --- herding -------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_herding_each_step_minimises_distance_to_mean(d: int, seed: int) -> None:
    x = _points(15, d, seed)
    mu = x.mean(axis=0)
    order = herding_order(x, len(x))
    assert order.dtype == np.int64
    assert sorted(order.tolist()) == list(range(len(x)))  # every index exactly once
    for t in range(len(x)):
        selected = list(order[:t])
        remaining = [i for i in range(len(x)) if i not in selected]
        err = {i: np.linalg.norm(mu - x[[*selected, i]].mean(axis=0)) for i in remaining}
        assert err[int(order[t])] <= min(err.values()) + 1e-12, f"step {t}"


def test_herding_prefix_is_stable_and_k_is_clamped() -> None:
    x = _points(10, 3, 7)
    full = herding_order(x, 10)
    np.testing.assert_array_equal(herding_order(x, 4), full[:4])
    np.testing.assert_array_equal(herding_order(x, 50), full)


# --- k-center --------------------------------------------------------------------------------


@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("first", [0, 6])
def test_kcenter_each_new_center_is_farthest_from_current_centers(d: int, first: int) -> None:
    x = _points(14, d, d)
    order = kcenter_order(x, len(x), first)
    assert order[0] == first
    assert len(set(order.tolist())) == len(order) == len(x)
    for t in range(1, len(x)):
        centers = order[:t]
        gap = np.linalg.norm(x[:, None] - x[None, centers], axis=2).min(axis=1)
        assert gap[order[t]] >= gap.max() - 1e-12, f"step {t}"


def test_covering_radius_is_non_increasing_in_k() -> None:
    x = _points(20, 3, 3)
    order = kcenter_order(x, len(x), first=5)
    radii = [covering_radius(x, order[:k]) for k in range(1, len(x) + 1)]
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(radii))
    assert radii[-1] == 0.0


def test_covering_radius_matches_definition() -> None:
    x = _points(8, 2, 4)
    centers = np.array([1, 5])
    expected = max(min(np.linalg.norm(x[i] - x[c]) for c in centers) for i in range(len(x)))
    assert covering_radius(x, centers) == pytest.approx(expected)


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kcenter_is_a_two_approximation(k: int, seed: int) -> None:
    x = _points(9, 2, 10 + seed)
    optimal = min(covering_radius(x, np.array(s)) for s in itertools.combinations(range(9), k))
    for first in range(len(x)):
        greedy = covering_radius(x, kcenter_order(x, k, first))
        assert optimal - 1e-12 <= greedy <= 2 * optimal + 1e-12


def test_kcenter_never_repeats_an_index_even_with_duplicate_points() -> None:
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    order = kcenter_order(x, 4, first=1)
    assert len(set(order.tolist())) == 4


# --- rank_by_score ---------------------------------------------------------------------------


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_rank_easy_is_ascending_and_a_permutation() -> None:
    s = np.random.default_rng(0).normal(size=25)
    order = rank_by_score(s, "easy", _rng())
    assert sorted(order.tolist()) == list(range(25))
    assert np.all(np.diff(s[order]) >= 0)


def test_rank_hard_is_descending_with_infinity_first() -> None:
    s = np.random.default_rng(1).normal(size=20) * 1e300  # large finite values next to inf
    s[[3, 11]] = np.inf
    order = rank_by_score(s, "hard", _rng())
    assert sorted(order.tolist()) == list(range(20))
    assert set(order[:2].tolist()) == {3, 11}
    np.testing.assert_array_equal(s[order], np.sort(s)[::-1])


def test_rank_band_returns_window_members_first() -> None:
    n = 20
    s = np.random.default_rng(2).permutation(n).astype(float)  # score == ascending rank
    order = rank_by_score(s, "band", _rng(), band=(0.25, 0.75))
    assert sorted(order.tolist()) == list(range(n))
    assert set(s[order[:10]].tolist()) == set(range(5, 15))
    # outside the window, the nearest ranks come first
    dist_outside = np.abs(s[order[10:]] - 9.5)
    assert np.all(np.diff(dist_outside) >= 0)


def test_rank_band_default_window_is_the_middle_half() -> None:
    s = np.arange(8, dtype=float)
    order = rank_by_score(s, "band", _rng())
    assert set(order[:4].tolist()) == {2, 3, 4, 5}


def test_rank_band_order_inside_window_depends_on_seed() -> None:
    s = np.arange(40, dtype=float)
    insides = {
        tuple(rank_by_score(s, "band", _rng(seed), band=(0.25, 0.75))[:20]) for seed in range(5)
    }
    assert all(set(t) == set(range(10, 30)) for t in insides)
    assert len(insides) > 1


@pytest.mark.parametrize("keep", ["easy", "hard"])
def test_rank_ties_broken_by_seed_score_order_unchanged(keep: str) -> None:
    s = np.repeat([2.0, 0.0, 1.0], 6)  # three groups of six tied scores
    orders = [rank_by_score(s, keep, _rng(seed)) for seed in range(6)]
    expected = np.sort(s) if keep == "easy" else np.sort(s)[::-1]
    for order in orders:
        np.testing.assert_array_equal(s[order], expected)
    assert len({tuple(o) for o in orders}) > 1
    np.testing.assert_array_equal(rank_by_score(s, keep, _rng(3)), rank_by_score(s, keep, _rng(3)))


def test_rank_distinct_scores_do_not_depend_on_seed() -> None:
    s = np.random.default_rng(5).normal(size=15)
    for keep in ("easy", "hard"):
        np.testing.assert_array_equal(
            rank_by_score(s, keep, _rng(0)), rank_by_score(s, keep, _rng(9))
        )


@pytest.mark.parametrize("keep", ["random", "", "EASY"])
def test_rank_invalid_keep_raises(keep: str) -> None:
    with pytest.raises(ValueError, match="keep must be"):
        rank_by_score(np.zeros(4), keep, _rng())


def test_rank_band_with_reversed_window_is_rejected_or_a_permutation() -> None:
    s = np.arange(10, dtype=float)
    try:
        order = rank_by_score(s, "band", _rng(), band=(0.8, 0.2))
    except ValueError:
        return
    assert sorted(order.tolist()) == list(range(10))


def test_rank_hard_puts_negative_infinity_last() -> None:
    s = np.array([-np.inf, 0.0, 1.0, np.inf])
    np.testing.assert_array_equal(rank_by_score(s, "hard", _rng()), [3, 2, 1, 0])
