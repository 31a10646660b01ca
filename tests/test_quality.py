"""Quality metrics against brute-force definitions, and the DD-Ranking scores' bounds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from ddbench.analysis.quality import (
    QualityInputs,
    kth_neighbour_radii,
    median_bandwidth,
    mmd2,
    nearest_distances,
    prdc,
    quality_metrics,
    real_subsample,
)
from ddbench.analysis.tables import augmentation_robust_score, label_robust_score
from ddbench.workflow.studies import augmentation_twins, budget_sweeps, hard_label_protocol


# ------------------------------------------------------------------ brute force references
def _dist(a, b) -> float:
    return math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(a, b, strict=True)))


def _radius(points, i, k) -> float:
    """Distance from points[i] to its k-th nearest other point (loops, no numpy tricks)."""
    return sorted(_dist(points[i], points[j]) for j in range(len(points)) if j != i)[k - 1]


def _prdc_brute(real, fake, k):
    n, m = len(real), len(fake)
    r_real = [_radius(real, i, k) for i in range(n)]
    d = [[_dist(real[i], fake[j]) for j in range(m)] for i in range(n)]
    precision = sum(any(d[i][j] < r_real[i] for i in range(n)) for j in range(m)) / m
    density = sum(sum(d[i][j] < r_real[i] for i in range(n)) for j in range(m)) / (k * m)
    coverage = sum(min(d[i]) < r_real[i] for i in range(n)) / n
    recall = None
    if m > k:
        r_fake = [_radius(fake, j, k) for j in range(m)]
        recall = sum(any(d[i][j] < r_fake[j] for j in range(m)) for i in range(n)) / n
    return {"precision": precision, "recall": recall, "density": density, "coverage": coverage}


def _mmd2_brute(x, y, sigma, unbiased=True):
    def kern(a, b):
        return math.exp(-(_dist(a, b) ** 2) / (2 * sigma * sigma))

    n, m = len(x), len(y)
    pairs_x = [(i, j) for i in range(n) for j in range(n) if not unbiased or i != j]
    pairs_y = [(i, j) for i in range(m) for j in range(m) if not unbiased or i != j]
    kxx = sum(kern(x[i], x[j]) for i, j in pairs_x) / len(pairs_x)
    kyy = sum(kern(y[i], y[j]) for i, j in pairs_y) / len(pairs_y)
    kxy = sum(kern(a, b) for a in x for b in y) / (n * m)
    return kxx + kyy - 2 * kxy


# ------------------------------------------------------------------ PRDC
@pytest.mark.parametrize(
    "n,m,k,seed", [(30, 12, 5, 0), (25, 8, 3, 1), (40, 40, 5, 2), (15, 6, 1, 3)]
)
def test_prdc_matches_brute_force(n, m, k, seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(n, 4))
    fake = rng.normal(loc=0.3, size=(m, 4))
    values, reasons = prdc(real, fake, k)
    expected = _prdc_brute(real.tolist(), fake.tolist(), k)
    assert reasons == {}
    for key, value in expected.items():
        assert values[key] == pytest.approx(value, abs=1e-12), key


def test_kth_neighbour_radii_match_brute_force():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(20, 3))
    for k in (1, 2, 5, 19):
        r = kth_neighbour_radii(x, k)
        assert r == pytest.approx([_radius(x.tolist(), i, k) for i in range(20)], abs=1e-12)
    with pytest.raises(ValueError):
        kth_neighbour_radii(x, 20)


@pytest.mark.parametrize("m", [1, 3, 5])
def test_recall_is_null_with_a_reason_when_ipc_is_at_most_k(m):
    """Only recall needs k-NN radii of the condensed set: at IPC <= k it is undefined."""
    rng = np.random.default_rng(m)
    real, fake = rng.normal(size=(30, 4)), rng.normal(size=(m, 4))
    values, reasons = prdc(real, fake, k=5)
    assert values["recall"] is None and "condensed" in reasons["recall"]
    expected = _prdc_brute(real.tolist(), fake.tolist(), 5)
    for key in ("precision", "density", "coverage"):  # real radii: still defined
        assert values[key] == pytest.approx(expected[key], abs=1e-12)


def test_real_radii_metrics_are_null_when_the_real_class_is_too_small():
    rng = np.random.default_rng(0)
    values, reasons = prdc(rng.normal(size=(5, 2)), rng.normal(size=(8, 2)), k=5)
    assert values["precision"] is None and values["density"] is None and values["coverage"] is None
    assert "real" in reasons["precision"]
    assert values["recall"] is not None


def test_a_copy_of_the_real_set_has_full_precision_and_coverage():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(50, 5))
    values, _ = prdc(real, real.copy(), k=5)
    assert values["precision"] == 1.0 and values["coverage"] == 1.0 and values["recall"] == 1.0


# ------------------------------------------------------------------ MMD
@pytest.mark.parametrize("n,m,seed", [(12, 7, 0), (20, 2, 1), (9, 15, 2)])
def test_mmd2_matches_brute_force(n, m, seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    y = rng.normal(loc=0.5, size=(m, 3))
    sigma = median_bandwidth(x)
    assert mmd2(x, y, sigma) == pytest.approx(_mmd2_brute(x.tolist(), y.tolist(), sigma), abs=1e-12)
    assert mmd2(x, y, sigma, unbiased=False) == pytest.approx(
        _mmd2_brute(x.tolist(), y.tolist(), sigma, unbiased=False), abs=1e-12
    )


def test_median_bandwidth_is_the_median_pairwise_distance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(11, 4))
    brute = sorted(_dist(a, b) for a, b in itertools.combinations(x.tolist(), 2))
    assert median_bandwidth(x) == pytest.approx(float(np.median(brute)))
    assert median_bandwidth(np.zeros((4, 2))) == 1.0  # degenerate: falls back to 1


def test_unbiased_mmd2_is_near_zero_for_one_distribution_and_needs_two_points():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    shifted = rng.normal(loc=2.0, size=(300, 2))
    sigma = median_bandwidth(x)
    assert abs(mmd2(x, y, sigma)) < 0.01 < mmd2(x, shifted, sigma)
    with pytest.raises(ValueError):
        mmd2(x, y[:1], sigma)


# ------------------------------------------------------------------ memorisation
def test_nearest_distances_match_brute_force_and_copies_are_exactly_zero():
    rng = np.random.default_rng(6)
    real = rng.integers(0, 256, size=(40, 1, 3, 3), dtype=np.uint8)
    copies = real[[3, 17]].astype(np.float32) / 255.0  # as condensed sets store pixels
    other = rng.random(size=(3, 1, 3, 3)).astype(np.float32)
    query = np.concatenate([copies, other])
    d = nearest_distances(query, real, chunk=7)
    real_f = (real.astype(np.float32) / 255.0).reshape(40, -1).tolist()
    brute = [min(_dist(q, r) for r in real_f) for q in query.reshape(len(query), -1).tolist()]
    assert d[:2].tolist() == [0.0, 0.0]
    assert d == pytest.approx(brute, abs=1e-9)


# ------------------------------------------------------------------ per-class aggregation
def _inputs(ipc: int, coreset: bool, seed: int = 0) -> QualityInputs:
    rng = np.random.default_rng(seed)
    k_classes, n_per = 3, 20
    real_labels = np.repeat(np.arange(k_classes), n_per)
    real_feats = rng.normal(size=(len(real_labels), 6)) + real_labels[:, None]
    real_pixels = rng.integers(0, 256, size=(len(real_labels), 1, 4, 4), dtype=np.uint8)
    if coreset:
        idx = np.concatenate([np.flatnonzero(real_labels == c)[:ipc] for c in range(k_classes)])
        fake_feats, fake_labels = real_feats[idx], real_labels[idx]
        fake_pixels = real_pixels[idx].astype(np.float32) / 255.0
    else:
        fake_labels = np.repeat(np.arange(k_classes), ipc)
        fake_feats = rng.normal(size=(len(fake_labels), 6)) + fake_labels[:, None] + 0.5
        fake_pixels = rng.random(size=(len(fake_labels), 1, 4, 4)).astype(np.float32)
    return QualityInputs(
        real_feats, real_labels, real_pixels, fake_feats, fake_labels, fake_pixels, k_classes
    )


def test_quality_metrics_average_the_per_class_values():
    inp = _inputs(ipc=8, coreset=False)
    q = quality_metrics(inp, k=5, max_real_per_class=None)
    assert len(q["per_class"]) == 3 and q["undefined"] == {}
    for key in ("precision", "recall", "density", "coverage", "mmd2", "nn_feature_mean"):
        assert q[key] == pytest.approx(np.mean([row[key] for row in q["per_class"]]))
    row = q["per_class"][1]
    real = inp.real_features[inp.real_labels == 1]
    fake = inp.fake_features[inp.fake_labels == 1]
    assert row["recall"] == pytest.approx(_prdc_brute(real.tolist(), fake.tolist(), 5)["recall"])
    assert q["exact_copy_fraction"] == 0.0 and q["nn_pixel_min"] > 0


@pytest.mark.parametrize("ipc", [1, 5])
def test_small_ipc_gives_null_with_reason_not_numbers(ipc):
    q = quality_metrics(_inputs(ipc=ipc, coreset=True), k=5)
    assert q["recall"] is None and "k = 5" in q["undefined"]["recall"]
    if ipc == 1:
        assert q["mmd2"] is None and "at least 2" in q["undefined"]["mmd2"]
        assert q["mmd2_biased"] is not None
    else:
        assert q["mmd2"] is not None and "mmd2" not in q["undefined"]
    for key in ("precision", "density", "coverage"):
        assert q[key] is not None
    # a coreset is made of training images: the memorisation check sees copies
    assert (
        q["nn_pixel_min"] == 0.0 and q["nn_pixel_mean"] == 0.0 and q["exact_copy_fraction"] == 1.0
    )
    assert q["precision"] == 1.0


def test_real_subsample_is_fixed_and_capped():
    labels = np.repeat(np.arange(2), 50)
    a, b = real_subsample(labels, 1, 10), real_subsample(labels, 1, 10)
    assert len(a) == 10 and (a == b).all() and (labels[a] == 1).all()
    assert len(real_subsample(labels, 0, None)) == 50


# ------------------------------------------------------------------ DD-Ranking scores
def test_lrs_and_ars_stay_in_the_unit_interval():
    rng = np.random.default_rng(0)
    corners = list(itertools.product([0.0, 1.0], repeat=4))
    for terms in corners + [tuple(rng.random(4)) for _ in range(2000)]:
        hlr, ior, lrs = label_robust_score(*terms)
        assert 0.0 <= lrs <= 1.0 and -1 <= hlr <= 1 and -1 <= ior <= 1
        assert 0.0 <= augmentation_robust_score(*terms) <= 1.0
    # the extreme terms hit the bounds (HLR = -1, IOR = 1 and the reverse)
    assert label_robust_score(1.0, 0.0, 1.0, 0.0)[2] == pytest.approx(1.0)
    assert label_robust_score(0.0, 1.0, 0.0, 1.0)[2] == pytest.approx(0.0)
    # as good as the real set and as random: alpha = 0
    neutral = (1 - math.exp(-1)) / (math.e - math.exp(-1))
    assert label_robust_score(0.9, 0.9, 0.5, 0.5)[2] == pytest.approx(neutral)


def test_lrs_follows_the_published_formula():
    syn_hard, real_hard, syn_any, rdm_any = 0.45, 0.85, 0.60, 0.40
    alpha = 0.5 * (syn_any - rdm_any) - 0.5 * (real_hard - syn_hard)
    expected = (math.exp(alpha) - math.exp(-1)) / (math.e - math.exp(-1))
    hlr, ior, lrs = label_robust_score(syn_hard, real_hard, syn_any, rdm_any)
    assert (hlr, ior) == pytest.approx((0.40, 0.20)) and lrs == pytest.approx(expected)
    beta = 0.5 * (0.6 - 0.4) + 0.5 * (0.5 - 0.45)
    assert augmentation_robust_score(0.6, 0.4, 0.5, 0.45) == pytest.approx(
        (math.exp(beta) - math.exp(-1)) / (math.e - math.exp(-1))
    )


def _proto(preset, labels, augment="dsa", cutmix=0.0, epochs=10, full_epochs=None, teachers=()):
    return {
        "preset": preset, "labels": labels, "optimizer": "sgd", "lr": 0.01, "momentum": 0.9,
        "weight_decay": 5e-4, "batch_size": 256, "schedule": "step_half", "temperature": 4.0,
        "teachers": list(teachers), "augment": augment, "cutmix": cutmix, "rrc_scale": [0.08, 1.0],
        "epochs": epochs, "full_epochs": full_epochs,
    }  # fmt: skip


def test_protocol_mapping_for_dd_ranking_and_budget_sweeps():
    protocols = {
        "hl": _proto("hl", "hard"),
        "hl_noaug": _proto("hl", "hard", augment="none"),
        "sl": _proto("sl", "soft", teachers=["t"]),
        "sl_long": _proto("sl", "soft", epochs=None, full_epochs=2, teachers=["t"]),
        "sl_longer": _proto("sl", "soft", epochs=None, full_epochs=8, teachers=["t"]),
    }
    assert hard_label_protocol(protocols) == "hl"
    assert hard_label_protocol({"sl": protocols["sl"]}) is None
    assert augmentation_twins(protocols) == {"hl": "hl_noaug"}  # sl has no no-aug twin
    assert budget_sweeps(protocols) == [["sl_long", "sl_longer"]]
    assert budget_sweeps({"sl_long": protocols["sl_long"]}) == []


@pytest.mark.parametrize("offset", [5.0, 1e3])
def test_prdc_of_a_coreset_equals_exact_distances(offset):  # seeds 4, 56 failed before
    """A coreset point is a real point: its distance to a real sample often equals that sample's
    k-NN radius exactly. Membership must follow exact distances (equal = outside), whatever
    the rounding of the fast expansion (large offsets make it worse)."""
    from scipy.spatial.distance import cdist

    k = 5
    for seed in range(60):
        rng = np.random.default_rng(seed)
        real = rng.normal(size=(135, 64)).astype(np.float32).astype(np.float64) + offset
        fake = real[rng.choice(len(real), 6, replace=False)]
        values, _ = prdc(real, fake, k)
        d = cdist(real, fake)
        r_real = np.sort(cdist(real, real), axis=1)[:, k]
        r_fake = np.sort(cdist(fake, fake), axis=1)[:, k]
        inside = d < r_real[:, None]
        assert values["precision"] == pytest.approx(inside.any(axis=0).mean(), abs=1e-12)
        assert values["density"] == pytest.approx(inside.sum(axis=0).mean() / k, abs=1e-12)
        assert values["coverage"] == pytest.approx(inside.any(axis=1).mean(), abs=1e-12)
        assert values["recall"] == pytest.approx(
            (d < r_fake[None, :]).any(axis=1).mean(), abs=1e-12
        )


def test_kth_radii_are_exact_where_the_expansion_rounds():
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(3)
    x = rng.normal(size=(60, 32)) + 1e4  # |x|^2 ~ 3e9: the expansion loses ~1e-6 of distance
    exact = np.sort(cdist(x, x), axis=1)[:, 5]
    np.testing.assert_allclose(kth_neighbour_radii(x, 5), exact, rtol=0, atol=1e-12)
