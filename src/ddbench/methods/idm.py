"""Improved distribution matching (IDM; Zhao, Li, Qin & Bilen, CVPR 2023).

IDM keeps DM's objective (per class, the squared L2 distance between the mean embedding of
a real batch and of the class's synthetic images, under siamese DSA) and adds three parts:

- partitioning and expansion: every stored synthetic image is cut into factor × factor parts
  and each part is upsampled (bilinear) back to the full size, so one stored image stands
  for factor² training-time images (`partition_expand`);
- efficient and enriched model sampling: instead of a freshly initialised network per
  iteration, a queue of networks at different stages of training on real data
  (`ModelQueue`); every iteration one of them, drawn at random, embeds the images;
- class-aware distribution regularisation: λ × cross-entropy of that network's logits on the
  (expanded, augmented) synthetic images against their labels (λ = 0.5 in the paper).

Everything is deterministic from the seed: real images, batches, the matching network's
slot and the augmentations come from a numpy Generator and a torch.Generator seeded by it,
network initialisations from a forked torch RNG seeded by (seed, slot, generation); the clock
is never read. torch is imported inside the functions only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import numpy as np

from ddbench.errors import check_finite_loss
from ddbench.methods.base import CondensedSet, Context, Method, register_method
from ddbench.methods.matching import _device
from ddbench.methods.synthesis import _real_init

IDM_DEFAULTS = {
    "model": "convnet-d3-w32-in",
    "iterations": 200,
    "lr": 0.2,
    "momentum": 0.5,
    "batch_real": 64,
    "dsa": True,
    "factor": 2,
    "ce_weight": 0.5,
    "num_models": 5,
    "net_train_steps": 1,
    "net_max_steps": 100,
    "net_batch": 256,
    "net_lr": 0.01,
    "net_momentum": 0.9,
    "decode": True,
}


# ------------------------------------------------------------------ partition and expansion


def partition_expand(x, factor: int):
    """Cut each image of `x` [N, C, H, W] into factor × factor parts and upsample each part
    (bilinear, `align_corners=False`) back to H × W: [N · factor², C, H, W].

    The parts of image n are rows n · factor² … (n + 1) · factor² − 1, in row-major order
    (top-left, top-right, …, bottom-right). Part boundaries are at ⌊i · H / factor⌋ and
    ⌊j · W / factor⌋, so a size not divisible by `factor` gives parts whose sides differ by
    at most one pixel. `factor` 1 returns `x` itself. Differentiable w.r.t. `x`.
    """
    import torch
    import torch.nn.functional as F

    factor = int(factor)
    if factor < 1:
        raise ValueError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return x
    n, c, h, w = x.shape
    if factor > h or factor > w:
        raise ValueError(
            f"factor {factor} cannot partition images of size {h}x{w}: each of the "
            f"{factor}x{factor} parts needs at least one pixel (lower factor)"
        )
    rows = [i * h // factor for i in range(factor + 1)]
    cols = [j * w // factor for j in range(factor + 1)]
    parts = [
        F.interpolate(
            x[:, :, rows[i] : rows[i + 1], cols[j] : cols[j + 1]],
            size=(h, w),
            mode="bilinear",
            align_corners=False,
        )
        for i in range(factor)
        for j in range(factor)
    ]
    return torch.stack(parts, dim=1).reshape(n * factor * factor, c, h, w)


# ------------------------------------------------------------------ the loss of one class


def _features_and_logits(net, x, logits: bool):
    """The embedding of `x` and, when asked, the class logits (one forward for a ConvNet)."""
    from ddbench.training.models import ConvNet

    feats = net.features(x)
    if not logits:
        return feats, None
    backbone = getattr(net, "backbone", None)
    if isinstance(backbone, ConvNet):  # forward = classifier(features)
        return feats, backbone.classifier(feats)
    return feats, net(x)


def class_idm_loss(
    net, x_real, x_syn, label: int, *, factor: int, ce_weight: float, dsa=None, dsa_params=None
):
    """IDM's loss of one class for the network `net`: (matching, cross-entropy) tensors.

    The class's stored synthetic images `x_syn` are expanded (`partition_expand`), then, with
    `dsa` and `dsa_params` given, the real batch and the expanded images get the same sampled
    augmentation (siamese). matching = ||mean f(real) − mean f(synthetic)||², f = the network's
    embedding (`features`), the real side a constant; cross-entropy = the mean CE of the
    network's logits on the augmented expanded images against `label` (computed only when
    `ce_weight` > 0, else a zero tensor). With factor 1, `ce_weight` 0 and a fixed network
    the matching term is DM's loss for the class.
    """
    import torch
    import torch.nn.functional as F

    x_syn = partition_expand(x_syn, factor)
    if dsa is not None:
        x_real, x_syn = dsa.apply(x_real, dsa_params), dsa.apply(x_syn, dsa_params)
    with torch.no_grad():
        e_real = net.features(x_real).mean(0)
    e_syn, logits = _features_and_logits(net, x_syn, ce_weight > 0)
    match = ((e_real - e_syn.mean(0)) ** 2).sum()
    if logits is None:
        return match, torch.zeros((), device=match.device)
    y = torch.full((len(x_syn),), int(label), dtype=torch.long, device=x_syn.device)
    return match, F.cross_entropy(logits, y)


# ------------------------------------------------------------------ the model queue


def _model_seed(seed: int, slot: int, generation: int) -> int:
    return int(
        np.random.SeedSequence([int(seed), int(slot), int(generation), 13]).generate_state(1)[0]
    )


def queue_model(model: str, data, seed: int, slot: int, generation: int):
    """The network of queue slot `slot` in its `generation`-th initialisation (on the CPU).

    Built under a forked torch RNG seeded by (seed, slot, generation): the same triple gives
    the same parameters, and the global RNG is left as it was.
    """
    import torch

    from ddbench.training.engine import build_classifier

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_model_seed(seed, slot, generation))
        return build_classifier(
            model, data.num_classes, data.in_chans, data.image_size, data.mean, data.std
        )


class ModelQueue:
    """`num_models` networks trained on real data, each retired once past `max_steps` steps.

    `make(slot, generation)` builds the network of a slot (deterministically: the caller seeds
    it from the pair). Each network has its own SGD optimiser (`lr`, `momentum`, no weight
    decay) and a counter of the SGD steps it has taken (`steps`); `generations[k]` counts how
    often slot k was re-initialised. `stagger` trains slot k for ⌊k · (max_steps + 1) /
    num_models⌋ steps up front (`head_start`), so the queue holds networks at evenly spread
    stages of training from the first iteration on and their retirements do not all fall on
    the same iteration.
    """

    def __init__(
        self,
        make: Callable[[int, int], object],
        num_models: int,
        *,
        lr: float,
        momentum: float,
        max_steps: int,
    ) -> None:
        if num_models < 1:
            raise ValueError(f"num_models must be >= 1, got {num_models}")
        if max_steps < 1:
            raise ValueError(f"net_max_steps must be >= 1, got {max_steps}")
        self.make, self.lr, self.momentum = make, float(lr), float(momentum)
        self.max_steps = int(max_steps)
        self.models: list = []
        self.opts: list = []
        self.steps: list[int] = []
        self.generations: list[int] = []
        for k in range(int(num_models)):
            self.models.append(None)
            self.opts.append(None)
            self.steps.append(0)
            self.generations.append(-1)
            self._renew(k)

    def __len__(self) -> int:
        return len(self.models)

    def _renew(self, k: int) -> None:
        from ddbench.training import optim

        self.generations[k] += 1
        net = self.make(k, self.generations[k])
        net.train()
        self.models[k] = net
        self.opts[k] = optim.SGD(list(net.parameters()), lr=self.lr, momentum=self.momentum)
        self.steps[k] = 0

    def head_start(self, k: int) -> int:
        """Steps slot k is trained for before the first iteration when staggering."""
        return k * (self.max_steps + 1) // len(self.models)

    def train_step(self, k: int, x, y) -> float:
        """One SGD step of network k on the batch (x, y) with cross-entropy; its loss."""
        import torch.nn.functional as F

        net, opt = self.models[k], self.opts[k]
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        opt.zero_grad()
        self.steps[k] += 1
        return float(loss.detach())

    def retire(self) -> list[int]:
        """Re-initialise every network trained for more than `max_steps` steps; their slots."""
        old = [k for k, s in enumerate(self.steps) if s > self.max_steps]
        for k in old:
            self._renew(k)
        return old

    def advance(self, batch: Callable[[], tuple], steps: int) -> list[int]:
        """Train every network `steps` SGD steps on batches from `batch()`, then `retire`."""
        for k in range(len(self.models)):
            for _ in range(int(steps)):
                self.train_step(k, *batch())
        return self.retire()

    def stagger(self, batch: Callable[[], tuple]) -> None:
        """Train slot k for `head_start(k)` steps (ages 0, …, < max_steps across the queue)."""
        for k in range(len(self.models)):
            for _ in range(self.head_start(k)):
                self.train_step(k, *batch())


# ------------------------------------------------------------------ the method


@register_method("idm")
class ImprovedDistributionMatching(Method):
    """IDM: DM on partitioned-and-expanded images, a queue of trained nets, plus a CE term.

    Per iteration: one network of the queue (drawn with the seeded generator) embeds a real
    batch and the class's expanded synthetic images (siamese DSA); the images take one SGD
    step on Σ_c ||mean f(real_c) − mean f(expand(syn_c))||² + ce_weight · CE(net(expand(syn_c)),
    c) with the network's parameters frozen, and are clamped to [0, 1]; then every network of
    the queue takes `net_train_steps` SGD steps of cross-entropy on `net_batch` real images
    (DSA-augmented when `dsa`), and a network past `net_max_steps` steps is replaced by a
    freshly initialised one. The queue starts staggered (slot k pre-trained for
    ⌊k · (net_max_steps + 1) / num_models⌋ steps) when `net_train_steps` > 0.

    The stored set is the un-expanded images, `ipc` per class, like DM's (the storage budget is
    IPC images). With `decode` (default) and `factor` > 1 the set records `decode_factor`, and
    evaluation trains the student on the factor² decoded images of every stored image with the
    stored image's label, as IDM's evaluation does (`ddbench.training.evaluate.decode_set`);
    with `decode: false` the protocols train on the stored images as they are.

    Memory: every step holds the graph of factor² × ipc expanded synthetic images per class
    (all classes before the backward pass), and `num_models` networks with their momentum
    buffers stay resident for the whole run.
    """

    param_schema = {
        "type": "object",
        "properties": {
            "model": {
                "type": "string",
                "default": IDM_DEFAULTS["model"],
                "description": "embedding network of the queue (each slot re-initialised when "
                "retired)",
            },
            "iterations": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["iterations"],
                "description": "image updates (the paper runs 20000 on a GPU; the default is "
                "sized for a CPU, as DM's)",
            },
            "lr": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": IDM_DEFAULTS["lr"],
                "description": "SGD step on the pixels, which live in [0, 1] (DM's 1.0 scaled "
                "by the paper's IDM/DM image learning-rate ratio 0.2/1)",
            },
            "momentum": {"type": "number", "minimum": 0, "default": IDM_DEFAULTS["momentum"]},
            "batch_real": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["batch_real"],
                "description": "real images per class per iteration for the matching term",
            },
            "dsa": {
                "type": "boolean",
                "default": IDM_DEFAULTS["dsa"],
                "description": "siamese DSA in matching; DSA on the queue's training batches",
            },
            "factor": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["factor"],
                "description": "partition each stored image into factor × factor parts, each "
                "upsampled to full size (1 = no expansion)",
            },
            "ce_weight": {
                "type": "number",
                "minimum": 0,
                "default": IDM_DEFAULTS["ce_weight"],
                "description": "λ of the class-aware cross-entropy on the synthetic images "
                "(paper 0.5; 0 = off)",
            },
            "num_models": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["num_models"],
                "description": "networks in the queue (the paper keeps about 100 on a GPU)",
            },
            "net_train_steps": {
                "type": "integer",
                "minimum": 0,
                "default": IDM_DEFAULTS["net_train_steps"],
                "description": "SGD steps each queued network takes per iteration (0 = the "
                "networks stay at their initialisation)",
            },
            "net_max_steps": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["net_max_steps"],
                "description": "a network trained for more steps than this is re-initialised",
            },
            "net_batch": {
                "type": "integer",
                "minimum": 1,
                "default": IDM_DEFAULTS["net_batch"],
                "description": "real images (any class, drawn with replacement) per network "
                "training step",
            },
            "net_lr": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": IDM_DEFAULTS["net_lr"],
                "description": "SGD step of the queued networks",
            },
            "net_momentum": {
                "type": "number",
                "minimum": 0,
                "exclusiveMaximum": 1,
                "default": IDM_DEFAULTS["net_momentum"],
                "description": "momentum of the queued networks' SGD (no weight decay)",
            },
            "decode": {
                "type": "boolean",
                "default": IDM_DEFAULTS["decode"],
                "description": "evaluation trains on the factor² decoded images of every stored "
                "image (the set records decode_factor), as IDM evaluates; false trains on the "
                "stored images as they are",
            },
        },
        "additionalProperties": False,
    }

    def resolved(self) -> dict:
        """The parameters with the defaults filled in."""
        return {**IDM_DEFAULTS, **self.params}

    def check_params(self) -> None:
        from ddbench.training.models import parse_model_name

        try:
            parse_model_name(self.resolved()["model"])
        except ValueError as exc:
            raise ValueError(f"model: {exc}") from None

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch
        from tqdm import tqdm

        from ddbench.training import optim
        from ddbench.training.augment import DSA
        from ddbench.training.engine import data_source

        p = self.resolved()
        data = ctx.data
        factor = int(p["factor"])
        if factor > data.image_size:
            raise ValueError(
                f"factor {factor} cannot partition the {data.image_size}x{data.image_size} "
                f"images of dataset {data.name!r}: each part needs at least one pixel"
            )
        dev = _device(ctx)
        rng = np.random.default_rng(seed)
        init, labels = _real_init(ctx, ipc, rng)
        gen = torch.Generator().manual_seed(int(seed))
        syn = torch.tensor(init, device=dev, requires_grad=True)
        opt = optim.SGD([syn], lr=p["lr"], momentum=p["momentum"])
        real = data_source(data)  # batches read as needed, never the split as float
        per_class = [torch.from_numpy(i) for i in data.class_indices()]
        train_labels = torch.from_numpy(np.asarray(data.train_labels, dtype=np.int64))
        dsa = DSA() if p["dsa"] else None

        def make(slot: int, generation: int):
            return queue_model(p["model"], data, seed, slot, generation).to(dev)

        def real_batch():
            idx = torch.randint(len(train_labels), (int(p["net_batch"]),), generator=gen)
            x = real.batch(idx, dev)
            if dsa is not None:
                x = dsa(x, gen)
            return x, train_labels[idx].to(dev)

        queue = ModelQueue(
            make,
            int(p["num_models"]),
            lr=p["net_lr"],
            momentum=p["net_momentum"],
            max_steps=int(p["net_max_steps"]),
        )
        if int(p["net_train_steps"]) > 0:
            queue.stagger(real_batch)
        self.losses_, self.match_losses_, self.ce_losses_ = [], [], []
        self.retired_ = 0
        for it in tqdm(range(p["iterations"]), desc="idm", file=sys.stderr, mininterval=2.0):
            k = int(torch.randint(len(queue), (1,), generator=gen))
            net = queue.models[k]
            for q in net.parameters():
                q.requires_grad_(False)  # the images' gradient only
            match = torch.zeros((), device=dev)
            ce = torch.zeros((), device=dev)
            for c, idx in enumerate(per_class):
                pick = idx[torch.randperm(len(idx), generator=gen)[: p["batch_real"]]]
                x_real = real.batch(pick, dev)
                shared = dsa.sample_params(1, gen) if dsa is not None else None  # siamese
                m_c, ce_c = class_idm_loss(
                    net,
                    x_real,
                    syn[c * ipc : (c + 1) * ipc],
                    c,
                    factor=factor,
                    ce_weight=float(p["ce_weight"]),
                    dsa=dsa,
                    dsa_params=shared,
                )
                match, ce = match + m_c, ce + ce_c
            loss = match + float(p["ce_weight"]) * ce
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                syn.clamp_(0.0, 1.0)
            for q in net.parameters():
                q.requires_grad_(True)
            self.losses_.append(float(loss.detach()))
            self.match_losses_.append(float(match.detach()))
            self.ce_losses_.append(float(ce.detach()))
            check_finite_loss(
                self.losses_[-1], what="idm", step=it + 1, hint=f"lower the method's lr ({p['lr']})"
            )
            if int(p["net_train_steps"]) > 0:
                self.retired_ += len(queue.advance(real_batch, int(p["net_train_steps"])))
        return CondensedSet(
            images=syn.detach().cpu().numpy().astype(np.float32),
            labels=labels,
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
            extra_attrs={"decode_factor": factor} if p["decode"] and factor > 1 else {},
        )
