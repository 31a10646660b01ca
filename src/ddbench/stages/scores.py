"""Per-sample scores derived from recorded training dynamics (numpy only).

A dynamics file holds `/probs` float32 [R, E, N, K]: the softmax output for every training
sample after each of E epochs in each of R proxy runs, and `/labels` [N]. Every score the
coreset methods use is a cheap function of it, so one proxy training serves all of them.
"""

from __future__ import annotations

import os

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array


def load_dynamics(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a dynamics scores file, checking shapes."""
    with open_h5(path, "scores") as f:
        probs = read_array(f, "probs", ndim=4, dtype=np.floating).astype(np.float32)
        labels = read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64)
    if probs.shape[2] != len(labels):
        raise DataFileError(
            f"{path}: probs cover {probs.shape[2]} samples but labels {len(labels)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= probs.shape[3]):
        raise DataFileError(f"{path}: labels outside 0..{probs.shape[3] - 1}")
    if not np.isfinite(probs).all():
        raise DataFileError(f"{path}: probs contain NaN or infinite values")
    return {"probs": probs, "labels": labels}


def el2n(probs: np.ndarray, labels: np.ndarray, epoch: int) -> np.ndarray:
    """EL2N: mean over runs of ||softmax(f(x)) - onehot(y)||_2 after `epoch` (0-based) epochs."""
    if not 0 <= epoch < probs.shape[1]:
        raise ValueError(f"EL2N epoch {epoch} outside the recorded 0..{probs.shape[1] - 1}")
    p = probs[:, epoch]  # [R, N, K]
    onehot = np.eye(p.shape[-1], dtype=np.float32)[labels]
    return np.linalg.norm(p - onehot[None], axis=-1).mean(axis=0)


def el2n_soft(probs: np.ndarray, teacher_probs: np.ndarray, epoch: int) -> np.ndarray:
    """EL2N-SL: distance to the teacher's soft label instead of the one-hot label."""
    p = probs[:, epoch]
    return np.linalg.norm(p - teacher_probs[None], axis=-1).mean(axis=0)


def forgetting(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Forgetting events: correct -> incorrect flips between consecutive records, mean over runs.

    A sample never classified correctly in a run counts as forgotten more often than any
    learned sample can be (infinity), so it ranks as most forgotten.
    """
    correct = probs.argmax(-1) == labels[None, None, :]  # [R, E, N]
    flips = (correct[:, :-1] & ~correct[:, 1:]).sum(axis=1).astype(np.float64)  # [R, N]
    never = ~correct.any(axis=1)
    flips[never] = np.inf
    return flips.mean(axis=0)


def p_true(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """p(y | x) per run and epoch: [R, E, N]."""
    return np.take_along_axis(probs, labels[None, None, :, None], axis=-1)[..., 0]


def cad(
    probs: np.ndarray, labels: np.ndarray, budget: int, window_j: int = 3, window_w: int = 3
) -> np.ndarray:
    """Compute-aware difficulty for a downstream budget of `budget` epochs.

    U_k(x) = std over the J epochs k..k+J-1 of p(y|x); CAD(x) = mean of U_k over the W values
    of k ending at K - J - 1 (K = budget), averaged over proxy runs. Epochs are 1-based in the
    definition; record e (0-based) holds the prediction after e+1 epochs.
    """
    runs, epochs = probs.shape[:2]
    last_k = budget - window_j - 1  # 1-based start of the last J-window
    first_k = last_k - window_w + 1
    if first_k < 1 or last_k + window_j - 1 > epochs:
        raise ValueError(
            f"CAD with K={budget}, J={window_j}, W={window_w} needs recorded epochs "
            f"{max(first_k, 1)}..{last_k + window_j - 1}, but the dynamics hold 1..{epochs}"
        )
    pt = p_true(probs, labels)  # [R, E, N]
    u = np.stack(
        [pt[:, k - 1 : k - 1 + window_j].std(axis=1) for k in range(first_k, last_k + 1)]
    )  # [W, R, N]
    return u.mean(axis=0).mean(axis=0)
