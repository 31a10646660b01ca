"""Matching-based distillation: gradient matching (DC, DSA) and trajectory matching (MTT, DATM).

All four synthesise images by gradient descent from real images (`source_indices` is absent)
and are deterministic from the seed: real images, batches and augmentations are drawn from a
numpy Generator and a torch.Generator seeded by it, and network initialisations from a forked
torch RNG seeded by (seed, iteration); the clock is never read. torch is imported inside the
methods only.

- `dc` (Zhao, Mopuri & Bilen, ICLR 2021) and `dsa` (Zhao & Bilen, ICML 2021): per class, the
  gradients of the cross-entropy w.r.t. the network weights on a real batch and on the
  class's synthetic images are matched layer by layer; `dsa` applies the same sampled
  augmentation parameters to both batches (siamese) and augments the network's training on
  the synthetic set too.
- `mtt` (Cazenavette et al., CVPR 2022): a student starts from an expert's parameters at
  epoch t and takes N SGD steps on synthetic minibatches with a learnable learning rate; the
  loss is ||θ_N − θ*_{t+M}||² / ||θ*_t − θ*_{t+M}||². Needs expert trajectories (the
  `experts` input, `ddbench.stages.experts`).
- `datm` (Guo et al., ICLR 2024): MTT whose start-epoch range moves with IPC, plus soft labels
  initialised from an expert's logits on correctly classified real images and learned jointly.
"""

from __future__ import annotations

import sys

import numpy as np

from ddbench.errors import ConfigError, check_finite_loss
from ddbench.methods.base import CondensedSet, Context, Method, register_method
from ddbench.methods.synthesis import _real_init

# DC's outer/inner loops by IPC (the paper's `get_loops`): IPC -> (outer_loop, inner_loop);
# an IPC between two rows takes the next larger row, above the last the last row.
PAPER_LOOPS = ((1, 1, 1), (10, 10, 50), (20, 20, 25), (30, 30, 20), (40, 40, 15), (50, 50, 10))


def paper_loops(ipc: int) -> tuple[int, int]:
    """(outer_loop, inner_loop) of the DC/DSA papers for `ipc`."""
    for up_to, outer, inner in PAPER_LOOPS:
        if ipc <= up_to:
            return outer, inner
    return PAPER_LOOPS[-1][1], PAPER_LOOPS[-1][2]


def _device(ctx: Context):
    import torch

    from ddbench.training.engine import resolve_device

    dev = ctx.device
    if isinstance(dev, torch.device):
        return dev
    return resolve_device(str(dev or "cpu"))


def _seeded_init(seed: int, it: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(it), 7]).generate_state(1)[0])


# ------------------------------------------------------------------ gradient matching


def gradient_distance(g_syn, g_real):
    """DC's layer-wise distance ("ours" in the paper's `match_loss`).

    For every weight tensor of rank >= 2 (conv [out, in, k, k], linear [out, in]), reshaped to
    [out, -1]: the sum over output units of 1 − cos(g_syn[o], g_real[o]) (cosine with 1e-6 added
    to the norm product). Rank-1 tensors (biases, normalisation scales and shifts) are left
    out, as the authors' implementation does. Identical gradients give (almost) zero.
    """
    import torch

    total = torch.zeros((), device=g_syn[0].device)
    for gs, gr in zip(g_syn, g_real, strict=True):
        if gs.dim() < 2:
            continue
        gs = gs.reshape(gs.shape[0], -1)
        gr = gr.reshape(gr.shape[0], -1)
        cos = (gs * gr).sum(-1) / (gs.norm(dim=-1) * gr.norm(dim=-1) + 1e-6)
        total = total + (1.0 - cos).sum()
    return total


def class_gradient_loss(net, x_real, x_syn, label: int):
    """Gradient-matching loss of one class: distance between the weight gradients of CE on a
    real batch (a constant) and on the synthetic images (differentiable w.r.t. them)."""
    import torch
    import torch.nn.functional as F

    params = [q for q in net.parameters() if q.requires_grad]
    y_real = torch.full((len(x_real),), label, dtype=torch.long, device=x_real.device)
    y_syn = torch.full((len(x_syn),), label, dtype=torch.long, device=x_syn.device)
    g_real = torch.autograd.grad(F.cross_entropy(net(x_real), y_real), params)
    g_real = [g.detach() for g in g_real]
    g_syn = torch.autograd.grad(F.cross_entropy(net(x_syn), y_syn), params, create_graph=True)
    return gradient_distance(g_syn, g_real)


_GM_DEFAULTS = {
    "model": "convnet-d3-w128-in",
    "iterations": 20,
    "outer_loop": None,
    "inner_loop": None,
    "lr_img": 0.1,
    "momentum_img": 0.5,
    "lr_net": 0.01,
    "batch_real": 256,
    "batch_train": 256,
}


@register_method("dc")
class GradientMatching(Method):
    """DC: match per-class weight gradients of real and synthetic batches over network inits."""

    dsa_default = False
    param_schema = {
        "type": "object",
        "properties": {
            "model": {
                "type": "string",
                "default": "convnet-d3-w128-in",
                "description": "the matching network (re-initialised every iteration)",
            },
            "iterations": {
                "type": "integer",
                "minimum": 1,
                "default": 20,
                "description": "random network initialisations (outer iterations); the "
                "papers use 1000, the default is sized for a CPU",
            },
            "outer_loop": {
                "type": ["integer", "null"],
                "minimum": 1,
                "default": None,
                "description": "image updates per initialisation (null = the paper's by IPC: "
                "1, 10, 20, 30, 40, 50 for IPC 1, 10, 20, 30, 40, 50)",
            },
            "inner_loop": {
                "type": ["integer", "null"],
                "minimum": 0,
                "default": None,
                "description": "epochs of network training on the synthetic set between image "
                "updates (null = the paper's by IPC: 1, 50, 25, 20, 15, 10)",
            },
            "lr_img": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 0.1,
                "description": "SGD step on the pixels (paper 0.1)",
            },
            "momentum_img": {"type": "number", "minimum": 0, "default": 0.5},
            "lr_net": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 0.01,
                "description": "SGD step of the network on the synthetic set (paper 0.01)",
            },
            "batch_real": {
                "type": "integer",
                "minimum": 1,
                "default": 256,
                "description": "real images per class per matching step (paper 256)",
            },
            "batch_train": {
                "type": "integer",
                "minimum": 1,
                "default": 256,
                "description": "batch of the network's training on the synthetic set",
            },
            "dsa": {
                "type": "boolean",
                "description": "siamese augmentation (default: false for dc, true for dsa)",
            },
        },
        "additionalProperties": False,
    }

    def resolved(self, ipc: int) -> dict:
        """The parameters with defaults and the IPC-dependent loops filled in."""
        p = {**_GM_DEFAULTS, "dsa": self.dsa_default, **self.params}
        outer, inner = paper_loops(ipc)
        if p["outer_loop"] is None:
            p["outer_loop"] = outer
        if p["inner_loop"] is None:
            p["inner_loop"] = inner
        return p

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch
        import torch.nn.functional as F
        from tqdm import tqdm

        from ddbench.training import optim
        from ddbench.training.augment import DSA
        from ddbench.training.engine import build_classifier, data_source

        p = self.resolved(ipc)
        data = ctx.data
        dev = _device(ctx)
        rng = np.random.default_rng(seed)
        init, labels = _real_init(ctx, ipc, rng)
        gen = torch.Generator().manual_seed(int(seed))
        syn = torch.tensor(init, device=dev, requires_grad=True)
        y_syn = torch.from_numpy(labels).to(dev)
        opt_img = optim.SGD([syn], lr=p["lr_img"], momentum=p["momentum_img"])
        real = data_source(data)  # per-class batches read as needed, never the split as float
        per_class = [torch.from_numpy(i) for i in data.class_indices()]
        dsa = DSA() if p["dsa"] else None
        n = len(syn)
        self.losses_ = []
        for it in tqdm(range(p["iterations"]), desc=self.kind, file=sys.stderr, mininterval=2.0):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(_seeded_init(seed, it))
                net = build_classifier(
                    p["model"],
                    data.num_classes,
                    data.in_chans,
                    data.image_size,
                    data.mean,
                    data.std,
                )
            net.to(dev).train()
            opt_net = optim.SGD(list(net.parameters()), lr=p["lr_net"])
            for ol in range(p["outer_loop"]):
                loss = torch.zeros((), device=dev)
                for c, idx in enumerate(per_class):
                    pick = idx[torch.randperm(len(idx), generator=gen)[: p["batch_real"]]]
                    x_real = real.batch(pick, dev)
                    x_syn = syn[c * ipc : (c + 1) * ipc]
                    if dsa is not None:
                        shared = dsa.sample_params(1, gen)  # one draw for both batches: siamese
                        x_real, x_syn = dsa.apply(x_real, shared), dsa.apply(x_syn, shared)
                    loss = loss + class_gradient_loss(net, x_real, x_syn, c)
                opt_img.zero_grad()
                loss.backward()
                opt_img.step()
                with torch.no_grad():
                    syn.clamp_(0.0, 1.0)
                self.losses_.append(float(loss.detach()))
                check_finite_loss(
                    self.losses_[-1],
                    what=self.kind,
                    step=len(self.losses_),
                    hint=f"lower the method's lr_img ({p['lr_img']})",
                )
                if ol == p["outer_loop"] - 1:
                    break
                x_train = syn.detach().clone()
                for _ in range(p["inner_loop"]):
                    perm = torch.randperm(n, generator=gen)
                    for b in range(0, n, p["batch_train"]):
                        sel = perm[b : b + p["batch_train"]].to(dev)
                        x = x_train[sel]
                        if dsa is not None:
                            x = dsa(x, gen)
                        net_loss = F.cross_entropy(net(x), y_syn[sel])
                        opt_net.zero_grad()
                        net_loss.backward()
                        opt_net.step()
                opt_net.zero_grad()
        return CondensedSet(
            images=syn.detach().cpu().numpy().astype(np.float32),
            labels=labels,
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
        )


@register_method("dsa")
class SiameseGradientMatching(GradientMatching):
    """DSA: gradient matching with the same sampled augmentation on real and synthetic batches."""

    dsa_default = True


# ------------------------------------------------------------------ trajectory matching


def trajectory_matching_loss(forward, start, target, batches, syn_lr, *, create_graph=True):
    """MTT's loss: ||θ_N − θ*_{t+M}||² / ||θ*_t − θ*_{t+M}||².

    The student starts at the expert's flat parameters `start` (θ*_t) and takes one SGD step
    θ ← θ − syn_lr · ∇θ CE(forward(θ, x), y) per `(x, y)` in `batches` (y: class indices or
    probabilities), keeping the graph, so the loss is differentiable w.r.t. the images inside
    the batches, soft targets and `syn_lr`. `forward(flat, x)` runs the model functionally.

    `create_graph=False` measures the loss only (the TM-loss analysis, `ddbench.analysis.
    tm_loss`): each step's θ is detached, so memory holds one step instead of the unroll.
    """
    import torch
    import torch.nn.functional as F

    theta = start.detach().clone().requires_grad_(True)
    for x, y in batches:
        ce = F.cross_entropy(forward(theta, x), y)
        (grad,) = torch.autograd.grad(ce, theta, create_graph=create_graph)
        theta = theta - syn_lr * grad
        if not create_graph:
            theta = theta.detach().requires_grad_(True)
    num = ((theta - target) ** 2).sum()
    den = ((start - target) ** 2).sum().clamp_min(1e-12)
    return num / den


_TM_SCHEMA_COMMON = {
    "experts": {
        "type": "string",
        "description": "the configured expert trajectories (experts section) to match",
    },
    "iterations": {
        "type": "integer",
        "minimum": 1,
        "default": 100,
        "description": "distillation steps (MTT: 5000; the default is sized for a CPU)",
    },
    "syn_steps": {
        "type": "integer",
        "minimum": 1,
        "default": 20,
        "description": "N: student SGD steps on synthetic minibatches per iteration",
    },
    "expert_epochs": {
        "type": "integer",
        "minimum": 1,
        "default": 2,
        "description": "M: the target is the expert M epochs after the start",
    },
    "batch_syn": {
        "type": ["integer", "null"],
        "minimum": 1,
        "default": None,
        "description": "synthetic images per student step (null = the whole set)",
    },
    "lr_img": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 100.0,
        "description": "SGD step on the pixels, which live in [0, 1] (the papers' 1000 on "
        "normalised / ZCA images is about 100 here)",
    },
    "momentum": {
        "type": "number",
        "minimum": 0,
        "default": 0.5,
        "description": "momentum of the image, learning-rate and label optimisers (MTT 0.5)",
    },
    "lr_lr": {
        "type": "number",
        "minimum": 0,
        "default": 1e-5,
        "description": "SGD step on the learnable synthetic learning rate (MTT 1e-5 / 1e-7)",
    },
    "syn_lr_init": {
        "type": ["number", "null"],
        "exclusiveMinimum": 0,
        "default": None,
        "description": "initial synthetic learning rate (null = the experts' lr, as MTT's "
        "lr_teacher)",
    },
    "min_syn_lr": {
        "type": "number",
        "exclusiveMinimum": 0,
        "default": 1e-6,
        "description": "the learnable learning rate is clamped to at least this after every step",
    },
    "dsa": {
        "type": "boolean",
        "default": True,
        "description": "DSA augmentation of every student minibatch",
    },
    "max_unrolled_images": {
        "type": "integer",
        "minimum": 1,
        "default": 20000,
        "description": "memory guard: syn_steps × batch size (the images whose activations "
        "the unrolled student keeps for the backward pass) may not exceed this",
    },
}


def _tm_defaults(schema: dict) -> dict:
    return {k: v["default"] for k, v in schema["properties"].items() if "default" in v}


class _TrajectoryMatching(Method):
    """Shared MTT/DATM loop; subclasses choose the start-epoch range and the labels."""

    requires = frozenset({"experts"})
    soft_labels = False

    def check_params(self) -> None:
        p = {**_tm_defaults(self.param_schema), **self.params}
        if (
            p["batch_syn"] is not None
            and p["syn_steps"] * p["batch_syn"] > p["max_unrolled_images"]
        ):
            raise ValueError(
                f"syn_steps: {p['syn_steps']} steps × batch_syn {p['batch_syn']} = "
                f"{p['syn_steps'] * p['batch_syn']} unrolled images exceeds max_unrolled_images "
                f"{p['max_unrolled_images']}; lower syn_steps or batch_syn, or raise the cap"
            )

    def start_range(self, p: dict, ipc: int, epochs: int) -> tuple[int, int]:
        raise NotImplementedError

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call
        from tqdm import tqdm

        from ddbench.stages.experts import load_experts
        from ddbench.training import optim
        from ddbench.training.augment import DSA

        p = {**_tm_defaults(self.param_schema), **self.params}
        data = ctx.data
        if "experts_path" not in ctx.extras:
            raise ConfigError(
                f"method kind {self.kind!r} needs expert trajectories: the context has no "
                "experts_path (name an experts entry in the method's `experts`)"
            )
        ex = load_experts(ctx.extras["experts_path"], dataset=data.name)
        where = ex.folder / "experts.json"
        shape = [data.in_chans, data.image_size, data.image_size]
        if (
            list(ex.info.get("image_shape", shape)) != shape
            or int(ex.info.get("num_classes", data.num_classes)) != data.num_classes
        ):
            raise ConfigError(
                f"{where}: experts were trained on images {ex.info.get('image_shape')} with "
                f"{ex.info.get('num_classes')} classes; the dataset has {shape}, "
                f"{data.num_classes}"
            )
        M = int(p["expert_epochs"])
        if M > ex.epochs:
            raise ConfigError(
                f"{self.kind} parameter expert_epochs: {M} is more than the "
                f"{ex.epochs} epochs the experts were trained for ({where})"
            )
        lo, hi = self.start_range(p, ipc, ex.epochs)
        n = ipc * data.num_classes
        bs = min(int(p["batch_syn"] or n), n)
        if int(p["syn_steps"]) * bs > int(p["max_unrolled_images"]):
            raise ConfigError(
                f"{self.kind} parameter syn_steps: {p['syn_steps']} steps × "
                f"{bs} images per step = {int(p['syn_steps']) * bs} unrolled images exceeds "
                f"max_unrolled_images {p['max_unrolled_images']} (memory grows with both); "
                "lower syn_steps or batch_syn, or raise max_unrolled_images"
            )
        dev = _device(ctx)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(int(seed))
        model = ex.make_model(data).to(dev)
        model.train()
        for q in model.parameters():
            q.requires_grad_(False)

        def forward(flat, x):
            return functional_call(model, ex.unflatten(flat), (x,))

        init, labels, label_logits, n_wrong = self.initial_set(ctx, ex, ipc, rng, forward, hi, dev)
        syn = torch.tensor(init, device=dev, requires_grad=True)
        y = torch.from_numpy(labels).to(dev)
        lr0 = float(p["syn_lr_init"] or ex.info.get("spec", {}).get("lr", 0.01))
        syn_lr = torch.tensor(lr0, device=dev, requires_grad=True)
        opt_img = optim.SGD([syn], lr=p["lr_img"], momentum=p["momentum"])
        opt_lr = optim.SGD([syn_lr], lr=p["lr_lr"], momentum=p["momentum"])
        opt_y = None
        if label_logits is not None:
            label_logits = label_logits.to(dev).requires_grad_(True)
            opt_y = optim.SGD([label_logits], lr=p["lr_y"], momentum=p["momentum_y"])
        dsa = DSA() if p["dsa"] else None
        self.losses_ = []
        self.syn_lrs_ = [lr0]
        for it in tqdm(range(p["iterations"]), desc=self.kind, file=sys.stderr, mininterval=2.0):
            e = int(rng.integers(ex.n_experts))
            t = int(rng.integers(lo, hi + 1))
            start = torch.from_numpy(ex.params(e, t)).to(dev)
            target = torch.from_numpy(ex.params(e, t + M)).to(dev)
            targets = y if label_logits is None else F.softmax(label_logits, dim=1)
            perm = torch.randperm(n, generator=gen)
            pos, batches = 0, []
            for _ in range(int(p["syn_steps"])):
                if pos + bs > n:  # a new epoch over the synthetic set
                    perm, pos = torch.randperm(n, generator=gen), 0
                idx = perm[pos : pos + bs].to(dev)
                pos += bs
                x = syn[idx]
                if dsa is not None:
                    x = dsa(x, gen)
                batches.append((x, targets[idx]))
            loss = trajectory_matching_loss(forward, start, target, batches, syn_lr)
            opt_img.zero_grad()
            opt_lr.zero_grad()
            if opt_y is not None:
                opt_y.zero_grad()
            loss.backward()
            opt_img.step()
            opt_lr.step()
            if opt_y is not None:
                opt_y.step()
            with torch.no_grad():
                syn.clamp_(0.0, 1.0)
                syn_lr.clamp_(min=float(p["min_syn_lr"]))
            self.losses_.append(float(loss.detach()))
            self.syn_lrs_.append(float(syn_lr.detach()))
            check_finite_loss(
                self.losses_[-1],
                what=self.kind,
                step=it + 1,
                hint=f"lower the method's lr_img ({p['lr_img']}) or lr_lr ({p['lr_lr']})",
            )
        soft = None
        if label_logits is not None:
            soft = F.softmax(label_logits.detach(), dim=1).cpu().numpy().astype(np.float32)
        attrs = {"syn_lr": float(syn_lr.detach()), "start_epochs": [lo, hi]}
        if label_logits is not None:
            # the stored soft labels are softmax(learned logits) at temperature 1
            attrs["init_misclassified"] = int(n_wrong)
            attrs["soft_label_temperature"] = 1.0
        return CondensedSet(
            images=syn.detach().cpu().numpy().astype(np.float32),
            labels=labels,
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
            soft_labels=soft,
            extra_attrs=attrs,
        )

    def initial_set(self, ctx, ex, ipc, rng, forward, hi, dev):
        """Real images, their labels, (no) label logits and 0 misclassified."""
        init, labels = _real_init(ctx, ipc, rng)
        return init, labels, None, 0


@register_method("mtt")
class TrajectoryMatching(_TrajectoryMatching):
    """MTT: match N unrolled student steps on the synthetic set to M epochs of an expert."""

    param_schema = {
        "type": "object",
        "properties": {
            **_TM_SCHEMA_COMMON,
            "max_start_epoch": {
                "type": "integer",
                "minimum": 0,
                "default": 20,
                "description": "T+: start epochs are drawn from 0..T+ (capped at the experts' "
                "epochs − expert_epochs)",
            },
        },
        "required": ["experts"],
        "additionalProperties": False,
    }

    def start_range(self, p: dict, ipc: int, epochs: int) -> tuple[int, int]:
        return 0, min(int(p["max_start_epoch"]), epochs - int(p["expert_epochs"]))


# DATM's start-epoch window by IPC: each row applies to IPCs up to `ipc`; larger IPCs take the
# last row. Small sets match early (easy) expert epochs, larger sets later (harder) ones.
DATM_START_EPOCHS = [
    {"ipc": 1, "min": 0, "max": 4},
    {"ipc": 10, "min": 0, "max": 20},
    {"ipc": 50, "min": 10, "max": 30},
    {"ipc": 500, "min": 20, "max": 40},
]


@register_method("datm")
class DifficultyAlignedTrajectoryMatching(_TrajectoryMatching):
    """DATM: trajectory matching with an IPC-dependent start window and learned soft labels."""

    param_schema = {
        "type": "object",
        "properties": {
            **_TM_SCHEMA_COMMON,
            "start_epochs": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["ipc", "min", "max"],
                    "properties": {
                        "ipc": {"type": "integer", "minimum": 1},
                        "min": {"type": "integer", "minimum": 0},
                        "max": {"type": "integer", "minimum": 0},
                    },
                },
                "default": DATM_START_EPOCHS,
                "description": "start-epoch window [min, max] by IPC: the first row whose `ipc` "
                "is at least the set's IPC (else the last); both ends are capped at the "
                "experts' epochs − expert_epochs",
            },
            "lr_y": {
                "type": "number",
                "minimum": 0,
                "default": 2.0,
                "description": "SGD step on the soft-label logits",
            },
            "momentum_y": {"type": "number", "minimum": 0, "default": 0.9},
        },
        "required": ["experts"],
        "additionalProperties": False,
    }
    soft_labels = True

    def check_params(self) -> None:
        super().check_params()
        rows = self.params.get("start_epochs", DATM_START_EPOCHS)
        for i, row in enumerate(rows):
            if row["min"] > row["max"]:
                raise ValueError(f"start_epochs: row {i} has min {row['min']} > max {row['max']}")
        ipcs = [row["ipc"] for row in rows]
        if ipcs != sorted(set(ipcs)):
            raise ValueError(f"start_epochs: the rows' ipc must increase strictly, got {ipcs}")

    def start_range(self, p: dict, ipc: int, epochs: int) -> tuple[int, int]:
        rows = p["start_epochs"]
        row = next((r for r in rows if ipc <= r["ipc"]), rows[-1])
        cap = epochs - int(p["expert_epochs"])
        hi = min(int(row["max"]), cap)
        return min(int(row["min"]), hi), hi

    def initial_set(self, ctx, ex, ipc, rng, forward, hi, dev):
        """Real images the expert (expert 0 at the window's last start epoch) classifies
        correctly, drawn in a seeded random order per class, and its logits on them; a class
        with too few correct images is filled with misclassified ones (counted)."""
        import torch

        data = ctx.data
        flat = torch.from_numpy(ex.params(0, hi)).to(dev)
        chosen, wrong = [], 0
        for c, idx in enumerate(data.class_indices()):
            if len(idx) < ipc:
                raise ValueError(
                    f"class {data.classes[c]!r} has {len(idx)} training images, fewer than IPC {ipc}"
                )
            order = rng.permutation(idx)
            good, bad = [], []
            for b in range(0, len(order), 256):
                part = order[b : b + 256]
                x = torch.from_numpy(
                    data.train_images[part].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
                )
                with torch.no_grad():
                    pred = forward(flat, x.to(dev)).argmax(1).cpu().numpy()
                good += part[pred == c].tolist()
                bad += part[pred != c].tolist()
                if len(good) >= ipc:
                    break
            pick = good[:ipc]
            if len(pick) < ipc:
                wrong += ipc - len(pick)
                pick += bad[: ipc - len(pick)]
            chosen.append(np.asarray(pick, dtype=np.int64))
        idx = np.concatenate(chosen)
        images = data.train_images[idx].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        labels = data.train_labels[idx].astype(np.int64)
        with torch.no_grad():
            logits = forward(flat, torch.from_numpy(images).to(dev)).detach().float()
        return images, labels, logits.cpu(), wrong
