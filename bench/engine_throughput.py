"""Training throughput of ddbench's engine vs a bare PyTorch loop: same model, batch, threads, one run.

    .venv/bin/python bench/engine_throughput.py [--model convnet-d3-w32-in] [--steps 60] [--threads 2]
    .venv/bin/python bench/engine_throughput.py --dataset resources/datasets/fashion_mnist.h5

Both loops train the same freshly seeded model on the same batch stream with SGD; the engine
runs protocol `hl` without augmentation (augmentation is part of a protocol, not of the
loop's overhead). Reported: images/s of each and the ratio engine / bare.

Without `--dataset` the stream is a random 1x28x28 tensor. With `--dataset FILE` (a prepared
dataset) the loops run `--steps` steps over a random permutation of the whole training split:
the bare loop indexes the split held as float, the engine reads it through `data_source`
with the in-memory switch on (uint8 in memory, float per batch) and off (every batch read
from the HDF5 file); `loader_*` is the images/s of reading those batches alone.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from ddbench.training.engine import build_classifier, set_determinism, train
from ddbench.training.protocols import resolve_protocol


def bare_loop(model, x, y, steps, batch, lr=0.01, device=None, optimizer=None):
    """The reference loop: index, forward, cross-entropy, SGD step; images/s."""
    device = device or torch.device("cpu")
    opt = optimizer or torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(0)
    n = len(x)
    model.train()
    t0 = time.perf_counter()
    done = 0
    while done < steps:
        perm = torch.randperm(n, generator=gen)
        for b in range(n // batch):
            if done >= steps:
                break
            idx = perm[b * batch : (b + 1) * batch].to(x.device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return steps * batch / (time.perf_counter() - t0)


def loader_rate(source, steps, batch, device=None):
    """Images/s of reading `steps` random batches from a `Source` onto `device` (no model)."""
    device = device or torch.device("cpu")
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(source), generator=gen)
    t0 = time.perf_counter()
    done = 0
    for b in range(steps):
        idx = perm[(b * batch) % (len(source) - batch + 1) :][:batch]
        done += len(source.batch(idx, device))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return done / (time.perf_counter() - t0)


def split_protocol(steps: int, batch: int, **over):
    """(`hl` without augmentation, n_full): exactly `steps` steps over a split of any size."""
    spec = {"preset": "hl", "full_epochs": 1, "augment": "none", "batch_size": batch, **over}
    return resolve_protocol("bench", spec), steps * batch  # ceil(1 * n_full / batch) = steps


def dataset_run(args) -> dict:
    """Bare loop on the float split vs the engine with the in-memory switch on and off."""
    from ddbench.data.datasets import load_dataset
    from ddbench.training.engine import data_source

    memory = load_dataset(args.dataset)
    stream = load_dataset(args.dataset, in_memory_max_bytes=0)
    x = torch.from_numpy(memory.train_float())
    y = torch.from_numpy(memory.train_labels)
    k, c, s = memory.num_classes, memory.in_chans, memory.image_size
    protocol, n_full = split_protocol(args.steps, args.batch)
    rates = {"bare": [], "engine_in_memory": [], "engine_streaming": []}
    for r in range(args.repeats):  # interleaved, so drift in machine load hits all alike
        torch.manual_seed(r)
        m = build_classifier(args.model, k, c, s, memory.mean, memory.std)
        rates["bare"].append(bare_loop(m, x, y, args.steps, args.batch))
        for key, data in (("engine_in_memory", memory), ("engine_streaming", stream)):
            torch.manual_seed(r)
            m = build_classifier(args.model, k, c, s, memory.mean, memory.std)
            res = train(m, data_source(data), y, protocol, seed=r, n_full=n_full, desc=key)
            rates[key].append(res.images_per_s)
    best = {key: max(v) for key, v in rates.items()}
    loader = {
        "loader_in_memory_images_per_s": loader_rate(data_source(memory), 200, args.batch),
        "loader_streaming_images_per_s": loader_rate(data_source(stream), 200, args.batch),
    }
    return {
        "dataset": str(args.dataset),
        "train_images": len(y),
        **{f"{key}_images_per_s": v for key, v in best.items()},
        "ratio_in_memory_over_bare": best["engine_in_memory"] / best["bare"],
        "ratio_streaming_over_bare": best["engine_streaming"] / best["bare"],
        **loader,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="convnet-d3-w32-in")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--dataset", help="a prepared dataset file: compare the in-memory switch")
    args = ap.parse_args()
    set_determinism(0, args.threads)
    head = {"model": args.model, "batch": args.batch, "threads": args.threads}
    if args.dataset:
        print(json.dumps({**head, "steps": args.steps, **dataset_run(args)}, indent=2))
        return
    n = args.batch * 8
    x = torch.rand(n, 1, 28, 28)
    y = torch.randint(0, 10, (n,))
    steps_per_epoch = n // args.batch
    epochs = max(1, args.steps // steps_per_epoch)
    protocol = resolve_protocol(
        "bench", {"preset": "hl", "epochs": epochs, "augment": "none", "batch_size": args.batch}
    )
    bare, eng = [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        torch.manual_seed(r)
        m = build_classifier(args.model, 10, 1, 28, [0.5], [0.25])
        bare.append(bare_loop(m, x, y, epochs * steps_per_epoch, args.batch))
        torch.manual_seed(r)
        m = build_classifier(args.model, 10, 1, 28, [0.5], [0.25])
        res = train(m, x, y, protocol, seed=r, n_full=n, desc="engine")
        eng.append(res.images_per_s)
    out = {
        **head,
        "steps": epochs * steps_per_epoch,
        "bare_images_per_s": max(bare),
        "engine_images_per_s": max(eng),
        "ratio_engine_over_bare": max(eng) / max(bare),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
