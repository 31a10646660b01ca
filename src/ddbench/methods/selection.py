"""Selection algorithms on features and scores (numpy only): herding, k-center, score ranking."""

from __future__ import annotations

import numpy as np


def herding_order(features: np.ndarray, k: int) -> np.ndarray:
    """Greedy herding: each step adds the point that brings the selected mean closest to the class mean."""
    x = np.asarray(features, dtype=np.float64)
    mu = x.mean(axis=0)
    k = min(k, len(x))
    chosen: list[int] = []
    total = np.zeros_like(mu)
    available = np.ones(len(x), dtype=bool)
    for t in range(1, k + 1):
        # mean if each candidate were added: (total + x_i) / t
        err = np.linalg.norm((total[None, :] + x) / t - mu[None, :], axis=1)
        err[~available] = np.inf
        i = int(np.argmin(err))
        chosen.append(i)
        available[i] = False
        total += x[i]
    return np.asarray(chosen, dtype=np.int64)


def kcenter_order(features: np.ndarray, k: int, first: int) -> np.ndarray:
    """Greedy k-center (farthest point first), starting from index `first`."""
    x = np.asarray(features, dtype=np.float64)
    k = min(k, len(x))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    chosen = [int(first)]
    dist = np.linalg.norm(x - x[first], axis=1)
    dist[first] = -np.inf  # never pick a chosen point again, even among duplicates
    for _ in range(1, k):
        i = int(np.argmax(dist))
        chosen.append(i)
        dist = np.minimum(dist, np.linalg.norm(x - x[i], axis=1))
        dist[chosen] = -np.inf
    return np.asarray(chosen, dtype=np.int64)


def covering_radius(features: np.ndarray, centers: np.ndarray) -> float:
    """Largest distance from any point to its nearest chosen center."""
    x = np.asarray(features, dtype=np.float64)
    d = np.linalg.norm(x[:, None, :] - x[None, centers, :], axis=2)
    return float(d.min(axis=1).max())


def rank_by_score(
    scores: np.ndarray, keep: str, rng: np.random.Generator, band: tuple[float, float] | None = None
) -> np.ndarray:
    """Order of indices by score: `easy` lowest first, `hard` highest first, `band` a quantile window.

    Ties (and the order inside a band) are broken by `rng`, so a seed changes only tie order.
    """
    s = np.asarray(scores, dtype=np.float64)
    tiebreak = rng.permutation(len(s))
    if keep == "easy":
        return np.lexsort((tiebreak, s))
    if keep == "hard":
        return np.lexsort((tiebreak, -np.where(np.isposinf(s), np.finfo(np.float64).max, s)))
    if keep == "band":
        lo, hi = band if band is not None else (0.25, 0.75)
        if not 0 <= lo <= hi <= 1:
            raise ValueError(f"band must satisfy 0 <= lo <= hi <= 1, got {[lo, hi]}")
        ascending = np.lexsort((tiebreak, s))
        start, stop = int(np.floor(lo * len(s))), int(np.ceil(hi * len(s)))
        inside = ascending[start:stop]
        rest = np.concatenate([ascending[:start], ascending[stop:]])
        # inside the band: random order; outside (only used if the band is too small): nearest first
        inside = inside[rng.permutation(len(inside))]
        centre = (start + stop) / 2
        pos = np.concatenate([np.arange(start), np.arange(stop, len(s))])
        rest = rest[np.argsort(np.abs(pos - centre), kind="stable")]
        return np.concatenate([inside, rest])
    raise ValueError(f"keep must be easy, hard or band, not {keep!r}")
