"""Write an ImageNet-shaped stand-in: synthetic, class-dependent JPEG image folders.

    .venv/bin/python bench/make_standin.py resources/standin [--per-class 20] [--val-per-class 5]
        [--size 32] [--seed 0] [--classes 1000] [--subset 100] [--workers 2]

The ImageNet-shaped stand-in has ImageNet's layout, class count and file naming, not its
images: `<out>/imagenet1k/train/<wnid>/<wnid>_<i>.JPEG` and
`<out>/imagenet1k/val/<wnid>/ILSVRC2012_val_<n>.JPEG` (the val folder sorted into class
folders, as the `imagefolder` source reads it) for `--classes` classes (1 000, WNID-like names
`n00000000` …), and an ImageNet-100-shaped variant `<out>/imagenet100/` holding `--subset`
of those classes (every tenth, hard links to the same files). Each class has its own colour,
grating orientation and frequency; each image its own phase, brightness, offset and noise, so
a small ConvNet can learn the classes while no two images are equal. Everything is
deterministic from `--seed` (numpy generators seeded with (seed, class, image)); JPEG at
quality 90, `--size` pixels square. Nothing here is ImageNet data: it stands in for its size
and shape when timing the workflow (`config/scale.yaml`).
"""

from __future__ import annotations

import argparse
import colorsys
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

GOLDEN = 0.618033988749895


def wnid(k: int) -> str:
    """WNID-shaped folder name of class k."""
    return f"n{k:08d}"


def class_images(k: int, count: int, size: int, seed: int, split: int) -> np.ndarray:
    """`count` uint8 [size,size,3] images of class k: tinted grating plus per-image noise."""
    hue = (k * GOLDEN) % 1.0
    colour = np.array(colorsys.hsv_to_rgb(hue, 0.6 + 0.4 * ((k // 7) % 2), 0.85)) * 255
    angle = np.pi * ((k * 0.37) % 1.0)
    freq = 2 + (k % 5)  # cycles per image side
    yy, xx = np.mgrid[0:size, 0:size] / size
    proj = np.cos(angle) * xx + np.sin(angle) * yy
    rng = np.random.default_rng([seed, k, split])
    phase = rng.uniform(0, 2 * np.pi, (count, 1, 1))
    bright = rng.uniform(0.7, 1.1, (count, 1, 1, 1))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * freq * proj[None] + phase)  # [n,H,W]
    images = colour * (0.35 + 0.65 * wave[..., None]) * bright
    images += rng.normal(0, 18, (count, size, size, 3))
    images += rng.uniform(-25, 25, (count, 1, 1, 3))  # per-image colour offset
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)


def write_class(args: tuple[Path, int, int, int, int, int, int]) -> int:
    """Write class k's train and val JPEGs; return the number of files."""
    root, k, per_class, val_per_class, size, seed, val_base = args
    name = wnid(k)
    written = 0
    for split, count, split_id in (("train", per_class, 0), ("val", val_per_class, 1)):
        folder = root / split / name
        folder.mkdir(parents=True, exist_ok=True)
        for i, image in enumerate(class_images(k, count, size, seed, split_id)):
            if split == "train":
                file = folder / f"{name}_{i}.JPEG"
            else:
                file = folder / f"ILSVRC2012_val_{val_base + i + 1:08d}.JPEG"
            Image.fromarray(image).save(file, format="JPEG", quality=90)
            written += 1
    return written


def link_subset(full: Path, subset: Path, classes: list[int]) -> None:
    """The ImageNet-100-shaped variant: hard links (copies where links fail) of some classes."""
    for split in ("train", "val"):
        for k in classes:
            src = full / split / wnid(k)
            dst = subset / split / wnid(k)
            dst.mkdir(parents=True, exist_ok=True)
            for file in sorted(src.iterdir()):
                target = dst / file.name
                if target.exists():
                    continue
                try:
                    os.link(file, target)
                except OSError:
                    shutil.copy2(file, target)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for imagenet1k/ and imagenet100/")
    parser.add_argument("--per-class", type=int, default=20, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=5, help="val images per class")
    parser.add_argument("--size", type=int, default=32, help="image side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--subset", type=int, default=100, help="classes of the small variant")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    args = parser.parse_args()
    if not 1 <= args.subset <= args.classes:
        parser.error("--subset must be between 1 and --classes")

    full = args.out / f"imagenet{args.classes // 1000}k" if args.classes % 1000 == 0 else None
    full = full or args.out / f"imagenet{args.classes}"
    if full.exists():
        shutil.rmtree(full)
    start = time.perf_counter()
    jobs = [
        (full, k, args.per_class, args.val_per_class, args.size, args.seed, k * args.val_per_class)
        for k in range(args.classes)
    ]
    with ProcessPoolExecutor(args.workers) as pool:
        files = sum(pool.map(write_class, jobs, chunksize=8))
    step = args.classes // args.subset
    subset = args.out / f"imagenet{args.subset}"
    if subset != full:
        if subset.exists():
            shutil.rmtree(subset)
        link_subset(full, subset, [k * step for k in range(args.subset)])
    linked = f"; {subset}: {args.subset} classes (hard links)" if subset != full else ""
    print(
        f"{full}: {args.classes} classes, {files} JPEGs ({args.per_class} train + "
        f"{args.val_per_class} val per class, {args.size} px){linked}; "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
