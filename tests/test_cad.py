"""CAD (compute-aware difficulty) and EL2N-SL on synthetic dynamics with known answers."""

import numpy as np
import pytest

from ddbench.stages.scores import cad, el2n_soft, p_true


def dynamics_from_ptrue(pt: np.ndarray, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """probs [R,E,N,K] whose true-class probability is `pt` [R,E,N] (labels all 0)."""
    probs = np.zeros((*pt.shape, k), np.float32)
    probs[..., 0] = pt
    probs[..., 1] = 1 - pt
    return probs, np.zeros(pt.shape[2], np.int64)


def test_cad_known_answer():
    epochs = 10
    const = np.full(epochs, 0.7)  # never changes: zero difficulty
    alternating = np.array([0, 1] * 5, dtype=float)  # flips every epoch
    late = np.array([0] * 6 + [1] * 4, dtype=float)  # learned between epochs 6 and 7
    pt = np.stack([const, alternating, late], axis=1)[None]  # [1, E, 3]
    probs, labels = dynamics_from_ptrue(pt)
    scores = cad(probs, labels, budget=10, window_j=3, window_w=3)
    # K=10, J=3: windows start at k = 4, 5, 6 (1-based), each J=3 epochs long
    third = np.std([0, 0, 1])
    assert scores[0] == pytest.approx(0.0, abs=1e-7)
    assert scores[1] == pytest.approx(np.std([0, 1, 0]), rel=1e-6)
    assert scores[2] == pytest.approx((0 + third + third) / 3, rel=1e-6)  # windows 4-6, 5-7, 6-8
    # a smaller budget looks earlier: before the late sample moves, it is easy
    early = cad(probs, labels, budget=7, window_j=3, window_w=2)
    assert early[2] == pytest.approx(0.0, abs=1e-7)


def test_cad_averages_runs_and_matches_direct_loop():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=(3, 12, 20)).astype(np.float32)
    labels = rng.integers(0, 4, 20)
    K, J, W = 11, 3, 4
    got = cad(probs, labels, K, J, W)
    pt = p_true(probs, labels)
    direct = np.zeros(20)
    for r in range(3):
        for n in range(20):
            us = [np.std(pt[r, k - 1 : k - 1 + J, n]) for k in range(K - J - W, K - J)]
            direct[n] += np.mean(us) / 3
    np.testing.assert_allclose(got, direct, rtol=1e-5)


def test_cad_needs_enough_recorded_epochs():
    probs, labels = dynamics_from_ptrue(np.full((1, 5, 2), 0.5))
    with pytest.raises(ValueError, match="needs record points"):
        cad(probs, labels, budget=5, window_j=3, window_w=3)


def test_el2n_soft_is_distance_to_teacher_label():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(3), size=(2, 4, 6)).astype(np.float32)
    teacher = rng.dirichlet(np.ones(3), size=6).astype(np.float32)
    got = el2n_soft(probs, teacher, epoch=2)
    direct = np.mean(
        [[np.linalg.norm(probs[r, 2, n] - teacher[n]) for n in range(6)] for r in range(2)], axis=0
    )
    np.testing.assert_allclose(got, direct, rtol=1e-6)
    # a proxy that already agrees with the teacher has score 0
    probs[:, 2] = teacher[None]
    assert np.allclose(el2n_soft(probs, teacher, 2), 0, atol=1e-6)


def test_fractional_budget_ends_at_the_last_record_before_it():
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(3), size=(2, 10, 8)).astype(np.float32)
    labels = rng.integers(0, 3, 8)
    # one record per epoch: K = 9.5 epochs ends at the record after epoch 9, as K = 9 does
    np.testing.assert_array_equal(cad(probs, labels, 9.5), cad(probs, labels, 9))
    assert not np.array_equal(cad(probs, labels, 10), cad(probs, labels, 9))
