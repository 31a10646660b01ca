"""Quality of a condensed set in a fixed feature space: PRDC, MMD² and nearest-real distances.

Features are the teacher's penultimate layer: the real training split comes from
`results/{dataset}/features/{teacher}.h5`, the condensed images are embedded with the same
teacher checkpoint. Every quantity is computed per class (condensed images of class c against
real training images of class c) and then averaged over classes.

Definitions (k = `quality.k`, real set X of size N, condensed set Y of size M, per class):

* r_k(z; S) = distance from z to its k-th nearest neighbour in S \\ {z}.
* precision = 1/M Σ_j 1[∃ i: ‖Y_j − X_i‖ < r_k(X_i; X)]                (real radii)
* recall    = 1/N Σ_i 1[∃ j: ‖X_i − Y_j‖ < r_k(Y_j; Y)]                (condensed radii)
* density   = 1/(kM) Σ_j Σ_i 1[‖Y_j − X_i‖ < r_k(X_i; X)]              (real radii)
* coverage  = 1/N Σ_i 1[min_j ‖X_i − Y_j‖ < r_k(X_i; X)]               (real radii)

(Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models"; strict
`<` as in their reference implementation.) Only recall needs k-NN radii of the condensed set,
so it is undefined when M ≤ k (IPC ≤ k); precision, density and coverage need N > k real
images of the class. Undefined values are written as `null` with a reason.

MMD² uses the *unbiased* U-statistic of Gretton et al. 2012 (JMLR, Lemma 6)

    MMD²_u = 1/(N(N−1)) Σ_{i≠i'} κ(X_i, X_i') + 1/(M(M−1)) Σ_{j≠j'} κ(Y_j, Y_j')
             − 2/(NM) Σ_{i,j} κ(X_i, Y_j)

with the RBF kernel κ(a, b) = exp(−‖a − b‖² / (2σ²)) and σ the median pairwise distance among
the class's real features (median heuristic on real data only, so every method of a class is
measured with the same kernel). It can be slightly negative; it needs M ≥ 2 (null at IPC 1,
where `mmd2_biased`, the V-statistic, is still reported).

Memorisation check: for each condensed image the distance to its nearest real training image
of the same class, over *all* real images of the class, in feature space and in pixel space
(L2 over the [0,1]-scaled C·H·W vector). Coresets are copies: pixel minimum 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_COPY_TOL = 1e-3  # pixel-space L2 (images in [0,1]) below which an image counts as a copy
PRDC_KEYS = ("precision", "recall", "density", "coverage")


# ------------------------------------------------------------------ distances and k-NN radii
# The expanded form ‖a‖² + ‖b‖² − 2a·b is fast but rounds: its squared distances are off by
# far less than this fraction of ‖a‖² + ‖b‖² (float64, any realistic feature width). PRDC
# decides membership by comparing a distance with a k-NN radius, and a coreset point is a real
# point, so its distance to a real sample often *equals* that sample's radius: every comparison
# the rounding could decide is recomputed by direct differences (see `prdc`).
EXPANSION_RTOL = 1e-9


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] in float64 (fast expansion; see `exact_distances`)."""
    return _expanded(a, b)[0]


def _expanded(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distances by the expansion, a bound on their rounding error), both [len(a), len(b)]."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    na, nb = (a * a).sum(1), (b * b).sum(1)
    sq = na[:, None] + nb[None, :] - 2.0 * a @ b.T
    # |error of sq| <= rtol (‖a‖² + ‖b‖²), and |sqrt(s + e) − sqrt(s)| <= sqrt(|e|)
    bound = np.sqrt(EXPANSION_RTOL * (na[:, None] + nb[None, :]))
    return np.sqrt(np.maximum(sq, 0.0)), bound


def exact_distances(a: np.ndarray, b: np.ndarray, rows, cols, chunk: int = 4096) -> np.ndarray:
    """‖a[rows] − b[cols]‖ by direct differences: identical vectors give identical distances."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    out = np.empty(len(rows))
    for start in range(0, len(rows), chunk):
        diff = a[rows[start : start + chunk]] - b[cols[start : start + chunk]]
        out[start : start + chunk] = np.sqrt((diff * diff).sum(axis=1))
    return out


def kth_neighbour_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each point of x to its k-th nearest *other* point of x (needs len(x) > k).

    Exact: the distances whose order around the k-th could be rounding are recomputed.
    """
    if len(x) <= k:
        raise ValueError(f"k-NN radii need more than k = {k} points, got {len(x)}")
    d, bound = _expanded(x, x)
    np.fill_diagonal(d, 0.0)
    # column 0 of the sorted row is the point itself (distance 0), column k its k-th neighbour
    approx = np.partition(d, k, axis=1)[:, k]
    rows, cols = np.nonzero(np.abs(d - approx[:, None]) <= 2.0 * bound)
    d[rows, cols] = exact_distances(x, x, rows, cols)
    np.fill_diagonal(d, 0.0)
    return np.partition(d, k, axis=1)[:, k]


def _inside(d: np.ndarray, bound: np.ndarray, radius: np.ndarray, a, b) -> np.ndarray:
    """d[i, j] < radius (broadcast), with every call within the rounding bound made exactly."""
    rows, cols = np.nonzero(np.abs(d - radius) <= bound)
    if len(rows):
        d = d.copy()
        d[rows, cols] = exact_distances(a, b, rows, cols)
    return d < radius


def prdc(
    real: np.ndarray, fake: np.ndarray, k: int = 5
) -> tuple[dict[str, float | None], dict[str, str]]:
    """Precision, recall, density and coverage of `fake` against `real` (Naeem et al. 2020).

    A point is inside a k-NN ball when its distance is strictly smaller than the radius; a
    distance equal to the radius (a coreset point that is the real sample's k-th neighbour) is
    outside. Radii and every comparison that rounding could decide are computed from direct
    differences, so the result is what exact distances give, on any BLAS or thread count.
    Returns (values, reasons): an undefined value is None and `reasons[key]` says why.
    """
    n, m = len(real), len(fake)
    values: dict[str, float | None] = dict.fromkeys(PRDC_KEYS)
    reasons: dict[str, str] = {}
    d_rf, bound = _expanded(real, fake)  # [N, M]
    if n > k:
        r_real = kth_neighbour_radii(real, k)
        inside = _inside(d_rf, bound, r_real[:, None], real, fake)  # fake j in real i's ball
        values["precision"] = float(inside.any(axis=0).mean())
        values["density"] = float(inside.sum(axis=0).mean() / k)
        values["coverage"] = float(inside.any(axis=1).mean())
    else:
        why = f"needs more than k = {k} real images of the class (k-NN radii of the real set), got {n}"
        for key in ("precision", "density", "coverage"):
            reasons[key] = why
    if m > k:
        r_fake = kth_neighbour_radii(fake, k)
        values["recall"] = float(
            _inside(d_rf, bound, r_fake[None, :], real, fake).any(axis=1).mean()
        )
    else:
        reasons["recall"] = (
            f"needs more than k = {k} condensed images per class (k-NN radii of the condensed "
            f"set), got {m}"
        )
    return values, reasons


# ------------------------------------------------------------------ MMD
def median_bandwidth(x: np.ndarray) -> float:
    """Median heuristic: the median Euclidean distance over distinct pairs of x (1.0 if degenerate)."""
    if len(x) < 2:
        return 1.0
    d = pairwise_distances(x, x)
    med = float(np.median(d[np.triu_indices(len(x), 1)]))
    return med if med > 0 else 1.0


def rbf_kernel(a: np.ndarray, b: np.ndarray, sigma: float) -> np.ndarray:
    """exp(−‖a − b‖² / (2σ²))."""
    return np.exp(-(pairwise_distances(a, b) ** 2) / (2.0 * sigma * sigma))


def mmd2(x: np.ndarray, y: np.ndarray, sigma: float, *, unbiased: bool = True) -> float:
    """Squared MMD with an RBF kernel: unbiased U-statistic (Gretton et al. 2012) or biased V-statistic."""
    n, m = len(x), len(y)
    kxx, kyy, kxy = rbf_kernel(x, x, sigma), rbf_kernel(y, y, sigma), rbf_kernel(x, y, sigma)
    if unbiased:
        if n < 2 or m < 2:
            raise ValueError("the unbiased MMD² needs at least two points in each set")
        sxx = (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        syy = (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    else:
        sxx, syy = kxx.mean(), kyy.mean()
    return float(sxx + syy - 2.0 * kxy.mean())


# ------------------------------------------------------------------ memorisation
def nearest_distances(query: np.ndarray, reference: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """For each query row, the Euclidean distance to its nearest reference row.

    The reference is read in chunks (uint8 rows are scaled to [0,1]); the nearest row is found
    with the fast expansion, then its distance recomputed exactly, so a copy gives exactly 0.
    """
    q = _as_rows(query)
    best = np.full(len(q), np.inf)
    for start in range(0, len(reference), chunk):
        ref = _as_rows(reference[start : start + chunk])
        nearest = pairwise_distances(q, ref).argmin(axis=1)
        exact = np.sqrt(((q - ref[nearest]) ** 2).sum(axis=1))
        best = np.minimum(best, exact)
    return best


def _as_rows(x: np.ndarray) -> np.ndarray:
    """Float64 rows; uint8 pixels scaled to [0,1] in float32 first, exactly as condensed sets
    store them (`ImageData.train_float`), so a copied training image is at distance 0."""
    x = np.asarray(x)
    if x.dtype == np.uint8:
        x = x.astype(np.float32) / np.float32(255.0)
    return x.reshape(len(x), -1).astype(np.float64)


# ------------------------------------------------------------------ per-class aggregation
@dataclass
class QualityInputs:
    """Real and condensed data of one condensed set, in feature and pixel space."""

    real_features: np.ndarray  # [N, D] float, the whole training split
    real_labels: np.ndarray  # [N] int64
    real_pixels: np.ndarray  # [N, C, H, W] (or NHWC, see below) uint8 or float in [0,1]
    fake_features: np.ndarray  # [M, D]
    fake_labels: np.ndarray  # [M]
    fake_pixels: np.ndarray  # [M, ...] float in [0,1]
    num_classes: int
    # real_pixels in the prepared dataset's NHWC layout (an array or a streamed H5Images):
    # each class's rows are read and put in CHW order, as the set's pixels, one class at a time
    real_pixels_nhwc: bool = False


def real_subsample(labels: np.ndarray, c: int, max_per_class: int | None) -> np.ndarray:
    """Indices of the real images of class c used by PRDC and MMD: a fixed seeded subsample.

    The subsample depends only on the labels and the cap (seed 0), so every method, IPC and
    seed is compared against the same real reference set.
    """
    return _capped(np.flatnonzero(labels == c), max_per_class)


def _capped(idx: np.ndarray, max_per_class: int | None) -> np.ndarray:
    """`idx` (one class's ascending indices) or its fixed seeded subsample of `max_per_class`."""
    if max_per_class is None or len(idx) <= max_per_class:
        return idx
    rng = np.random.default_rng(0)
    return np.sort(rng.choice(idx, size=max_per_class, replace=False))


def class_groups(labels: np.ndarray, num_classes: int) -> list[np.ndarray]:
    """Ascending indices of each class 0..K−1 in one stable sort: O(N log N), not O(K·N)."""
    labels = np.asarray(labels)
    inside = (labels >= 0) & (labels < num_classes)
    order = np.flatnonzero(inside)[np.argsort(labels[inside], kind="stable")]
    counts = np.bincount(labels[inside], minlength=num_classes)
    return np.split(order, np.cumsum(counts)[:-1])


def _mean_or_none(values: list[float | None]) -> float | None:
    return None if not values or any(v is None for v in values) else float(np.mean(values))


def quality_metrics(inp: QualityInputs, k: int = 5, max_real_per_class: int | None = 1000) -> dict:
    """Per-class and class-averaged PRDC, MMD² and nearest-real-neighbour distances.

    The work holds one class at a time (its real subsample and condensed images; no matrix
    spans classes), so its working memory does not grow with the number of classes.
    `per_class` has one row per class with both real and condensed images: the JSON keeps it,
    the tables and figures show only the class means.
    """
    per_class = []
    undefined: dict[str, str] = {}
    fake_groups = class_groups(inp.fake_labels, inp.num_classes)
    real_groups = class_groups(inp.real_labels, inp.num_classes)
    for c in range(inp.num_classes):
        fake_idx, all_real = fake_groups[c], real_groups[c]
        if len(fake_idx) == 0 or len(all_real) == 0:
            continue
        real_idx = _capped(all_real, max_real_per_class)
        xr, yf = inp.real_features[real_idx], inp.fake_features[fake_idx]
        values, reasons = prdc(xr, yf, k)
        for key, why in reasons.items():
            undefined.setdefault(key, why)
        sigma = median_bandwidth(xr)
        if len(yf) >= 2 and len(xr) >= 2:
            m_u: float | None = mmd2(xr, yf, sigma, unbiased=True)
        else:
            m_u = None
            undefined.setdefault(
                "mmd2",
                f"the unbiased MMD² needs at least 2 condensed images per class, got {len(yf)}",
            )
        nn_feat = nearest_distances(yf, inp.real_features[all_real])
        real_px = inp.real_pixels[all_real]
        if inp.real_pixels_nhwc:
            real_px = real_px.transpose(0, 3, 1, 2)
        nn_px = nearest_distances(inp.fake_pixels[fake_idx], real_px)
        per_class.append(
            {
                "class": c,
                "n_real": int(len(real_idx)),
                "n_real_all": int(len(all_real)),
                "n_condensed": int(len(fake_idx)),
                **values,
                "mmd2": m_u,
                "mmd2_biased": mmd2(xr, yf, sigma, unbiased=False),
                "mmd_bandwidth": sigma,
                "nn_feature_mean": float(nn_feat.mean()),
                "nn_feature_min": float(nn_feat.min()),
                "nn_pixel_mean": float(nn_px.mean()),
                "nn_pixel_min": float(nn_px.min()),
                "exact_copy_fraction": float((nn_px < EXACT_COPY_TOL).mean()),
            }
        )
    if not per_class:
        raise ValueError("no class has both real and condensed images")
    out: dict[str, Any] = {}
    for key in (*PRDC_KEYS, "mmd2", "mmd2_biased", "nn_feature_mean", "nn_pixel_mean"):
        out[key] = _mean_or_none([row[key] for row in per_class])
    out["nn_feature_min"] = float(min(row["nn_feature_min"] for row in per_class))
    out["nn_pixel_min"] = float(min(row["nn_pixel_min"] for row in per_class))
    out["exact_copy_fraction"] = float(
        sum(row["exact_copy_fraction"] * row["n_condensed"] for row in per_class)
        / sum(row["n_condensed"] for row in per_class)
    )
    out["undefined"] = {key: why for key, why in undefined.items() if out.get(key) is None}
    out["per_class"] = per_class
    return out


# ------------------------------------------------------------------ the workflow entry point
def compute_quality(
    dataset_path: str | os.PathLike,
    features_path: str | os.PathLike,
    teacher_path: str | os.PathLike,
    condensed_path: str | os.PathLike,
    teacher: str,
    out_json: str | os.PathLike,
    out_features: str | os.PathLike,
    *,
    k: int = 5,
    max_real_per_class: int | None = 1000,
    seed: int = 0,
    device: str = "cpu",
    threads: int | None = None,
) -> dict:
    """Embed a condensed set with the teacher, write its quality JSON and its features (HDF5)."""
    import torch

    from ddbench.data.datasets import load_dataset
    from ddbench.data.h5io import config_sha256, file_sha256, write_h5, write_json
    from ddbench.methods.base import CondensedSet
    from ddbench.stages.features import load_features
    from ddbench.stages.teachers import load_teacher
    from ddbench.training.engine import embed, resolve_device

    # eval-mode embedding needs no seeding; set_determinism would cost seconds of imports
    # (torch.use_deterministic_algorithms loads torch._dynamo) in a job that takes one second
    if threads:
        torch.set_num_threads(int(threads))
    data = load_dataset(dataset_path)
    real_feats = load_features(features_path, len(data.train_labels))
    cset = CondensedSet.load(
        condensed_path, data.num_classes, (data.in_chans, data.image_size, data.image_size)
    )
    # the images a student trains on: a set recording decode_factor f (IDM) is judged on its
    # f x f upsampled parts, each with its stored image's label, as evaluate_set trains on them
    from ddbench.training.evaluate import decode_condensed

    images, labels, _, decoded = decode_condensed(cset, condensed_path)
    fake_pixels, fake_labels = images.numpy(), labels.numpy()
    model = load_teacher(teacher_path, data).to(resolve_device(device))
    fake_feats = embed(model, images).numpy().astype(np.float32)
    if fake_feats.shape[1] != real_feats.shape[1]:
        raise ValueError(
            f"{features_path}: feature dimension {real_feats.shape[1]} differs from the teacher's "
            f"{fake_feats.shape[1]} ({teacher_path})"
        )
    metrics = quality_metrics(
        QualityInputs(
            real_features=real_feats,
            real_labels=data.train_labels,
            real_pixels=data.train_images,  # read one class at a time (streamed when large)
            real_pixels_nhwc=True,
            fake_features=fake_feats,
            fake_labels=fake_labels,
            fake_pixels=fake_pixels,
            num_classes=data.num_classes,
        ),
        k=k,
        max_real_per_class=max_real_per_class,
    )
    params = {"teacher": teacher, "k": k, "max_real_per_class": max_real_per_class}
    result = {
        "dataset": data.name,
        "method": cset.method,
        "ipc": int(cset.ipc),
        "seed": int(seed),
        "teacher": teacher,
        "k": int(k),
        "max_real_per_class": max_real_per_class,
        "feature_dim": int(fake_feats.shape[1]),
        "n_condensed": int(len(cset.labels)),
        "decode_factor": int(decoded.get("decode_factor", 1)),
        "n_judged_images": int(len(fake_labels)),
        "classes": list(data.classes),
        **metrics,
        "definitions": {
            "prdc": "Naeem et al. 2020, per class, k-NN balls with strict <, class mean",
            "mmd2": "unbiased U-statistic (Gretton et al. 2012), RBF kernel, sigma = median "
            "pairwise distance of the class's real features; class mean",
            "nn_distance": "L2 to the nearest real training image of the same class (all of "
            "them), teacher features and [0,1] pixels",
        },
        "config_sha256": config_sha256(params),
        "condensed_sha256": file_sha256(condensed_path),
        "condensed_config_sha256": cset.config_sha256,
    }
    write_json(out_json, result)
    write_h5(
        out_features,
        "features",
        {"features": fake_feats, "labels": fake_labels.astype(np.int64)},
        created_by="ddbench.analysis.quality.compute_quality",
        params=params,
        seed=seed,
        attrs={"extractor": teacher, "dataset": data.name, "method": cset.method, "ipc": cset.ipc},
    )
    return result
