"""GPU throughput: the engine vs a bare PyTorch loop, and the streaming loader, on CUDA.

    .venv/bin/python bench/gpu_throughput.py [--dataset FILE] [--model convnet-d3-w128-in]
        [--steps 200] [--batch 256] [--amp]

Reported (images/s, one run, best of `--repeats`):
- `bare` — a bare loop on a float set held on the GPU (fused torch.optim SGD);
- `engine_set` — `train` on the same set (the condensed-set case: set and augmentation on the
  device, fused optimiser, bf16 + channels_last with `--amp`);
- `engine_streaming` — `train` over the whole training split read from the HDF5 file in uint8
  batches (pinned, non-blocking copies, the next batch read on a thread);
- `loader_streaming` / `loader_in_memory` — reading batches onto the GPU alone, no model.
Without `--dataset` a synthetic 32x32 RGB dataset file (20 000 images) is written to a
temporary folder. Without CUDA everything runs on the CPU and the output says so.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from engine_throughput import bare_loop, loader_rate, split_protocol  # noqa: E402

from ddbench.data.datasets import load_dataset  # noqa: E402
from ddbench.training.engine import (  # noqa: E402
    build_classifier,
    data_source,
    set_determinism,
    train,
)
from ddbench.training.protocols import resolve_protocol  # noqa: E402


def synthetic_dataset(folder: Path, n: int = 20000, side: int = 32, k: int = 10) -> Path:
    """A prepared-format dataset file of random images (for machines without the data)."""
    from ddbench.data.h5io import write_h5

    rng = np.random.default_rng(0)
    path = folder / "synthetic.h5"
    write_h5(
        path,
        "dataset",
        {
            "train/images": rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
            "train/labels": rng.integers(0, k, n).astype(np.int64),
            "test/images": rng.integers(0, 256, (100, side, side, 3), dtype=np.uint8),
            "test/labels": rng.integers(0, k, 100).astype(np.int64),
        },
        created_by="bench/gpu_throughput.py",
        compress=False,
        attrs={
            "name": "synthetic",
            "classes": json.dumps([str(c) for c in range(k)]),
            "mean": [0.5] * 3,
            "std": [0.25] * 3,
        },
    )
    return path


def run(args, path: Path, device: torch.device) -> dict:
    memory = load_dataset(path)
    stream = load_dataset(path, in_memory_max_bytes=0)
    k, c, s = memory.num_classes, memory.in_chans, memory.image_size
    y_all = torch.from_numpy(memory.train_labels)
    n_set = args.batch * 8
    pick = np.random.default_rng(0).choice(len(y_all), n_set, replace=False)
    x_set = torch.from_numpy(memory.train_float_subset(pick))
    y_set = y_all[pick]

    def model(seed: int):
        torch.manual_seed(seed)
        return build_classifier(args.model, k, c, s, memory.mean, memory.std).to(device)

    steps_per_epoch = n_set // args.batch
    epochs = max(1, args.steps // steps_per_epoch)
    set_protocol = resolve_protocol(
        "bench",
        {
            "preset": "hl",
            "epochs": epochs,
            "augment": args.augment,
            "batch_size": args.batch,
            "amp": args.amp,
        },
    )
    split_p, n_full = split_protocol(args.steps, args.batch, augment=args.augment, amp=args.amp)
    fused = device.type == "cuda"
    rates: dict[str, list[float]] = {"bare": [], "engine_set": [], "engine_streaming": []}
    for r in range(args.repeats):
        m = model(r)
        opt = torch.optim.SGD(
            m.parameters(),
            lr=0.01,
            momentum=0.9,
            weight_decay=5e-4,
            **({"fused": True} if fused else {}),
        )
        rates["bare"].append(
            bare_loop(
                m,
                x_set.to(device),
                y_set.to(device),
                epochs * steps_per_epoch,
                args.batch,
                device=device,
                optimizer=opt,
            )
        )
        res = train(
            model(r),
            x_set,
            y_set,
            set_protocol,
            seed=r,
            n_full=n_set,
            device=device,
            desc="engine set",
        )
        rates["engine_set"].append(res.images_per_s)
        res = train(
            model(r),
            data_source(stream),
            y_all,
            split_p,
            seed=r,
            n_full=n_full,
            device=device,
            desc="engine streaming",
        )
        rates["engine_streaming"].append(res.images_per_s)
    best = {key: max(v) for key, v in rates.items()}
    return {
        "dataset": str(path),
        "train_images": len(y_all),
        "image_shape": [c, s, s],
        "set_images": n_set,
        **{f"{key}_images_per_s": v for key, v in best.items()},
        "ratio_engine_set_over_bare": best["engine_set"] / best["bare"],
        "ratio_engine_streaming_over_bare": best["engine_streaming"] / best["bare"],
        "loader_streaming_images_per_s": loader_rate(data_source(stream), 100, args.batch, device),
        "loader_in_memory_images_per_s": loader_rate(data_source(memory), 100, args.batch, device),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dataset", help="a prepared dataset file (default: synthetic 32x32 RGB)")
    ap.add_argument("--model", default="convnet-d3-w128-in")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--augment", default="none", choices=["none", "dsa", "rrc_flip"])
    ap.add_argument("--amp", action="store_true", help="bf16 autocast (+ channels_last) on CUDA")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    set_determinism(0, args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    head = {
        "device": torch.cuda.get_device_name(0) if cuda else "cpu",
        "model": args.model,
        "batch": args.batch,
        "steps": args.steps,
        "augment": args.augment,
        "amp": args.amp and cuda,
    }
    if not cuda:
        head["note"] = "CUDA is not available: these are CPU figures, not a GPU measurement"
        print(f"note: {head['note']}", file=sys.stderr)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.dataset) if args.dataset else synthetic_dataset(Path(tmp))
        print(json.dumps({**head, **run(args, path, device)}, indent=2))


if __name__ == "__main__":
    main()
