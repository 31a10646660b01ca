"""Diffusion-driven patch selection (DDPS): patch scores from a diffusion prior, clusters, ranking.

Three stages, the first two IPC-independent targets, the last the cheap per-IPC step:

1. `score_patches` (scorer kind `ddps`, `results/{ds}/scores/{scorer}.h5`). From up to
   `max_images_per_class` training images per class (seeded subset) and `crops_per_image`
   random-resized boxes per image (`crops.sample_boxes`, area range `scale`), the score map of
   an image is, for `timesteps` evenly spaced timesteps t in [t_range[0], t_range[1]] * (T - 1)
   and one seeded noise draw per (image, t) shared by both passes,

       map = mean_t mean_channels [ (eps(x_t, t, none) - noise)^2 - (eps(x_t, t, y) - noise)^2 ]

   computed where the prior runs (pixels for a UNet prior, VAE latents for Stable Diffusion)
   and upsampled bilinearly to the image size. A patch's score is the mean of the map inside
   its box: higher = the class condition explains the patch better. Each image keeps its
   `keep_per_image` best-scoring patches (`/kept`). DIFT features: one pass of the prior's
   UNet at t = dift_t * (T - 1) on the whole image (own seeded noise), the activations of
   block `dift_block` upsampled bilinearly to the image size and averaged inside each box
   (`/dift_features` [N, P, D], every candidate patch). The scorer's teacher gives the
   penultimate features of every patch resized to the image size (`/teacher_features`), for
   the teacher-feature clustering ablation.
2. `cluster_patches` (`results/{ds}/clusters/{extractor}-k{k}.h5`): per class, k-means
   (scikit-learn, `n_init` fixed, seeded) of the kept patches' L2-normalised features (DIFT
   or teacher).
3. `rank_patches`: clusters ranked by the median score of their members; from the top
   `top_clusters`, patches nearest their centroid, round-robin; the remainder by score.
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5

SCORE_DEFAULTS = {
    "max_images_per_class": 300,
    "crops_per_image": 5,
    "scale": [0.08, 1.0],
    "t_range": [0.1, 0.7],
    "timesteps": 5,
    "dift_t": 0.16,
    "dift_block": None,
    "keep_per_image": 1,
    "batch_size": 64,
    "seed": 0,
}


def timestep_grid(num_train_timesteps: int, t_range, n: int) -> list[int]:
    """`n` evenly spaced integer timesteps in [t_range[0], t_range[1]] * (T - 1)."""
    lo, hi = float(t_range[0]), float(t_range[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"t_range {list(t_range)} must satisfy 0 <= low <= high <= 1")
    ts = np.linspace(lo, hi, int(n)) * (num_train_timesteps - 1)
    return [int(round(t)) for t in ts]


def box_means(maps, boxes: np.ndarray):
    """Mean of each map inside each box (integral image): maps [n,(D,)H,W], boxes [n,P,4] -> [n,P(,D)]."""
    import torch
    import torch.nn.functional as F

    squeeze = maps.dim() == 3
    if squeeze:
        maps = maps.unsqueeze(1)
    ii = F.pad(maps.double().cumsum(-1).cumsum(-2), (1, 0, 1, 0))  # [n,D,H+1,W+1]
    b = torch.as_tensor(np.asarray(boxes), dtype=torch.long)
    y0, x0, h, w = b.unbind(-1)  # each [n,P]
    y1, x1 = y0 + h, x0 + w
    n = torch.arange(len(maps)).unsqueeze(1).expand_as(y0)
    total = ii[n, :, y1, x1] - ii[n, :, y0, x1] - ii[n, :, y1, x0] + ii[n, :, y0, x0]  # [n,P,D]
    out = (total / (h * w).unsqueeze(-1).double()).float()
    return out[..., 0] if squeeze else out


def _noise(prior, n_draws: int, image_seed: int):
    """Seeded noise [n_draws, *latent_shape] of one image: independent of batching."""
    import torch

    g = torch.Generator().manual_seed(int(image_seed))
    return torch.randn((n_draws, *prior.latent_shape), generator=g)


def score_map(prior, x0, labels, timesteps: list[int], noise):
    """Unconditional minus conditional noise-prediction error per pixel, mean over t and channels.

    x0 [n,*latent], labels [n], noise [n, len(timesteps), *latent]; returns [n, h, w] in the
    prior's space (upsample with `to_image_size`).
    """
    import torch

    out = torch.zeros((len(x0), *x0.shape[2:]), device=x0.device)
    with torch.no_grad():
        for j, t in enumerate(timesteps):
            eps = noise[:, j].to(x0.device)
            tt = torch.full((len(x0),), int(t), dtype=torch.long, device=x0.device)
            x_t = prior.add_noise(x0, eps, tt)
            err_c = (prior.predict_noise(x_t, tt, labels) - eps).pow(2).mean(1)
            err_u = (prior.predict_noise(x_t, tt, None) - eps).pow(2).mean(1)
            out += err_u - err_c
    return out / len(timesteps)


def to_image_size(maps, size: int):
    """Bilinear upsampling of [n,h,w] or [n,D,h,w] maps to size x size (no-op when equal)."""
    import torch.nn.functional as F

    squeeze = maps.dim() == 3
    m = maps.unsqueeze(1) if squeeze else maps
    if m.shape[-1] != size or m.shape[-2] != size:
        m = F.interpolate(m.float(), size=(size, size), mode="bilinear", align_corners=False)
    return m[:, 0] if squeeze else m


def check_prior_fits(prior, data, where: str) -> None:
    """Raise DataFileError when the prior's classes or image shape differ from the dataset's."""
    if int(prior.num_classes) != data.num_classes:
        raise DataFileError(
            f"{where}: prior has {prior.num_classes} classes, dataset {data.name!r} has "
            f"{data.num_classes}"
        )
    names = list(getattr(prior, "class_names", []) or [])
    if names and names != list(data.classes):
        raise DataFileError(
            f"{where}: prior classes {names} differ from dataset {data.name!r} classes "
            f"{list(data.classes)}"
        )
    want = (data.in_chans, data.image_size, data.image_size)
    if tuple(prior.image_shape) != want:
        raise DataFileError(
            f"{where}: prior makes images of shape {tuple(prior.image_shape)}, dataset has {want}"
        )


def score_patches(
    dataset_path: str | os.PathLike,
    prior_path: str | os.PathLike,
    teacher_path: str | os.PathLike,
    name: str,
    spec: dict,
    out: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """The `ddps` scorer target: compute the patch arrays and write them atomically."""
    from ddbench.data.datasets import load_dataset
    from ddbench.stages.diffusion import load_prior
    from ddbench.stages.teachers import load_teacher
    from ddbench.training.engine import resolve_device, set_determinism

    seed = int(spec.get("seed", SCORE_DEFAULTS["seed"]))
    set_determinism(seed, threads)
    data = load_dataset(dataset_path)
    dev = resolve_device(device)
    prior = load_prior(prior_path, device=dev)
    check_prior_fits(prior, data, str(prior_path))
    teacher = load_teacher(teacher_path, data).to(dev).eval()
    arrays, attrs = compute_patch_scores(data, prior, teacher, name, spec, device=dev)
    write_h5(
        out,
        "scores",
        arrays,
        created_by="ddbench.stages.ddps.score_patches",
        params=spec,
        seed=seed,
        attrs=attrs,
    )
    return {"images": len(arrays["image_indices"]), "timesteps": attrs["timesteps"]}


def compute_patch_scores(data, prior, teacher, name: str, spec: dict, *, device="cpu"):
    """Patch scores [N, P], boxes, kept patches, DIFT and teacher features: (arrays, attrs)."""
    import torch
    from tqdm import tqdm

    from ddbench.stages.crops import crop_resize, sample_boxes
    from ddbench.training.engine import data_source

    p = {**SCORE_DEFAULTS, **spec}
    seed = int(p["seed"])
    dev = device
    blocks = list(prior.dift_blocks())
    block = p["dift_block"] if p["dift_block"] is not None else blocks[len(blocks) // 2]
    if block not in blocks:
        raise DataFileError(f"scorers.{name}.dift_block: {block!r} is not one of {blocks}")
    T = int(prior.num_train_timesteps)
    timesteps = timestep_grid(T, p["t_range"], int(p["timesteps"]))
    t_dift = int(round(float(p["dift_t"]) * (T - 1)))
    n_patches, keep = int(p["crops_per_image"]), int(p["keep_per_image"])
    if keep > n_patches:
        raise DataFileError(
            f"scorers.{name}.keep_per_image: {keep} exceeds crops_per_image {n_patches}"
        )

    rng = np.random.default_rng(seed)
    chosen = np.concatenate(
        [
            np.sort(rng.permutation(idx)[: int(p["max_images_per_class"])])
            for idx in data.class_indices()
        ]
    )
    size = data.image_size
    boxes = np.stack([sample_boxes(rng, size, n_patches, tuple(p["scale"])) for _ in chosen])
    scores = np.zeros((len(chosen), n_patches), dtype=np.float32)
    feats = tfeats = None
    batch = int(p["batch_size"])
    images = data_source(data, indices=chosen)  # one batch as float at a time
    labels = data.train_labels[chosen]
    for s in tqdm(
        range(0, len(chosen), batch), desc=f"ddps scores {name}", file=sys.stderr, mininterval=2.0
    ):
        sl = slice(s, s + batch)
        imgs = images.rows(s, s + batch, dev)
        y = torch.from_numpy(labels[sl]).long().to(dev)
        with torch.no_grad():
            x0 = prior.encode(imgs)
            draws = torch.stack(
                [_noise(prior, len(timesteps) + 1, seed * 1_000_003 + int(i)) for i in chosen[sl]]
            )
            m = to_image_size(score_map(prior, x0, y, timesteps, draws[:, :-1]), size)
            scores[sl] = box_means(m.cpu(), boxes[sl]).numpy()
            tt = torch.full((len(x0),), t_dift, dtype=torch.long, device=dev)
            x_t = prior.add_noise(x0, draws[:, -1].to(dev), tt)
            f = to_image_size(prior.features(x_t, tt, y, block), size)
            pooled = box_means(f.cpu(), boxes[sl]).numpy()
            tf = torch.stack(
                [
                    teacher.features(crop_resize(imgs, boxes[sl][:, j], size)).float().cpu()
                    for j in range(n_patches)
                ],
                dim=1,
            ).numpy()
        if feats is None:
            feats = np.zeros((len(chosen), n_patches, pooled.shape[-1]), dtype=np.float32)
            tfeats = np.zeros((len(chosen), n_patches, tf.shape[-1]), dtype=np.float32)
        feats[sl] = pooled
        tfeats[sl] = tf
    if not np.isfinite(scores).all():
        raise DataFileError(f"scorers.{name}: the prior produced non-finite noise predictions")
    kept = np.argsort(-scores, axis=1, kind="stable")[:, :keep]
    arrays = {
        "patch_scores": scores,
        "patch_boxes": boxes,
        "image_indices": chosen.astype(np.int64),
        "labels": labels.astype(np.int64),
        "kept": kept.astype(np.int64),
        "dift_features": feats,
        "teacher_features": tfeats,
    }
    attrs = {
        "scorer": name,
        "dataset": data.name,
        "score": "unconditional minus conditional noise-prediction error per patch "
        "(higher = the class condition explains the patch better)",
        "timesteps": timesteps,
        "dift_t": t_dift,
        "dift_block": block,
        "prior_kind": str(prior.kind),
    }
    return arrays, attrs


def load_patch_scores(path: str | os.PathLike, n_train: int) -> dict[str, np.ndarray]:
    """Read a `ddps` scorer file, checking shapes and index range."""
    with open_h5(path, "scores") as f:
        if "dift_features" not in f:
            raise DataFileError(f"{path}: no /dift_features (is this a ddps scorer's file?)")
        out = {
            "scores": read_array(f, "patch_scores", ndim=2, dtype=np.floating),
            "boxes": read_array(f, "patch_boxes", ndim=3, dtype=np.integer),
            "image_indices": read_array(f, "image_indices", ndim=1, dtype=np.integer),
            "labels": read_array(f, "labels", ndim=1, dtype=np.integer),
            "kept": read_array(f, "kept", ndim=2, dtype=np.integer),
            "dift_features": read_array(f, "dift_features", ndim=3, dtype=np.floating),
            "teacher_features": read_array(f, "teacher_features", ndim=3, dtype=np.floating),
        }
    n, p = out["scores"].shape
    if (
        out["boxes"].shape[:2] != (n, p)
        or out["dift_features"].shape[:2] != (n, p)
        or out["teacher_features"].shape[:2] != (n, p)
        or len(out["image_indices"]) != n
        or len(out["labels"]) != n
        or len(out["kept"]) != n
    ):
        raise DataFileError(f"{path}: patch arrays disagree in their first dimensions")
    idx = out["image_indices"]
    if len(idx) and (idx.min() < 0 or idx.max() >= n_train):
        raise DataFileError(f"{path}: image_indices outside the training split")
    if out["kept"].size and (out["kept"].min() < 0 or out["kept"].max() >= p):
        raise DataFileError(f"{path}: kept patch indices outside 0..{p - 1}")
    return out


def kept_patches(ps: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(row, patch) of every kept patch, row-major: the population that is clustered and ranked."""
    rows = np.repeat(np.arange(len(ps["kept"])), ps["kept"].shape[1])
    return rows, ps["kept"].reshape(-1)


def kmeans_per_class(
    feats: np.ndarray, labels: np.ndarray, num_classes: int, k: int, seed: int, n_init: int = 4
) -> dict[str, np.ndarray]:
    """Per-class k-means on L2-normalised features: assignments, centroids [C,k,D], distances.

    One class is clustered at a time (no matrix spans classes); the classes' rows come from one
    stable sort of the labels, so the work outside the fits is O(N log N), not O(C·N).
    """
    from sklearn.cluster import KMeans

    x = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    assign = np.zeros(len(x), dtype=np.int64)
    dist = np.zeros(len(x), dtype=np.float32)
    cents = np.zeros((num_classes, k, x.shape[1]), dtype=np.float32)
    n_clusters = np.zeros(num_classes, dtype=np.int64)
    labels = np.asarray(labels)
    inside = np.flatnonzero((labels >= 0) & (labels < num_classes))
    by_class = inside[np.argsort(labels[inside], kind="stable")]  # ascending rows per class
    ends = np.cumsum(np.bincount(labels[inside], minlength=num_classes))
    for c in range(num_classes):
        rows = by_class[(ends[c - 1] if c else 0) : ends[c]]
        if len(rows) == 0:
            continue
        kc = min(k, len(np.unique(x[rows], axis=0)))
        km = KMeans(n_clusters=kc, n_init=n_init, random_state=seed).fit(x[rows])
        assign[rows] = km.labels_
        cents[c, :kc] = km.cluster_centers_
        dist[rows] = np.linalg.norm(x[rows] - km.cluster_centers_[km.labels_], axis=1)
        n_clusters[c] = kc
    return {"assignments": assign, "centroids": cents, "distances": dist, "n_clusters": n_clusters}


def cluster_patches(
    scores_path: str | os.PathLike,
    dataset_path: str | os.PathLike,
    name: str,
    spec: dict,
    out: str | os.PathLike,
) -> dict:
    """Per-class k-means of the kept patches (spec: features dift|teacher, k, seed, n_init)."""
    from ddbench.data.datasets import load_dataset

    data = load_dataset(dataset_path, train_images=False)
    ps = load_patch_scores(scores_path, len(data.train_labels))
    rows, patches = kept_patches(ps)
    if spec["features"] not in ("dift", "teacher"):
        raise ValueError(f"clusters {name}: unknown features {spec['features']!r}")
    feats = ps[f"{spec['features']}_features"][rows, patches]
    labels = ps["labels"][rows]
    res = kmeans_per_class(
        feats, labels, data.num_classes, int(spec["k"]), int(spec["seed"]), int(spec["n_init"])
    )
    write_h5(
        out,
        "clusters",
        {"rows": rows, "patches": patches, "labels": labels, **res},
        created_by="ddbench.stages.ddps.cluster_patches",
        params=spec,
        seed=int(spec["seed"]),
        attrs={"extractor": name, "dataset": data.name, "features": spec["features"]},
    )
    return {"patches": int(len(rows)), "clusters_per_class": res["n_clusters"].tolist()}


def load_clusters(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a clusters file, checking its arrays agree."""
    with open_h5(path, "clusters") as f:
        out = {
            k: read_array(f, k)
            for k in (
                "rows",
                "patches",
                "labels",
                "assignments",
                "centroids",
                "distances",
                "n_clusters",
            )
        }
    m = len(out["rows"])
    if any(len(out[k]) != m for k in ("patches", "labels", "assignments", "distances")):
        raise DataFileError(f"{path}: cluster arrays disagree in length")
    return out


def rank_patches(
    scores: np.ndarray,
    assignments: np.ndarray | None,
    distances: np.ndarray | None,
    top_clusters: int,
) -> np.ndarray:
    """Order of one class's patches for selection (indices into `scores`).

    Clusters are ranked by the median score of their members (higher first, ties by cluster
    id). From the `top_clusters` best, patches are taken nearest-to-centroid first, one per
    cluster per round (round-robin in cluster rank order); every patch not taken that way
    follows by score (higher first). Without clusters (`assignments` None): by score alone.
    """
    scores = np.asarray(scores, dtype=np.float64)
    by_score = np.lexsort((np.arange(len(scores)), -scores))
    if assignments is None:
        return by_score
    ids = np.unique(assignments)
    medians = np.array([np.median(scores[assignments == c]) for c in ids])
    ranked = ids[np.lexsort((ids, -medians))][: int(top_clusters)]
    queues = []
    for c in ranked:
        members = np.flatnonzero(assignments == c)
        queues.append(list(members[np.lexsort((members, distances[members]))]))
    first = []
    depth = max((len(q) for q in queues), default=0)
    for r in range(depth):
        first += [q[r] for q in queues if r < len(q)]
    taken = set(first)
    return np.array(first + [i for i in by_score if i not in taken], dtype=np.int64)
