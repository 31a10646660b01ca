"""Time of one TM-loss student step (forward + gradient w.r.t. the flat parameter vector) on a
model's flat parameters, with the parameters viewed by one `split` (what
`ExpertTrajectories.unflatten` does) and by one slice per parameter tensor (what it did before),
in one run on this machine; the two gradients are checked equal.

    .venv/bin/python bench/tm_loss_step.py [--model timm:resnet18] [--stem imagenet] [--images 10]
"""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="timm:resnet18")
    ap.add_argument(
        "--stem",
        choices=["imagenet", "small", "auto"],
        default="imagenet",
        help="timm ResNets: the ImageNet stem (the matching study's resnet18 experts), the "
        "3x3 small stem, or the model default (small up to 64 px)",
    )
    ap.add_argument("--images", type=int, default=10, help="synthetic images per step")
    ap.add_argument("--size", type=int, default=28)
    ap.add_argument("--channels", type=int, default=1)
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.func import functional_call

    from ddbench.training.models import create_model

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = (args.channels, args.size, args.size)
    extra = {}
    if args.model.startswith("timm:"):
        extra["small_stem"] = {"imagenet": False, "small": True, "auto": None}[args.stem]
    model = create_model(args.model, args.classes, args.channels, args.size, **extra)

    names = [n for n, _ in model.named_parameters()]
    shapes = [tuple(p.shape) for _, p in model.named_parameters()]
    sizes = [int(np.prod(s)) if s else 1 for s in shapes]
    flat0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.images, *shape)
    y = torch.arange(args.images) % args.classes

    def by_split(flat):
        return {n: t.view(s) for n, s, t in zip(names, shapes, flat.split(sizes), strict=True)}

    def by_slice(flat):
        out, start = {}, 0
        for n, s, k in zip(names, shapes, sizes, strict=True):
            out[n] = flat[start : start + k].view(s)
            start += k
        return out

    def step(views):
        flat = flat0.clone().requires_grad_(True)
        ce = F.cross_entropy(functional_call(model, views(flat), (x,)), y)
        (g,) = torch.autograd.grad(ce, flat)
        return g

    grads, times = {}, {}
    for name, views in (("split", by_split), ("slice per tensor", by_slice)):
        grads[name] = step(views)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            step(views)
        times[name] = (time.perf_counter() - t0) / args.repeats
    same = torch.equal(grads["split"], grads["slice per tensor"])
    print(
        f"{args.model}: {len(names)} parameter tensors, {flat0.numel():,} parameters, "
        f"{args.images} images of {shape}, {args.threads} thread(s)"
    )
    for name, t in times.items():
        print(f"  {name:>16}: {t * 1000:8.1f} ms per step")
    print(f"  ratio slice / split: {times['slice per tensor'] / times['split']:.1f}x")
    print(f"  gradients identical: {same}")


if __name__ == "__main__":
    main()
