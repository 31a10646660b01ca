"""Optimisation-based distillation: distribution matching (DM) and squeeze-recover-relabel (SRe2L).

Both synthesise images by gradient descent, so `source_indices` is absent; DM starts from
real images, SRe2L from noise. torch is imported inside the methods only.
"""

from __future__ import annotations

import sys

import numpy as np

from ddbench.errors import check_finite_loss
from ddbench.methods.base import CondensedSet, Context, Method, register_method


def _real_init(ctx: Context, ipc: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    for c, i in enumerate(ctx.data.class_indices()):
        if len(i) < ipc:
            raise ValueError(
                f"class {ctx.data.classes[c]!r} has {len(i)} training images, fewer than IPC {ipc}"
            )
    idx = np.concatenate([rng.choice(i, ipc, replace=False) for i in ctx.data.class_indices()])
    images = ctx.data.train_images[idx].transpose(0, 3, 1, 2).astype(np.float32) / 255.0
    return images, ctx.data.train_labels[idx].astype(np.int64)


@register_method("dm")
class DistributionMatching(Method):
    """DM: match per-class mean embeddings of freshly initialised ConvNets under siamese DSA."""

    param_schema = {
        "type": "object",
        "properties": {
            "model": {
                "type": "string",
                "default": "convnet-d3-w32-in",
                "description": "embedding network (re-initialised every iteration)",
            },
            "iterations": {"type": "integer", "minimum": 1, "default": 200},
            "lr": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 1.0,
                "description": "SGD step on the pixels",
            },
            "momentum": {"type": "number", "minimum": 0, "default": 0.5},
            "batch_real": {
                "type": "integer",
                "minimum": 1,
                "default": 64,
                "description": "real images per class per iteration",
            },
            "dsa": {"type": "boolean", "default": True},
        },
        "additionalProperties": False,
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch

        from ddbench.training import optim
        from ddbench.training.augment import DSA
        from ddbench.training.engine import build_classifier, data_source
        from ddbench.training.models import create_model  # noqa: F401  (registry import side effects)

        p = {
            "model": "convnet-d3-w32-in",
            "iterations": 200,
            "lr": 1.0,
            "momentum": 0.5,
            "batch_real": 64,
            "dsa": True,
            **self.params,
        }
        rng = np.random.default_rng(seed)
        data = ctx.data
        init, labels = _real_init(ctx, ipc, rng)
        syn = torch.tensor(init, requires_grad=True)
        opt = optim.SGD([syn], lr=p["lr"], momentum=p["momentum"])
        gen = torch.Generator().manual_seed(int(seed))
        real = data_source(data)  # per-class batches read as needed, never the split as float
        per_class = [torch.from_numpy(i) for i in data.class_indices()]
        dsa = DSA() if p["dsa"] else None
        self.losses_ = []
        from tqdm import tqdm

        for it in tqdm(range(p["iterations"]), desc="dm", file=sys.stderr, mininterval=2.0):
            torch.manual_seed(int(seed) * 100003 + it)
            net = build_classifier(
                p["model"], data.num_classes, data.in_chans, data.image_size, data.mean, data.std
            )
            net.train()
            for q in net.parameters():
                q.requires_grad_(False)
            loss = torch.zeros(())
            for c, idx in enumerate(per_class):
                pick = idx[torch.randperm(len(idx), generator=gen)[: p["batch_real"]]]
                x_real = real.batch(pick, torch.device("cpu"))
                x_syn = syn[c * ipc : (c + 1) * ipc]
                if dsa is not None:
                    params = dsa.sample_params(1, gen)  # one draw shared by both batches (siamese)
                    x_real, x_syn = dsa.apply(x_real, params), dsa.apply(x_syn, params)
                e_real = net.features(x_real).mean(0).detach()
                e_syn = net.features(x_syn).mean(0)
                loss = loss + ((e_real - e_syn) ** 2).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                syn.clamp_(0.0, 1.0)
            self.losses_.append(float(loss.detach()))
            check_finite_loss(
                self.losses_[-1], what="dm", step=it + 1, hint=f"lower the method's lr ({p['lr']})"
            )
        return CondensedSet(
            images=syn.detach().numpy().astype(np.float32),
            labels=labels,
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
        )


def bn_statistics_loss(model, x):
    """Sum over BatchNorm layers of ||mean_batch - running_mean||2 + ||var_batch - running_var||2."""
    import torch

    losses = []

    def hook(module, inputs, _output):
        a = inputs[0]
        dims = [0, 2, 3] if a.dim() == 4 else [0]
        mean = a.mean(dims)
        var = a.var(dims, unbiased=False)
        losses.append(
            torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2)
        )

    handles = [
        m.register_forward_hook(hook)
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    try:
        logits = model(x)
    finally:
        for h in handles:
            h.remove()
    if not losses:
        raise ValueError(
            "SRe2L needs a teacher with BatchNorm layers (e.g. convnet-d3-w32-bn, timm:resnet18)"
        )
    return logits, torch.stack(losses).sum()


@register_method("sre2l")
class SRe2L(Method):
    """SRe2L: recover images from noise with CE + BN-statistic matching on a BN teacher, then relabel."""

    requires = frozenset({"teacher"})
    param_schema = {
        "type": "object",
        "properties": {
            "teacher": {
                "type": "string",
                "description": "squeezed model: a teacher with BatchNorm",
            },
            "iterations": {"type": "integer", "minimum": 1, "default": 300},
            "lr": {"type": "number", "exclusiveMinimum": 0, "default": 0.05},
            "bn_weight": {
                "type": "number",
                "minimum": 0,
                "default": 0.01,
                "description": "weight of the BN-statistic loss",
            },
            "jitter": {
                "type": "integer",
                "minimum": 0,
                "default": 2,
                "description": "random shift in pixels per step",
            },
            "temperature": {
                "type": "number",
                "exclusiveMinimum": 0,
                "default": 1.0,
                "description": "relabel temperature",
            },
        },
        "required": ["teacher"],
        "additionalProperties": False,
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch
        import torch.nn.functional as F
        from tqdm import tqdm

        from ddbench.training import optim

        p = {
            "iterations": 300,
            "lr": 0.05,
            "bn_weight": 0.01,
            "jitter": 2,
            "temperature": 1.0,
            **self.params,
        }
        data, teacher = ctx.data, ctx.teacher.cpu().eval()
        for q in teacher.parameters():
            q.requires_grad_(False)
        gen = torch.Generator().manual_seed(int(seed))
        k, c, s = data.num_classes, data.in_chans, data.image_size
        labels = torch.arange(k).repeat_interleave(ipc)
        # optimise unconstrained parameters; images = sigmoid(z) stay in [0,1]
        z = (torch.randn(k * ipc, c, s, s, generator=gen) * 0.5).requires_grad_(True)
        opt = optim.Adam([z], lr=p["lr"], betas=(0.5, 0.9))
        self.losses_, self.bn_losses_ = [], []
        for it in tqdm(
            range(p["iterations"]), desc="sre2l recover", file=sys.stderr, mininterval=2.0
        ):
            x = torch.sigmoid(z)
            if p["jitter"]:
                dx, dy = (
                    int(v)
                    for v in torch.randint(-p["jitter"], p["jitter"] + 1, (2,), generator=gen)
                )
                x = torch.roll(x, shifts=(dx, dy), dims=(2, 3))
            if bool(torch.rand((), generator=gen) < 0.5):
                x = x.flip(3)
            logits, bn = bn_statistics_loss(teacher, x)
            loss = F.cross_entropy(logits, labels) + p["bn_weight"] * bn
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses_.append(float(loss.detach()))
            self.bn_losses_.append(float(bn.detach()))
            check_finite_loss(
                self.losses_[-1],
                what="sre2l recover",
                step=it + 1,
                hint=f"lower the method's lr ({p['lr']}) or bn_weight",
            )
        images = torch.sigmoid(z).detach()
        with torch.no_grad():
            soft = F.softmax(teacher(images) / p["temperature"], dim=1)
        return CondensedSet(
            images=images.numpy().astype(np.float32),
            labels=labels.numpy().astype(np.int64),
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
            soft_labels=soft.numpy().astype(np.float32),
        )
