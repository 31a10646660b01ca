"""Generate-and-Use: class-conditional diffusion samples as the condensed set."""

from __future__ import annotations

import numpy as np

from ddbench.methods.base import CondensedSet, Context, Method, register_method

# samples generated per forward batch; noise is drawn for the whole set first, so this only
# bounds memory and never changes the result
_BATCH = 256


@register_method("gen")
class Generate(Method):
    """Exactly IPC DDIM samples per class from a diffusion prior, with classifier-free guidance."""

    requires = frozenset({"prior"})
    param_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["prior"],
        "properties": {
            "prior": {"type": "string", "description": "a configured prior (priors.<name>)"},
            "guidance_scale": {
                "type": "number",
                "minimum": 0,
                "default": 2.0,
                "description": "classifier-free guidance s: 0 unconditional, 1 conditional only",
            },
            "steps": {"type": "integer", "minimum": 1, "default": 50, "description": "DDIM steps"},
            "eta": {
                "type": "number",
                "minimum": 0,
                "maximum": 1,
                "default": 0.0,
                "description": "DDIM stochasticity (0 = deterministic given the initial noise)",
            },
        },
    }

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        import torch

        from ddbench.stages.diffusion import load_prior

        data = ctx.data
        prior = load_prior(ctx.extras["prior_path"], device=ctx.device)
        if prior.num_classes != data.num_classes:
            raise ValueError(
                f"prior {ctx.extras['prior_path']} has {prior.num_classes} classes, "
                f"dataset {data.name!r} has {data.num_classes}"
            )
        labels = torch.arange(data.num_classes).repeat_interleave(ipc)
        gen = torch.Generator().manual_seed(int(seed))
        noise = torch.randn((len(labels), *prior.latent_shape), generator=gen)
        images = []
        for start in range(0, len(labels), _BATCH):
            part = slice(start, start + _BATCH)
            with torch.no_grad():
                z = prior.sample(
                    labels[part],
                    steps=int(self.params.get("steps", 50)),
                    guidance_scale=float(self.params.get("guidance_scale", 2.0)),
                    noise=noise[part],
                    eta=float(self.params.get("eta", 0.0)),
                    generator=gen,
                )
                images.append(prior.decode(z).float().cpu().numpy())
        return CondensedSet(
            images=np.ascontiguousarray(np.concatenate(images), dtype=np.float32),
            labels=labels.numpy().astype(np.int64),
            method=self.kind,
            kind=self.kind,
            params=dict(self.params),
            ipc=ipc,
            dataset=data.name,
        )
