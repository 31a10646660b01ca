"""Training throughput of ddbench's engine vs a bare PyTorch loop: same model, batch, threads, one run.

    .venv/bin/python bench/engine_throughput.py [--model convnet-d3-w32-in] [--steps 60] [--threads 2]

Both loops train the same freshly seeded model on the same random 1x28x28 batch stream with
SGD; the engine runs protocol `hl` without augmentation (augmentation is part of a protocol,
not of the loop's overhead). Reported: images/s of each and the ratio engine / bare.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from ddbench.training.engine import build_classifier, set_determinism, train
from ddbench.training.protocols import resolve_protocol


def bare_loop(model, x, y, steps, batch, lr=0.01):
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
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
            idx = perm[b * batch : (b + 1) * batch]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
    return steps * batch / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="convnet-d3-w32-in")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    set_determinism(0, args.threads)
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
        "model": args.model,
        "batch": args.batch,
        "threads": args.threads,
        "steps": epochs * steps_per_epoch,
        "bare_images_per_s": max(bare),
        "engine_images_per_s": max(eng),
        "ratio_engine_over_bare": max(eng) / max(bare),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
