"""Diffusion priors: a class-conditional UNet trained on the dataset, or a local Stable Diffusion.

Both kinds share one interface (`DiffusionPrior`): encode/decode between dataset images and the
space the diffusion runs in, the forward noising process, noise prediction with or without the
class condition, DDIM sampling with classifier-free guidance, and DIFT features of UNet up-blocks.

A prior folder (`results/{dataset}/priors/{prior}/`) always holds `prior.json` (format
`ddbench.prior/1`) and `samples.png`. A `unet` prior also holds the diffusers `save_pretrained`
folders `unet/` and `scheduler/`; a `stable_diffusion` prior records the source folder and a
fingerprint of it instead of copying gigabytes. Nothing here ever contacts a model hub.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ddbench import __version__
from ddbench.data.datasets import ImageData
from ddbench.data.h5io import DataFileError, folder_manifest, write_folder
from ddbench.errors import check_finite_loss
from ddbench.stages.priors import (
    DEFAULT_PROMPT,
    PRIOR_FORMAT,
    PRIOR_JSON,
    SAMPLES_PNG,
    PriorSourceError,
    check_sd_source,
    class_prompt,
    sd_fingerprint,
    unet_padding,
)

# defaults of a `unet` prior spec (the config schema carries the same values)
UNET_DEFAULTS = {
    "block_out_channels": [32, 64, 64],
    "layers_per_block": 1,
    "attention": False,
    "norm_groups": 8,
    "epochs": 10,
    "max_images_per_class": None,
    "batch_size": 128,
    "lr": 5e-4,
    "weight_decay": 0.0,
    "label_dropout": 0.1,
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",
    "seed": 0,
    "sample_steps": 50,
    "sample_guidance": 2.0,
    "samples_per_class": 8,
}
SD_DEFAULTS = {
    "prompt_template": DEFAULT_PROMPT,
    "resolution": None,
    "sample_steps": 25,
    "sample_guidance": 4.0,
    "samples_per_class": 4,
    "seed": 0,
}


class _Stop(Exception):
    """Raised by a feature hook to end a forward pass once the wanted block has run."""


class DiffusionPrior:
    """The interface every prior kind implements (see the module docstring)."""

    kind: str
    num_classes: int
    class_names: list[str]
    num_train_timesteps: int
    image_shape: tuple[int, int, int]
    latent_shape: tuple[int, int, int]
    device: torch.device

    def __init__(self, unet, scheduler, info: dict, device) -> None:
        self.unet = unet.eval().requires_grad_(False)
        self.scheduler_config = dict(scheduler.config)
        self.alphas_cumprod = scheduler.alphas_cumprod.to(torch.float32)
        self.info = info
        self.class_names = list(info["class_names"])
        self.num_classes = len(self.class_names)
        self.image_shape = tuple(int(v) for v in info["image_shape"])
        self.num_train_timesteps = int(scheduler.config.num_train_timesteps)
        self.device = torch.device(device)

    # ------------------------------------------------------------------ per kind
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _eps(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        raise NotImplementedError

    def _up_blocks(self):
        return self.unet.up_blocks

    # ------------------------------------------------------------------ shared
    def _timesteps(self, t, n: int) -> torch.Tensor:
        t = torch.as_tensor(t, device=self.device)
        if t.ndim == 0:
            t = t.expand(n)
        return t.long()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The forward process q(x_t | x_0): sqrt(abar_t)·x0 + sqrt(1 − abar_t)·noise."""
        t = self._timesteps(t, len(x0))
        abar = self.alphas_cumprod.to(x0.device)[t.to(x0.device)].view(-1, 1, 1, 1)
        return abar.sqrt() * x0 + (1 - abar).sqrt() * noise

    def predict_noise(
        self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """Predicted noise; `labels` None = unconditional (null class / empty prompt)."""
        return self._eps(x_t, self._timesteps(t, len(x_t)), labels)

    def _guided_eps(self, x, t, labels, guidance_scale: float) -> torch.Tensor:
        if labels is None or guidance_scale == 0:
            return self._eps(x, t, None)
        if guidance_scale == 1:
            return self._eps(x, t, labels)
        n = len(x)
        both = self._eps(
            torch.cat([x, x]), torch.cat([t, t]), torch.cat([labels, self._null_labels(n)])
        )
        eps_c, eps_u = both[:n], both[n:]
        return eps_u + guidance_scale * (eps_c - eps_u)

    def _null_labels(self, n: int) -> torch.Tensor:
        return torch.full((n,), -1, dtype=torch.long, device=self.device)

    def scheduler(self):
        """A fresh DDIM scheduler of this prior (sampling state is per call)."""
        from diffusers import DDIMScheduler

        return DDIMScheduler.from_config(self.scheduler_config)

    def sample(
        self,
        labels: torch.Tensor | None,
        *,
        steps: int,
        guidance_scale: float,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
        eta: float = 0.0,
        grad: bool = False,
        progress: bool = False,
    ) -> torch.Tensor:
        """DDIM samples (x0 latents) with classifier-free guidance eps_u + s·(eps_c − eps_u).

        `noise` is the initial x_T (else drawn from `generator` on the CPU, so samples do not
        depend on the device); `grad=True` keeps the graph with respect to `noise`.
        """
        if labels is not None:
            labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        n = len(labels) if labels is not None else (len(noise) if noise is not None else None)
        if n is None:
            raise ValueError("sample: give labels or noise (the batch size)")
        if noise is None:
            noise = torch.randn((n, *self.latent_shape), generator=generator)
        if tuple(noise.shape) != (n, *self.latent_shape):
            raise ValueError(
                f"sample: noise has shape {tuple(noise.shape)}, expected {(n, *self.latent_shape)}"
            )
        x = noise.to(self.device)
        sched = self.scheduler()
        sched.set_timesteps(int(steps), device=self.device)
        ts = sched.timesteps
        if progress:
            from tqdm.auto import tqdm

            ts = tqdm(ts, desc="DDIM", leave=False)
        with torch.set_grad_enabled(grad):
            for t in ts:
                tt = t.to(self.device).long().expand(n)
                eps = self._guided_eps(x, tt, labels, float(guidance_scale))
                x = sched.step(eps, t, x, eta=float(eta), generator=generator).prev_sample
        return x

    def features(
        self, x_t: torch.Tensor, t: torch.Tensor, labels, block: str | int
    ) -> torch.Tensor:
        """DIFT features: the output [n,c,h,w] of one UNet up-block at noisy input x_t."""
        names = self.dift_blocks()
        if isinstance(block, str):
            if block not in names:
                raise ValueError(f"unknown DIFT block {block!r} (available: {', '.join(names)})")
            index = names.index(block)
        else:
            index = int(block)
            if not 0 <= index < len(names):
                raise ValueError(f"DIFT block index {index} out of range 0..{len(names) - 1}")
        caught = {}

        def hook(module, args, output):
            caught["out"] = output[0] if isinstance(output, tuple) else output
            raise _Stop

        handle = self._up_blocks()[index].register_forward_hook(hook)
        try:
            self.predict_noise(x_t, t, labels)
        except _Stop:
            pass
        finally:
            handle.remove()
        return self._crop_features(caught["out"])

    def _crop_features(self, feats: torch.Tensor) -> torch.Tensor:
        return feats

    def dift_blocks(self) -> list[str]:
        """Names of the UNet up-blocks whose activations `features` can return (coarse to fine)."""
        return [f"up_blocks.{i}" for i in range(len(self._up_blocks()))]


# ============================================================================ unet kind
class UNetPrior(DiffusionPrior):
    """A class-conditional UNet2DModel in pixel space; label index K is the null class."""

    kind = "unet"

    def __init__(self, unet, scheduler, info: dict, device) -> None:
        super().__init__(unet.to(device), scheduler, info, device)
        self.latent_shape = self.image_shape
        self.pad = int(info.get("pad", 0))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return images.to(self.device, torch.float32) * 2 - 1

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return ((latents + 1) / 2).clamp(0, 1)

    def _null_labels(self, n: int) -> torch.Tensor:
        return torch.full((n,), self.num_classes, dtype=torch.long, device=self.device)

    def _eps(self, x_t, t, labels):
        if labels is None:
            labels = self._null_labels(len(x_t))
        labels = torch.as_tensor(labels, dtype=torch.long, device=self.device)
        return unet_eps(self.unet, x_t, t, labels, self.pad)

    def _crop_features(self, feats):
        if not self.pad:
            return feats
        size = self.image_shape[1]
        keep = -(-feats.shape[-1] * size // (size + self.pad))
        return feats[..., :keep, :keep]


def unet_eps(unet, x_t, t, labels, pad: int) -> torch.Tensor:
    """The UNet's noise prediction; x_t is zero-padded bottom/right by `pad` and cropped back."""
    if pad:
        x_t = F.pad(x_t, (0, pad, 0, pad))
    eps = unet(x_t, t, class_labels=labels).sample
    if pad:
        eps = eps[..., : eps.shape[-2] - pad, : eps.shape[-1] - pad]
    return eps


def build_unet(spec: dict, num_classes: int, image_shape: tuple[int, int, int]):
    """A class-conditional UNet2DModel for the dataset's channels and (padded) resolution."""
    from diffusers import UNet2DModel

    channels = list(spec["block_out_channels"])
    n = len(channels)
    size = image_shape[1] + unet_padding(image_shape[1], n)
    attn = bool(spec["attention"])
    down = ["DownBlock2D"] * n
    up = ["UpBlock2D"] * n
    if attn:  # self-attention at the coarsest resolution only (cheap on small images)
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    return UNet2DModel(
        sample_size=size,
        in_channels=image_shape[0],
        out_channels=image_shape[0],
        block_out_channels=tuple(channels),
        layers_per_block=int(spec["layers_per_block"]),
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=int(spec["norm_groups"]),
        attention_head_dim=max(channels[-1] // 4, 1),
        add_attention=attn,
        num_class_embeds=num_classes + 1,
    )


def build_scheduler(spec: dict):
    from diffusers import DDIMScheduler

    return DDIMScheduler(
        num_train_timesteps=int(spec["num_train_timesteps"]),
        beta_schedule=spec["beta_schedule"],
        clip_sample=True,
        prediction_type="epsilon",
    )


def _subset(data: ImageData, max_per_class: int | None, seed: int) -> np.ndarray:
    """Training indices: all, or a seeded random `max_per_class` of each class (sorted)."""
    if max_per_class is None:
        return np.arange(len(data.train_labels))
    rng = np.random.default_rng(seed)
    parts = []
    for idx in data.class_indices():
        parts.append(
            idx if len(idx) <= max_per_class else rng.choice(idx, max_per_class, replace=False)
        )
    return np.sort(np.concatenate(parts))


def drop_labels(
    labels: torch.Tensor, p: float, null: int, generator: torch.Generator
) -> torch.Tensor:
    """Label dropout for classifier-free guidance: each label becomes `null` with probability p."""
    drop = torch.rand(len(labels), generator=generator) < p
    return torch.where(drop.to(labels.device), torch.full_like(labels, null), labels)


def train_unet_prior(
    data: ImageData,
    spec: dict,
    out_dir: str | os.PathLike,
    seed: int,
    device="cpu",
    progress: bool = True,
) -> dict:
    """Train a class-conditional UNet by DDPM noise-prediction MSE with label dropout; write the folder."""
    from tqdm.auto import tqdm

    from ddbench.training.optim import AdamW

    spec = {**UNET_DEFAULTS, **{k: v for k, v in spec.items() if k != "kind"}}
    device = torch.device(device)
    K = data.num_classes
    image_shape = (data.in_chans, data.image_size, data.image_size)
    pad = unet_padding(data.image_size, len(spec["block_out_channels"]))
    torch.manual_seed(seed)
    unet = build_unet(spec, K, image_shape).to(device)
    sched = build_scheduler(spec)
    abar = sched.alphas_cumprod.to(device, torch.float32)
    T = int(spec["num_train_timesteps"])

    idx = _subset(data, spec["max_images_per_class"], seed)
    from ddbench.training.engine import data_source

    images = data_source(data, indices=idx)  # read per batch: never the split as float
    y_all = torch.from_numpy(data.train_labels[idx].astype(np.int64))
    gen = torch.Generator().manual_seed(seed)
    opt = AdamW(unet.parameters(), lr=float(spec["lr"]), weight_decay=float(spec["weight_decay"]))
    bs = int(spec["batch_size"])
    epochs = int(spec["epochs"])
    steps_per_epoch = -(-len(idx) // bs)
    step_losses, epoch_losses, dropped = [], [], 0
    start = time.perf_counter()
    unet.train()
    bar = tqdm(total=epochs * steps_per_epoch, desc="prior", disable=not progress, mininterval=2)
    for _ in range(epochs):
        order = torch.randperm(len(idx), generator=gen)
        total = 0.0
        for s in range(steps_per_epoch):
            b = order[s * bs : (s + 1) * bs]
            x0, y = images.batch(b, device) * 2 - 1, y_all[b].to(device)
            y = drop_labels(y, float(spec["label_dropout"]), K, gen)
            dropped += int((y == K).sum())
            t = torch.randint(0, T, (len(b),), generator=gen).to(device)
            noise = torch.randn(x0.shape, generator=gen).to(device)
            a = abar[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            loss = F.mse_loss(unet_eps(unet, x_t, t, y, pad), noise)
            opt.zero_grad()
            loss.backward()
            opt.step()
            value = loss.item()
            check_finite_loss(
                value,
                what="prior training",
                step=len(step_losses) + 1,
                hint=f"lower the prior's lr ({spec['lr']})",
            )
            step_losses.append(value)
            total += value * len(b)
            bar.update()
            bar.set_postfix(loss=f"{value:.4f}", refresh=False)
        epoch_losses.append(total / len(idx))
    bar.close()
    train_seconds = time.perf_counter() - start
    unet.eval()

    info = {
        "format": PRIOR_FORMAT,
        "kind": "unet",
        "ddbench_version": __version__,
        "dataset": data.name,
        "class_names": list(data.classes),
        "image_shape": list(image_shape),
        "pad": pad,
        "seed": int(seed),
        "recipe": spec,
        "n_train_images": int(len(idx)),
        "n_params": int(sum(p.numel() for p in unet.parameters())),
        "train_seconds": round(train_seconds, 3),
        "label_dropout_fraction": dropped / max(1, epochs * len(idx)),
        "loss": _loss_summary(step_losses, epoch_losses),
    }

    def write(tmp: Path) -> None:
        unet.save_pretrained(tmp / "unet")
        sched.save_pretrained(tmp / "scheduler")
        prior = UNetPrior(unet, sched, info, device)
        _write_samples(prior, tmp / SAMPLES_PNG, spec, seed)
        info["files"] = folder_manifest(tmp, skip=(PRIOR_JSON,))
        (tmp / PRIOR_JSON).write_text(json.dumps(info, indent=2, sort_keys=True))

    write_folder(out_dir, write)
    return info


def _loss_summary(step_losses: list[float], epoch_losses: list[float], points: int = 100) -> dict:
    """Epoch means, plus the step curve averaged down to at most `points` values."""
    chunks = np.array_split(np.asarray(step_losses), min(points, len(step_losses)))
    return {
        "first_step": step_losses[0],
        "last_step": step_losses[-1],
        "epoch_mean": [round(v, 6) for v in epoch_losses],
        "curve": [round(float(c.mean()), 6) for c in chunks],
        "steps": len(step_losses),
    }


# ============================================================================ Stable Diffusion kind
class StableDiffusionPrior(DiffusionPrior):
    """A pretrained Stable Diffusion (UNet2DConditionModel + VAE + CLIP text encoder) from a local folder.

    Class k is conditioned on the prompt template filled with its class name; the empty prompt
    is the unconditional branch. Images are resized to `resolution`, grey becomes RGB, and the
    VAE's mean latent times its scaling factor is the diffusion space.
    """

    kind = "stable_diffusion"

    def __init__(self, unet, scheduler, vae, text_embeddings, resolution, info, device) -> None:
        super().__init__(unet.to(device), scheduler, info, device)
        self.vae = vae.to(device).eval().requires_grad_(False)
        self.scaling_factor = float(vae.config.scaling_factor)
        self.resolution = int(resolution)
        self.text_embeddings = text_embeddings.to(device)  # [K+1, L, D]; row K = empty prompt
        down = 2 ** (len(vae.config.block_out_channels) - 1)
        if self.resolution % (down * 2 ** (len(unet.config.block_out_channels) - 1)):
            raise DataFileError(
                f"{info.get('source_path')}: resolution {self.resolution} does not fit the "
                "VAE and UNet downsampling (use a multiple of 64 for real Stable Diffusion)"
            )
        side = self.resolution // down
        self.latent_shape = (int(vae.config.latent_channels), side, side)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        x = images.to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(
            x, size=(self.resolution,) * 2, mode="bilinear", antialias=True, align_corners=False
        )
        return self.vae.encode(x * 2 - 1).latent_dist.mean * self.scaling_factor

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        x = self.vae.decode(latents / self.scaling_factor).sample
        x = ((x + 1) / 2).clamp(0, 1)
        C, H, W = self.image_shape
        if (H, W) != tuple(x.shape[-2:]):
            x = F.interpolate(x, size=(H, W), mode="bilinear", antialias=True, align_corners=False)
        if C == 1:
            x = x.mean(dim=1, keepdim=True)
        return x.clamp(0, 1)

    def _eps(self, x_t, t, labels):
        if labels is None:
            rows = torch.full((len(x_t),), self.num_classes, dtype=torch.long, device=self.device)
        else:
            rows = torch.as_tensor(labels, dtype=torch.long, device=self.device)
            rows = torch.where(rows < 0, torch.full_like(rows, self.num_classes), rows)
        return self.unet(x_t, t, encoder_hidden_states=self.text_embeddings[rows]).sample


@torch.no_grad()
def _text_embeddings(tokenizer, text_encoder, prompts: list[str], device) -> torch.Tensor:
    tokens = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    )
    return text_encoder(tokens.input_ids.to(device))[0].float()


def _load_sd_components(source: Path, device):
    """UNet, VAE, text encoder, tokenizer, scheduler of an SD folder, from local files only."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    check_sd_source(source)
    parts = {}
    loaders = {
        "unet": UNet2DConditionModel,
        "vae": AutoencoderKL,
        "text_encoder": CLIPTextModel,
        "tokenizer": CLIPTokenizer,
        "scheduler": DDIMScheduler,
    }
    for name, cls in loaders.items():
        extra = {"low_cpu_mem_usage": False} if name in ("unet", "vae", "text_encoder") else {}
        try:
            parts[name] = cls.from_pretrained(
                source, subfolder=name, local_files_only=True, **extra
            )
        except Exception as exc:  # corrupt weights, wrong config: name the component folder
            raise PriorSourceError(f"cannot load {source / name} as {cls.__name__}: {exc}") from exc
    parts["text_encoder"].to(device).eval()
    return parts


def sd_prior_info(spec: dict, data: ImageData) -> dict:
    """prior.json content of a stable_diffusion prior (source folder, fingerprint, prompts)."""
    spec = {**SD_DEFAULTS, **{k: v for k, v in spec.items() if k != "kind"}}
    source = Path(spec["path"]).expanduser().resolve()
    return {
        "format": PRIOR_FORMAT,
        "kind": "stable_diffusion",
        "ddbench_version": __version__,
        "dataset": data.name,
        "class_names": list(data.classes),
        "image_shape": [data.in_chans, data.image_size, data.image_size],
        "source_path": str(source),
        "fingerprint": sd_fingerprint(source),
        "prompt_template": spec["prompt_template"],
        "prompts": [class_prompt(spec["prompt_template"], c) for c in data.classes],
        "resolution": spec["resolution"],
        "recipe": spec,
    }


def _open_sd(info: dict, device, where: Path) -> StableDiffusionPrior:
    source = Path(info["source_path"])
    try:
        now = sd_fingerprint(source)
    except PriorSourceError as exc:
        raise DataFileError(f"{where}: recorded Stable Diffusion source unusable: {exc}") from None
    if now != info["fingerprint"]:
        raise DataFileError(
            f"{where}: the Stable Diffusion folder {source} changed since this prior was built "
            "(files or model_index.json differ); rebuild the prior target"
        )
    parts = _load_sd_components(source, device)
    emb = _text_embeddings(
        parts["tokenizer"], parts["text_encoder"], [*info["prompts"], ""], device
    )
    resolution = info["resolution"]
    if resolution is None:
        unet_size = parts["unet"].config.sample_size
        unet_size = unet_size[0] if isinstance(unet_size, list | tuple) else unet_size
        resolution = int(unet_size) * 2 ** (len(parts["vae"].config.block_out_channels) - 1)
    return StableDiffusionPrior(
        parts["unet"], parts["scheduler"], parts["vae"], emb, resolution, info, device
    )


def build_sd_prior(
    data: ImageData, spec: dict, out_dir: str | os.PathLike, device="cpu", progress: bool = True
) -> dict:
    """Write a stable_diffusion prior folder: prior.json (source + fingerprint) and samples.png."""
    info = sd_prior_info(spec, data)
    recipe = info["recipe"]

    def write(tmp: Path) -> None:
        start = time.perf_counter()
        prior = _open_sd(info, device, tmp)
        info["load_seconds"] = round(time.perf_counter() - start, 3)
        info["latent_shape"] = list(prior.latent_shape)
        _write_samples(prior, tmp / SAMPLES_PNG, recipe, int(recipe["seed"]))
        info["files"] = folder_manifest(tmp, skip=(PRIOR_JSON,))
        (tmp / PRIOR_JSON).write_text(json.dumps(info, indent=2, sort_keys=True))

    write_folder(out_dir, write)
    return info


# ============================================================================ folders
def build_prior(data: ImageData, spec: dict, out_dir, device="cpu", progress: bool = True) -> dict:
    """Build the prior folder of one configured spec with its kind's registered `build`
    (ddbench.registry.PRIORS: train a UNet, record a Stable Diffusion folder, or a plugin's)."""
    from ddbench.registry import PRIORS

    return PRIORS.get(spec["kind"]).function("build")(data, spec, out_dir, device, progress)


def build_unet_prior(
    data: ImageData, spec: dict, out_dir, device="cpu", progress: bool = True
) -> dict:
    """The `unet` prior kind: train a UNet seeded by the spec's `seed`."""
    return train_unet_prior(data, spec, out_dir, int(spec["seed"]), device, progress)


def build_prior_file(
    dataset_path: str | os.PathLike,
    spec: dict,
    out_dir: str | os.PathLike,
    *,
    device: str = "auto",
    threads: int | None = None,
    progress: bool = True,
) -> dict:
    """The `train_prior` job: read the prepared dataset, build the prior folder `out_dir`."""
    from ddbench.data.datasets import load_dataset
    from ddbench.training.engine import resolve_device, set_determinism

    data = load_dataset(dataset_path)
    set_determinism(int(spec.get("seed", 0)), threads)
    try:
        return build_prior(data, spec, out_dir, resolve_device(device), progress)
    except PriorSourceError as exc:
        raise DataFileError(str(exc)) from None


def read_prior_info(path: str | os.PathLike) -> dict:
    """prior.json of a prior folder, checked; DataFileError naming the file otherwise."""
    root = Path(path)
    meta = root / PRIOR_JSON
    if not root.is_dir():
        raise DataFileError(f"prior folder {root} does not exist")
    if not meta.is_file():
        raise DataFileError(f"{meta} is missing: {root} is not a complete prior folder")
    try:
        info = json.loads(meta.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataFileError(f"{meta} is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or info.get("format") != PRIOR_FORMAT:
        got = info.get("format") if isinstance(info, dict) else None
        raise DataFileError(f"{meta}: format {got!r}, expected {PRIOR_FORMAT!r}")
    for key in ("kind", "class_names", "image_shape"):
        if key not in info:
            raise DataFileError(f"{meta}: missing key {key!r}")
    return info


def load_prior(path: str | os.PathLike, device="cpu") -> DiffusionPrior:
    """Open a prior folder (local files only); the kind comes from its prior.json."""
    root = Path(path)
    info = read_prior_info(root)
    device = torch.device(device)
    if info["kind"] == "unet":
        from diffusers import DDIMScheduler, UNet2DModel

        for needed in ("unet/config.json", "scheduler/scheduler_config.json"):
            if not (root / needed).is_file():
                raise DataFileError(f"{root / needed} is missing: incomplete prior folder")
        weights = list((root / "unet").glob("diffusion_pytorch_model.*"))
        if not weights:
            raise DataFileError(f"{root / 'unet'}: no diffusion_pytorch_model weights file")
        try:
            unet = UNet2DModel.from_pretrained(
                root / "unet", local_files_only=True, low_cpu_mem_usage=False
            )
            sched = DDIMScheduler.from_pretrained(root / "scheduler", local_files_only=True)
        except Exception as exc:
            raise DataFileError(f"{root / 'unet'}: cannot load the prior's UNet: {exc}") from exc
        return UNetPrior(unet, sched, info, device)
    if info["kind"] == "stable_diffusion":
        return _open_sd(info, device, root / PRIOR_JSON)
    raise DataFileError(f"{root / PRIOR_JSON}: unknown prior kind {info['kind']!r}")


# ============================================================================ pictures
def _write_samples(prior: DiffusionPrior, path: Path, spec: dict, seed: int) -> None:
    """samples.png: `samples_per_class` DDIM + CFG samples in one row per shown class.

    Every class up to 10, else the galleries' evenly spaced classes ⌊i·K/10⌋ (1 000 classes:
    0, 100, …, 900), so the figure stays bounded at any number of classes.
    """
    from ddbench.analysis.figures import shown_classes

    n = int(spec["samples_per_class"])
    classes = torch.from_numpy(shown_classes(prior.num_classes)).long()
    labels = classes.repeat_interleave(n)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        z = prior.sample(
            labels,
            steps=int(spec["sample_steps"]),
            guidance_scale=float(spec["sample_guidance"]),
            generator=gen,
        )
        images = prior.decode(z).cpu().numpy()
    save_grid(images, len(classes), n, path)


def save_grid(images: np.ndarray, rows: int, cols: int, path: str | os.PathLike) -> None:
    """A rows × cols PNG of [n,C,H,W] images in [0,1] (row-major), 1-pixel white gaps."""
    from PIL import Image

    n, C, H, W = images.shape
    grid = np.ones((rows * (H + 1) + 1, cols * (W + 1) + 1, C), dtype=np.float32)
    for k in range(min(n, rows * cols)):
        top, left = 1 + (k // cols) * (H + 1), 1 + (k % cols) * (W + 1)
        grid[top : top + H, left : left + W] = images[k].transpose(1, 2, 0)
    pixels = (grid * 255).round().clip(0, 255).astype(np.uint8)
    scale = max(1, 64 // H)  # tiny images are enlarged (nearest) so the sheet is readable
    img = Image.fromarray(pixels[..., 0] if C == 1 else pixels)
    img.resize((img.width * scale, img.height * scale), Image.NEAREST).save(path)
