"""Per-sample scores derived from recorded training dynamics (numpy only).

A dynamics file (`results/{dataset}/scores/{scorer}.h5`, format ddbench.stages.scores/1)
holds, for R proxy runs × P record points × N training samples, only the statistics the
scores read (the *compact* layout, 13 bytes per sample, point and run):

    /p_true   float32 [R, P, N]  p(y|x): softmax probability of the true class
    /correct  uint8   [R, P, N]  1 where argmax softmax == y (numpy argmax: first maximum wins)
    /el2n     float32 [R, P, N]  ||softmax(f(x)) - onehot(y)||_2
    /margin   float32 [R, P, N]  p(y|x) - max over the other classes of p(c|x)
    /steps    int64   [P]        optimiser steps done at each record point (p * interval)
    /steps_per_epoch int64 []    proxy steps in one epoch over the full training split
    /labels   int64   [N]

A scorer with `store: full` also keeps `/probs` float32 [R, P, N, K], the whole softmax
(only EL2N-SL needs it). Files written before the compact layout hold `/probs` [R, E, N, K]
and `/labels` only; they read as one record point per epoch (steps 1..E, one step per
epoch), the compact statistics derived from `/probs`.

Record points lie on a regular grid: point p (1-based) is taken after p × interval optimiser
steps (interval = steps_per_epoch for the default once-per-epoch records, or the scorer's
`record_every_steps`). A time given in full-set epochs t maps to the point
a(t) = floor(t × steps_per_epoch / interval): the last point of the grid at or before that
step. Every score locates its records this way, so once-per-epoch records and integer
epochs give exactly the per-epoch definitions.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array

#: the per-sample statistics of the compact layout, with their stored dtypes
COMPACT_FIELDS = {
    "p_true": np.float32,
    "correct": np.uint8,
    "el2n": np.float32,
    "margin": np.float32,
}


def compact_stats(probs: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """The compact statistics of softmax outputs `probs` [..., N, K] for labels [N]."""
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.int64)
    k = probs.shape[-1]
    lead = (1,) * (probs.ndim - 2)
    index = labels.reshape(*lead, -1, 1)
    pt = np.take_along_axis(probs, index, axis=-1)[..., 0]
    onehot = np.eye(k, dtype=np.float32)[labels]
    others = probs.copy()
    np.put_along_axis(others, np.broadcast_to(index, (*probs.shape[:-1], 1)), -np.inf, axis=-1)
    return {
        "p_true": pt,
        "correct": (probs.argmax(-1) == labels).astype(np.uint8),
        "el2n": np.linalg.norm(probs - onehot, axis=-1),
        "margin": (pt - others.max(-1)).astype(np.float32),
    }


@dataclass(frozen=True)
class Dynamics:
    """Training dynamics of R proxy runs at P record points for N samples (see the module doc)."""

    labels: np.ndarray  # [N] int64
    p_true: np.ndarray  # [R, P, N] float32
    correct: np.ndarray  # [R, P, N] bool
    el2n: np.ndarray  # [R, P, N] float32
    margin: np.ndarray  # [R, P, N] float32
    steps: np.ndarray  # [P] int64, optimiser steps done at each record point
    steps_per_epoch: int
    probs: np.ndarray | None = None  # [R, P, N, K] float32, only from full files

    @classmethod
    def from_probs(
        cls,
        probs: np.ndarray,
        labels: np.ndarray,
        steps: np.ndarray | None = None,
        steps_per_epoch: int = 1,
    ) -> Dynamics:
        """Dynamics from a full softmax array [R, P, N, K] (default: one record per epoch)."""
        probs = np.asarray(probs, dtype=np.float32)
        if steps is None:
            steps = np.arange(1, probs.shape[1] + 1) * int(steps_per_epoch)
        stats = compact_stats(probs, labels)
        return cls(
            labels=np.asarray(labels, dtype=np.int64),
            p_true=stats["p_true"],
            correct=stats["correct"].astype(bool),
            el2n=stats["el2n"],
            margin=stats["margin"],
            steps=np.asarray(steps, dtype=np.int64),
            steps_per_epoch=int(steps_per_epoch),
            probs=probs,
        )

    @property
    def points(self) -> int:
        """Number of record points P."""
        return int(self.p_true.shape[1])

    @property
    def interval(self) -> int:
        """Optimiser steps between two record points."""
        return int(self.steps[0])

    def point_at(self, epochs: float) -> int:
        """a(t): 1-based index on the record grid of the last point at or before `epochs`.

        It may exceed the recorded points (the grid continues past the end of training);
        callers check that the points they read were recorded.
        """
        return math.floor(float(epochs) * self.steps_per_epoch / self.interval + 1e-9)

    def epochs_of(self, point: int) -> float:
        """Full-set epochs done at 1-based record point `point`."""
        return point * self.interval / self.steps_per_epoch


def as_dynamics(scores: Dynamics | dict) -> Dynamics:
    """A Dynamics from what a method gets in `ctx.scores`: load_dynamics' dict or {probs, labels}."""
    if isinstance(scores, Dynamics):
        return scores
    if all(key in scores for key in COMPACT_FIELDS):
        return Dynamics(
            labels=np.asarray(scores["labels"], dtype=np.int64),
            p_true=scores["p_true"],
            correct=np.asarray(scores["correct"]).astype(bool),
            el2n=scores["el2n"],
            margin=scores["margin"],
            steps=np.asarray(scores["steps"], dtype=np.int64),
            steps_per_epoch=int(scores["steps_per_epoch"]),
            probs=scores.get("probs"),
        )
    if "probs" in scores:
        return Dynamics.from_probs(
            scores["probs"],
            scores["labels"],
            scores.get("steps"),
            int(scores.get("steps_per_epoch", 1)),
        )
    raise ValueError(
        f"dynamics hold neither the compact statistics {sorted(COMPACT_FIELDS)} nor /probs "
        f"(got {sorted(scores)})"
    )


def load_dynamics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a dynamics scores file (compact, full or pre-compact), checking shapes.

    Returns the arrays of the compact layout (`labels`, `p_true`, `correct`, `el2n`, `margin`,
    `steps`, `steps_per_epoch`) plus `probs` where the file keeps the full softmax;
    `as_dynamics` turns it into a Dynamics.
    """
    with open_h5(path, "scores") as f:
        labels = read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64)
        probs = None
        if "probs" in f:
            probs = read_array(f, "probs", ndim=4, dtype=np.floating).astype(np.float32)
            if probs.shape[2] != len(labels):
                raise DataFileError(
                    f"{path}: probs cover {probs.shape[2]} samples but labels {len(labels)}"
                )
            if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[3]):
                raise DataFileError(f"{path}: labels outside 0..{probs.shape[3] - 1}")
            if not np.isfinite(probs).all():
                raise DataFileError(f"{path}: probs contain NaN or infinite values")
        if "p_true" in f:
            out = {
                name: read_array(f, name, ndim=3, dtype=np.number).astype(dtype)
                for name, dtype in COMPACT_FIELDS.items()
            }
            out["steps"] = read_array(f, "steps", ndim=1, dtype=np.integer).astype(np.int64)
            out["steps_per_epoch"] = np.int64(read_array(f, "steps_per_epoch", ndim=0))
        elif probs is None:
            raise DataFileError(f"{path}: holds neither /p_true (compact dynamics) nor /probs")
        else:  # a full-softmax file: one record per epoch unless it says otherwise
            points = probs.shape[1]
            out = compact_stats(probs, labels)
            if "steps" in f:
                out["steps"] = read_array(f, "steps", ndim=1, dtype=np.integer).astype(np.int64)
                out["steps_per_epoch"] = np.int64(read_array(f, "steps_per_epoch", ndim=0))
            else:
                out["steps"] = np.arange(1, points + 1, dtype=np.int64)
                out["steps_per_epoch"] = np.int64(1)
        num_classes = f.attrs.get("num_classes")
    _check_dynamics(path, labels, out, probs, num_classes)
    out["labels"] = labels
    if probs is not None:
        out["probs"] = probs
    return out


def _check_dynamics(path, labels, out: dict, probs, num_classes) -> None:
    shape = out["p_true"].shape
    for name in COMPACT_FIELDS:
        if out[name].shape != shape:
            raise DataFileError(f"{path}: {name} has shape {out[name].shape}, p_true {shape}")
        if not np.isfinite(out[name]).all():
            raise DataFileError(f"{path}: {name} contains NaN or infinite values")
    if shape[2] != len(labels):
        raise DataFileError(f"{path}: dynamics cover {shape[2]} samples but labels {len(labels)}")
    steps, spe = out["steps"], int(out["steps_per_epoch"])
    if spe < 1 or len(steps) != shape[1] or len(steps) == 0:
        raise DataFileError(
            f"{path}: {len(steps)} record steps for {shape[1]} record points "
            f"(steps_per_epoch {spe}); expected one positive step per point"
        )
    if not np.array_equal(steps, steps[0] * np.arange(1, len(steps) + 1)) or steps[0] < 1:
        raise DataFileError(
            f"{path}: record steps {steps.tolist()[:5]}... are not a regular grid "
            "interval, 2 × interval, ..."
        )
    if probs is not None:
        if probs.shape[:3] != shape:
            raise DataFileError(f"{path}: probs {probs.shape} do not match p_true {shape}")
        num_classes = probs.shape[3]
    if len(labels) and labels.min() < 0:
        raise DataFileError(f"{path}: negative labels")
    if num_classes is not None and len(labels) and labels.max() >= int(num_classes):
        raise DataFileError(f"{path}: labels outside 0..{int(num_classes) - 1}")


# --- scores on Dynamics ----------------------------------------------------------------------


def _point_of_epoch(dyn: Dynamics, epoch: int) -> int:
    """0-based record index of the prediction after `epoch` + 1 full epochs (0-based epoch)."""
    a = dyn.point_at(epoch + 1)
    if epoch < 0 or not 1 <= a <= dyn.points:
        last = math.floor(dyn.epochs_of(dyn.points) + 1e-9) - 1
        raise ValueError(f"EL2N epoch {epoch} outside the recorded 0..{last}")
    return a - 1


def el2n_score(dyn: Dynamics, epoch: int) -> np.ndarray:
    """EL2N: mean over runs of ||softmax(f(x)) - onehot(y)||_2 after epoch `epoch` (0-based).

    The record is the last point at or before (epoch + 1) full epochs.
    """
    return dyn.el2n[:, _point_of_epoch(dyn, epoch)].mean(axis=0)


def el2n_soft_score(dyn: Dynamics, teacher_probs: np.ndarray, epoch: int) -> np.ndarray:
    """EL2N-SL: distance to the teacher's soft label; needs dynamics with the full softmax."""
    if dyn.probs is None:
        raise ValueError(
            "EL2N-SL (target: teacher) needs the proxies' full softmax, but the dynamics are "
            "compact; set `store: full` in the dynamics scorer's spec and rerun it"
        )
    p = dyn.probs[:, _point_of_epoch(dyn, epoch)]
    return np.linalg.norm(p - teacher_probs[None], axis=-1).mean(axis=0)


def forgetting_score(dyn: Dynamics) -> np.ndarray:
    """Forgetting events: correct -> incorrect flips between consecutive record points, mean over runs.

    A sample never classified correctly in a run counts as forgotten more often than any
    learned sample can be (infinity), so it ranks as most forgotten. With sub-epoch records
    every record point counts, so flips inside an epoch are seen too.
    """
    correct = dyn.correct
    flips = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)  # [R, N]
    never = ~correct.any(axis=1)
    flips[never] = np.inf
    return flips.mean(axis=0)


def cad_points(dyn: Dynamics, budget: float, window_j: int = 3, window_w: int = 3) -> list[int]:
    """1-based start points k of the W windows CAD averages at budget `budget` (full-set epochs)."""
    a = dyn.point_at(budget)
    last_k = a - window_j - 1  # start of the last J-window
    first_k = last_k - window_w + 1
    if first_k < 1 or last_k + window_j - 1 > dyn.points:
        raise ValueError(
            f"CAD with K={budget:g}, J={window_j}, W={window_w} needs record points "
            f"{max(first_k, 1)}..{last_k + window_j - 1} (K is point {a}, one point every "
            f"{dyn.epochs_of(1):g} epochs), but the dynamics hold points 1..{dyn.points}"
        )
    return list(range(first_k, last_k + 1))


def cad_score(dyn: Dynamics, budget: float, window_j: int = 3, window_w: int = 3) -> np.ndarray:
    """Compute-aware difficulty for a downstream budget of `budget` full-set epochs.

    U_k(x) = std over the J record points k..k+J-1 of p(y|x); CAD(x) = mean of U_k over the
    W values of k ending at a - J - 1, averaged over proxy runs. Points are 1-based;
    a = floor(budget × steps_per_epoch / interval) is the budget's point on the record grid,
    so J and W count record points and the last point read is a - 2. With one record per
    epoch and an integer budget K, a = K: the windows start at epochs K-J-W .. K-J-1 and
    read epochs up to K - 2, the per-epoch definition (record e, 0-based, holds the
    prediction after e+1 epochs). A fractional budget (0.5, 2.5) with sub-epoch records
    ends at the last record point at or before that step.
    """
    starts = cad_points(dyn, budget, window_j, window_w)
    pt = dyn.p_true
    u = np.stack([pt[:, k - 1 : k - 1 + window_j].std(axis=1) for k in starts])  # [W, R, N]
    return u.mean(axis=0).mean(axis=0)


def cad_at_budget(dyn: Dynamics, params: dict) -> np.ndarray:
    """CAD with a method's `budget` (default: the recorded epochs), `window_j` and `window_w`."""
    budget = params.get("budget") or dyn.epochs_of(dyn.points)
    return cad_score(dyn, budget, int(params.get("window_j", 3)), int(params.get("window_w", 3)))


# --- the same scores on a full softmax array [R, E, N, K] (one record per epoch) -------------


def el2n(probs: np.ndarray, labels: np.ndarray, epoch: int) -> np.ndarray:
    """EL2N: mean over runs of ||softmax(f(x)) - onehot(y)||_2 after `epoch` (0-based) epochs."""
    return el2n_score(Dynamics.from_probs(probs, labels), epoch)


def el2n_soft(probs: np.ndarray, teacher_probs: np.ndarray, epoch: int) -> np.ndarray:
    """EL2N-SL: distance to the teacher's soft label instead of the one-hot label."""
    p = probs[:, epoch]
    return np.linalg.norm(p - teacher_probs[None], axis=-1).mean(axis=0)


def forgetting(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Forgetting events from per-epoch softmax outputs (see forgetting_score)."""
    return forgetting_score(Dynamics.from_probs(probs, labels))


def p_true(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(y | x) per run and epoch: [R, E, N]."""
    return np.take_along_axis(probs, labels[None, None, :, None], axis=-1)[..., 0]


def cad(
    probs: np.ndarray, labels: np.ndarray, budget: float, window_j: int = 3, window_w: int = 3
) -> np.ndarray:
    """Compute-aware difficulty from per-epoch softmax outputs (see cad_score)."""
    return cad_score(Dynamics.from_probs(probs, labels), budget, window_j, window_w)
