"""Pool-Select-Refine (PSR): an over-complete pool from a diffusion prior, a budget-sized
selection, and teacher-guided refinement of the selected samples' latents.

- Pool (IPC-independent, `results/{ds}/pools/{pool}.h5`): `m * max_ipc` samples per class
  from the prior (DDIM with classifier-free guidance `guidance_scale`, `steps` steps). The
  initial noise of sample i of class c comes from a generator seeded by (pool_seed, c), so a
  larger pool starts with the samples of a smaller one. Stored: images, labels, the initial
  noise latents and, for a Stable Diffusion prior, the VAE latents of the samples.
- Selection (per class, exactly IPC): `first` (no selection: the first IPC pool samples),
  `random` (uniform without replacement, seeded), or `criterion`: informativeness from the
  teacher at temperature 1 (`confidence` = p(y|x), prototypical samples; `entropy` = H(p);
  `loss` = -log p(y|x)), combined with diversity in the teacher's penultimate feature space
  (L2-normalised): `kmeans` = k-means with IPC clusters, the most informative sample of each
  cluster; `herding` = greedy, each step taking the sample maximising
  `info_weight * z(info) - ||mu - mean(S + {x})|| / d`, z the class-standardised
  informativeness, mu the class mean, d the mean distance of the class's samples to mu.
- Refinement: the latents z (the sampler's initial noise for a UNet prior, rendered by
  `decode(sample(noise=z, grad=True))`; the VAE latents for Stable Diffusion, rendered by
  `decode(z)`) are optimised with Adam for `refine_steps` steps on

      L(z) = T^2 KL(q || softmax(f(x(z)) / T)) + lambda * mean_i ||z_i - z0_i||^2 / dim(z)

  with q = (1 - label_mix) * softmax(f(x(z0)) / T) + label_mix * onehot(y): the teacher's own
  soft label of the unrefined sample pulled towards its class. The teacher's soft labels
  softmax(f(x) / T) of the final images are stored with the set.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys

import numpy as np

from ddbench.data.h5io import DataFileError, open_h5, read_array, write_h5
from ddbench.errors import check_finite_loss

POOL_KEYS = ("prior", "m", "max_ipc", "guidance_scale", "steps", "pool_seed")


def pool_spec(params: dict, grid_max_ipc: int) -> dict:
    """The parameters that define a pool; `max_ipc` null = the largest IPC of the grid."""
    spec = {k: params.get(k) for k in POOL_KEYS}
    if spec["max_ipc"] is None:
        spec["max_ipc"] = int(grid_max_ipc)
    return spec


def pool_key(spec: dict) -> str:
    """File name of a pool: the prior's name and a short digest of the pool parameters."""
    text = json.dumps({k: spec[k] for k in POOL_KEYS}, sort_keys=True)
    return f"{spec['prior']}_{hashlib.sha256(text.encode()).hexdigest()[:10]}"


def _class_noise(prior, c: int, n: int, seed: int):
    import torch

    g = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(c))
    return torch.randn((n, *prior.latent_shape), generator=g)


def generate_pool(
    dataset_path: str | os.PathLike,
    prior_path: str | os.PathLike,
    spec: dict,
    out: str | os.PathLike,
    *,
    batch_size: int = 64,
    device: str = "auto",
    threads: int | None = None,
) -> dict:
    """Sample `m * max_ipc` images per class from the prior; store images, labels and latents."""
    from ddbench.data.datasets import load_dataset
    from ddbench.stages.ddps import check_prior_fits
    from ddbench.stages.diffusion import load_prior
    from ddbench.training.engine import resolve_device, set_determinism

    seed = int(spec["pool_seed"])
    set_determinism(seed, threads)
    data = load_dataset(dataset_path, train_images=False)
    dev = resolve_device(device)
    prior = load_prior(prior_path, device=dev)
    check_prior_fits(prior, data, str(prior_path))
    arrays = sample_pool(prior, data.num_classes, spec, batch_size=batch_size)
    if not np.isfinite(arrays["images"]).all():
        raise DataFileError(f"{prior_path}: the prior produced non-finite samples")
    per_class = int(spec["m"]) * int(spec["max_ipc"])
    write_h5(
        out,
        "pool",
        arrays,
        created_by="ddbench.stages.psr.generate_pool",
        params=spec,
        seed=seed,
        attrs={"dataset": data.name, "prior_kind": str(prior.kind), "per_class": per_class},
    )
    return {"per_class": per_class, "classes": data.num_classes}


def sample_pool(prior, num_classes: int, spec: dict, *, batch_size: int = 64) -> dict:
    """Pool arrays: images, labels, initial noise (and VAE latents for a latent prior)."""
    import torch
    from tqdm import tqdm

    seed = int(spec["pool_seed"])
    per_class = int(spec["m"]) * int(spec["max_ipc"])
    images, labels, noises, latents = [], [], [], []
    bar = tqdm(total=per_class * num_classes, desc="pool", file=sys.stderr, mininterval=2.0)
    for c in range(num_classes):
        noise = _class_noise(prior, c, per_class, seed)
        for s in range(0, per_class, batch_size):
            z = noise[s : s + batch_size].to(prior.device)
            y = torch.full((len(z),), c, dtype=torch.long, device=prior.device)
            with torch.no_grad():
                x0 = prior.sample(
                    y,
                    steps=int(spec["steps"]),
                    guidance_scale=float(spec["guidance_scale"]),
                    noise=z,
                )
                img = prior.decode(x0).clamp(0, 1)
            images.append(img.float().cpu().numpy())
            latents.append(x0.float().cpu().numpy())
            bar.update(len(z))
        noises.append(noise.numpy())
        labels.append(np.full(per_class, c, dtype=np.int64))
    bar.close()
    arrays = {
        "images": np.concatenate(images).astype(np.float32),
        "labels": np.concatenate(labels),
        "noise": np.concatenate(noises).astype(np.float32),
    }
    if prior.kind != "unet":
        arrays["latents"] = np.concatenate(latents).astype(np.float32)
    return arrays


def load_pool(path: str | os.PathLike, num_classes: int, image_shape) -> dict:
    """Read a pool file, checking shapes, labels and values."""
    with open_h5(path, "pool") as f:
        pool = {
            "images": read_array(f, "images", ndim=4, dtype=np.floating).astype(np.float32),
            "labels": read_array(f, "labels", ndim=1, dtype=np.integer).astype(np.int64),
            "noise": read_array(f, "noise", dtype=np.floating).astype(np.float32),
        }
        if "latents" in f:
            pool["latents"] = read_array(f, "latents", dtype=np.floating).astype(np.float32)
        pool["params"] = json.loads(f.attrs["params"])
    n = len(pool["labels"])
    if len(pool["images"]) != n or len(pool["noise"]) != n:
        raise DataFileError(f"{path}: images, labels and noise disagree in length")
    if tuple(pool["images"].shape[1:]) != tuple(image_shape):
        raise DataFileError(
            f"{path}: pool images have shape {pool['images'].shape[1:]}, dataset {tuple(image_shape)}"
        )
    if n and (pool["labels"].min() < 0 or pool["labels"].max() >= num_classes):
        raise DataFileError(f"{path}: labels outside 0..{num_classes - 1}")
    return pool


def informativeness(logits: np.ndarray, labels: np.ndarray, kind: str) -> np.ndarray:
    """Per-sample informativeness, higher = preferred: confidence, entropy or loss."""
    z = logits - logits.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    own = logp[np.arange(len(labels)), labels]
    if kind == "confidence":
        return np.exp(own)
    if kind == "entropy":
        return -(np.exp(logp) * logp).sum(axis=1)
    if kind == "loss":
        return -own
    raise ValueError(f"informativeness: unknown criterion {kind!r}")


def select_class(
    feats: np.ndarray,
    info: np.ndarray,
    ipc: int,
    diversity: str,
    seed: int,
    info_weight: float = 1.0,
) -> np.ndarray:
    """Indices (into this class's pool rows) of the IPC selected samples, sorted."""
    n = len(info)
    if ipc > n:
        raise ValueError(f"the pool holds {n} samples of this class, fewer than IPC {ipc}")
    x = feats / np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), 1e-12)
    if diversity == "kmeans":
        from sklearn.cluster import KMeans

        k = min(ipc, len(np.unique(x, axis=0)))
        assign = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(x).labels_
        chosen = []
        for c in range(k):
            members = np.flatnonzero(assign == c)
            chosen.append(int(members[np.lexsort((members, -info[members]))[0]]))
        rest = [i for i in np.lexsort((np.arange(n), -info)) if i not in set(chosen)]
        chosen += [int(i) for i in rest[: ipc - k]]
        return np.sort(np.array(chosen, dtype=np.int64))
    if diversity == "herding":
        mu = x.mean(0)
        d = float(np.linalg.norm(x - mu, axis=1).mean()) or 1.0
        sd = float(info.std()) or 1.0
        zinfo = (info - info.mean()) / sd
        chosen: list[int] = []
        total = np.zeros_like(mu)
        free = np.ones(n, dtype=bool)
        for j in range(ipc):
            gap = np.linalg.norm(mu - (total + x) / (j + 1), axis=1) / d
            value = np.where(free, info_weight * zinfo - gap, -np.inf)
            i = int(np.argmax(value))
            chosen.append(i)
            free[i] = False
            total += x[i]
        return np.sort(np.array(chosen, dtype=np.int64))
    raise ValueError(f"diversity: unknown criterion {diversity!r}")


def render(prior, z, labels, *, steps: int, guidance_scale: float):
    """Images in [0,1] from latents: through the sampler for a UNet prior, the VAE otherwise."""
    if prior.kind == "unet":
        x0 = prior.sample(labels, steps=steps, guidance_scale=guidance_scale, noise=z, grad=True)
        return prior.decode(x0).clamp(0, 1)
    return prior.decode(z).clamp(0, 1)


def refine_latents(
    prior,
    teacher,
    z0,
    labels,
    *,
    steps: int,
    lr: float,
    lam: float,
    temperature: float,
    label_mix: float,
    sampler_steps: int,
    guidance_scale: float,
    num_classes: int,
) -> tuple:
    """Optimise latents against the PSR loss; returns (z, images, history of (total, kl))."""
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    from ddbench.training.optim import Adam

    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    kw = {"steps": sampler_steps, "guidance_scale": guidance_scale}
    T = float(temperature)
    with torch.no_grad():
        p0 = F.softmax(teacher(render(prior, z0, labels, **kw)) / T, dim=1)
        target = (1 - label_mix) * p0 + label_mix * F.one_hot(labels, num_classes).float()
    z = z0.clone().requires_grad_(True)
    opt = Adam([z], lr=lr)  # the project's bit-exact Adam: no torch._dynamo import
    dim = float(np.prod(z0.shape[1:]))
    history = []

    def loss_terms():
        x = render(prior, z, labels, **kw)
        logp = F.log_softmax(teacher(x) / T, dim=1)
        kl = F.kl_div(logp, target, reduction="batchmean") * T * T
        prox = ((z - z0) ** 2).flatten(1).sum(1).mean() / dim
        return kl + lam * prox, kl, x

    for step in tqdm(range(int(steps)), desc="refine", file=sys.stderr, mininterval=2.0):
        opt.zero_grad()
        total, kl, _ = loss_terms()
        total.backward()
        opt.step()
        history.append((float(total.detach()), float(kl.detach())))
        check_finite_loss(
            history[-1][0], what="psr refinement", step=step + 1, hint="lower the refinement lr"
        )
    with torch.no_grad():
        total, kl, x = loss_terms()
    history.append((float(total), float(kl)))
    return z.detach(), x.detach(), history
