"""Patch machinery shared by RDED and CA2D: random crops scored by a teacher, and mosaics.

The IPC-independent part (`score_crops`) draws `crops_per_image` random-resized crops from up
to `max_images_per_class` training images per class and stores each crop's box and the
teacher's cross-entropy on it (lower = more realistic / easier). Per IPC, a method only ranks
the stored crops and assembles them (`assemble_mosaics`).
"""

from __future__ import annotations

import os
import sys

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5


def sample_boxes(
    rng: np.random.Generator, size: int, n: int, scale: tuple[float, float], ratio=(3 / 4, 4 / 3)
) -> np.ndarray:
    """n random-resized-crop boxes (y0, x0, h, w) inside a size×size image."""
    boxes = np.zeros((n, 4), dtype=np.int64)
    area = size * size
    for i in range(n):
        for _ in range(10):
            a = area * rng.uniform(*scale)
            r = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
            w = int(round(np.sqrt(a * r)))
            h = int(round(np.sqrt(a / r)))
            if 0 < w <= size and 0 < h <= size:
                boxes[i] = (rng.integers(0, size - h + 1), rng.integers(0, size - w + 1), h, w)
                break
        else:
            boxes[i] = (0, 0, size, size)
    return boxes


def crop_resize(images, boxes: np.ndarray, out_size: int):
    """Crop each image [n,C,H,W] (torch) to its box and resize to out_size (bilinear, antialiased)."""
    import torch
    import torch.nn.functional as F

    out = []
    for img, (y, x, h, w) in zip(images, boxes, strict=True):
        patch = img[:, y : y + h, x : x + w].unsqueeze(0)
        out.append(
            F.interpolate(
                patch,
                size=(out_size, out_size),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        )
    return torch.cat(out).clamp(0, 1)


def score_crops(
    dataset_path: str | os.PathLike,
    teacher_path: str | os.PathLike,
    name: str,
    spec: dict,
    out: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Score random crops of a per-class image subset by the teacher's cross-entropy."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from ddbench.data.datasets import load_dataset
    from ddbench.stages.teachers import load_teacher
    from ddbench.training.engine import data_source, resolve_device, set_determinism

    seed = int(spec.get("seed", 0))
    set_determinism(seed, threads)
    data = load_dataset(dataset_path)
    dev = resolve_device(device)
    teacher = load_teacher(teacher_path, data).to(dev).eval()
    rng = np.random.default_rng(seed)
    per_class = int(spec.get("max_images_per_class", 300))
    crops = int(spec.get("crops_per_image", 5))
    scale = tuple(spec.get("scale", (0.08, 1.0)))
    chosen = np.concatenate(
        [np.sort(rng.permutation(idx)[:per_class]) for idx in data.class_indices()]
    )
    size = data.image_size
    boxes = np.stack([sample_boxes(rng, size, crops, scale) for _ in chosen])  # [n, crops, 4]
    losses = np.zeros((len(chosen), crops), dtype=np.float32)
    images = data_source(data, indices=chosen)  # one batch as float at a time
    labels = torch.from_numpy(data.train_labels[chosen])
    batch = 64
    with torch.no_grad():
        for s in tqdm(
            range(0, len(chosen), batch),
            desc=f"score crops {name}",
            file=sys.stderr,
            mininterval=2.0,
        ):
            imgs = images.rows(s, s + batch, torch.device("cpu"))
            for j in range(crops):
                x = crop_resize(imgs, boxes[s : s + batch, j], size).to(dev)
                losses[s : s + batch, j] = (
                    F.cross_entropy(teacher(x), labels[s : s + batch].to(dev), reduction="none")
                    .cpu()
                    .numpy()
                )
    write_h5(
        out,
        "scores",
        {
            "patch_scores": losses,
            "patch_boxes": boxes,
            "image_indices": chosen.astype(np.int64),
            "labels": data.train_labels[chosen],
        },
        created_by="ddbench.stages.crops.score_crops",
        params=spec,
        seed=seed,
        attrs={
            "scorer": name,
            "dataset": data.name,
            "score": "teacher cross-entropy per crop (lower = easier)",
        },
    )
    return {"images": int(len(chosen)), "crops_per_image": crops}


def load_crop_scores(path: str | os.PathLike, n_train: int) -> dict[str, np.ndarray]:
    """Read a crop-score file, checking shapes and index range."""
    with open_h5(path, "scores") as f:
        if "patch_scores" not in f:
            raise DataFileError(f"{path}: no /patch_scores (is this a crop scorer's file?)")
        scores = read_array(f, "patch_scores", ndim=2, dtype=np.floating)
        boxes = read_array(f, "patch_boxes", ndim=3, dtype=np.integer)
        idx = read_array(f, "image_indices", ndim=1, dtype=np.integer)
    if boxes.shape[:2] != scores.shape or len(idx) != len(scores):
        raise DataFileError(
            f"{path}: patch_scores {scores.shape}, patch_boxes {boxes.shape} and image_indices {idx.shape} disagree"
        )
    if len(idx) and (idx.min() < 0 or idx.max() >= n_train):
        raise DataFileError(f"{path}: image_indices outside the training split")
    return {"scores": scores, "boxes": boxes, "image_indices": idx}


def assemble_mosaics(
    train_images_float: np.ndarray, picks: list[tuple[int, np.ndarray]], factor: int, size: int
) -> np.ndarray:
    """Stitch groups of factor² crops (train index, box) into size×size images, row-major."""
    import torch

    n_tiles = factor * factor
    if len(picks) % n_tiles:
        raise ValueError(f"{len(picks)} crops do not fill mosaics of {n_tiles}")
    tile = size // factor
    out = np.zeros(
        (len(picks) // n_tiles, train_images_float.shape[1], size, size), dtype=np.float32
    )
    for m in range(len(out)):
        for t in range(n_tiles):
            i, box = picks[m * n_tiles + t]
            img = torch.from_numpy(train_images_float[i : i + 1])
            patch = crop_resize(img, box[None], tile)[0].numpy()
            r, c = divmod(t, factor)
            out[m, :, r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = patch
    if tile * factor < size:  # sizes not divisible by factor: stretch the covered area back
        img = torch.from_numpy(out[:, :, : tile * factor, : tile * factor])
        out = crop_resize(
            img, np.tile([0, 0, tile * factor, tile * factor], (len(out), 1)), size
        ).numpy()
    return out.astype(np.float32)
