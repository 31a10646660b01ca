"""Generator-driven, differentiable batch augmentations: DSA, random-resized-crop, CutMix.

Every random draw comes from an explicit ``torch.Generator`` passed by the caller, so a
run is reproducible from its seed alone; the global RNG and the clock are never used.
All transforms act on float batches ``[B, C, H, W]`` and are built from differentiable
torch ops, so gradients flow back to the input images (needed when the images are the
parameters being distilled).

Batches may live on any device (the engine augments on the GPU there): the draws still come
from the caller's generator (a CPU one in the engine) and only the sampled parameters move
to the batch's device, so a seed gives the same parameters everywhere and the images agree
with the CPU path to float tolerance (tests/test_augment.py).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

DSA_FAMILIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "crop": ("crop",),
    "cutout": ("cutout",),
    "flip": ("flip",),
    "scale": ("scale",),
    "rotate": ("rotate",),
}
DSA_DEFAULT_STRATEGY = "color_crop_cutout_flip_scale_rotate"

Augment = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def _check_generator(generator: object) -> torch.Generator:
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"augmentations need an explicit torch.Generator, got {type(generator).__name__}"
        )
    return generator


def _check_batch(x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dim() != 4 or not x.is_floating_point():
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected a float batch [B, C, H, W], got {shape}")


def _uniform(n: int, generator: torch.Generator, *shape: int) -> torch.Tensor:
    """Uniform [0, 1) draws of shape ``[n, *shape]`` on the generator's device."""
    return torch.rand((n, *shape), generator=generator, device=generator.device)


@dataclass
class DSAParams:
    """Sampled DSA parameters; per-sample tensors of batch size ``batch_size`` (1 broadcasts)."""

    batch_size: int
    ops: tuple[str, ...]
    draws: dict[str, torch.Tensor] = field(default_factory=dict)


class DSA:
    """Differentiable siamese augmentation with per-sample parameters."""

    def __init__(
        self,
        strategy: str = DSA_DEFAULT_STRATEGY,
        scale: float = 1.2,
        rotate: float = 15.0,
        crop: float = 0.125,
        cutout: float = 0.5,
        brightness: float = 1.0,
        saturation: float = 2.0,
        contrast: float = 0.5,
        flip_prob: float = 0.5,
        mode: str = "single",
    ) -> None:
        """``mode='single'`` applies one strategy family chosen per call; ``'multiple'`` all."""
        families = [p for p in strategy.split("_") if p] if strategy else []
        unknown = [p for p in families if p not in DSA_FAMILIES]
        if unknown or not families:
            raise ValueError(
                f"bad DSA strategy {strategy!r}: unknown parts {unknown}; "
                f"use '_'-joined parts of {', '.join(DSA_FAMILIES)}"
            )
        if mode not in ("single", "multiple"):
            raise ValueError(f"DSA mode must be 'single' or 'multiple', got {mode!r}")
        if scale < 1.0:
            raise ValueError(f"DSA scale ratio must be >= 1, got {scale}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"DSA flip_prob must be in [0, 1], got {flip_prob}")
        self.strategy = strategy
        self.families = tuple(families)
        self.mode = mode
        self.scale = float(scale)
        self.rotate = float(rotate)
        self.crop = float(crop)
        self.cutout = float(cutout)
        self.brightness = float(brightness)
        self.saturation = float(saturation)
        self.contrast = float(contrast)
        self.flip_prob = float(flip_prob)

    def __repr__(self) -> str:
        return f"DSA(strategy={self.strategy!r}, mode={self.mode!r})"

    def sample_params(self, batch_size: int, generator: torch.Generator) -> DSAParams:
        """Draw parameters for ``batch_size`` samples (1 = one shared set for any batch)."""
        g = _check_generator(generator)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if self.mode == "single":
            idx = int(torch.randint(len(self.families), (1,), generator=g, device=g.device))
            chosen = (self.families[idx],)
        else:
            chosen = self.families
        ops = tuple(op for fam in chosen for op in DSA_FAMILIES[fam])
        draws: dict[str, torch.Tensor] = {}
        for op in ops:
            if op in draws:
                continue
            draws[op] = _uniform(batch_size, g, 2 if op in ("scale", "crop", "cutout") else 1)
        return DSAParams(batch_size=batch_size, ops=ops, draws=draws)

    def apply(self, x: torch.Tensor, params: DSAParams) -> torch.Tensor:
        """Apply previously sampled parameters to ``x`` (siamese use: same params, two batches)."""
        _check_batch(x)
        if params.batch_size not in (1, x.shape[0]):
            raise ValueError(
                f"DSA params were sampled for batch size {params.batch_size}, "
                f"cannot apply to a batch of {x.shape[0]} (sample with batch_size=1 to share)"
            )
        for op in params.ops:
            u = params.draws[op].to(device=x.device, dtype=x.dtype)
            x = getattr(self, f"_{op}")(x, u)
        return x.contiguous()

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample per-sample parameters from ``generator`` and apply them."""
        _check_batch(x)
        return self.apply(x, self.sample_params(x.shape[0], generator))

    # Each op takes uniform draws ``u`` of shape [B or 1, k] and maps them to its parameters.

    def _brightness(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return x + (u.view(-1, 1, 1, 1) - 0.5) * self.brightness

    def _saturation(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            return x
        mean = x.mean(dim=1, keepdim=True)
        return (x - mean) * (u.view(-1, 1, 1, 1) * self.saturation) + mean

    def _contrast(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        return (x - mean) * (u.view(-1, 1, 1, 1) + self.contrast) + mean

    def _flip(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        return torch.where(u.view(-1, 1, 1, 1) < self.flip_prob, x.flip(3), x)

    def _affine(self, x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        theta = theta.expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=True)
        return F.grid_sample(x, grid, align_corners=True)

    def _scale(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        lo = 1.0 / self.scale
        s = u * (self.scale - lo) + lo
        zero = torch.zeros_like(s[:, 0])
        theta = torch.stack(
            [torch.stack([s[:, 0], zero, zero], 1), torch.stack([zero, s[:, 1], zero], 1)], 1
        )
        return self._affine(x, theta)

    def _rotate(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        angle = (u[:, 0] - 0.5) * 2 * self.rotate / 180 * math.pi
        cos, sin, zero = torch.cos(angle), torch.sin(angle), torch.zeros_like(angle)
        theta = torch.stack(
            [torch.stack([cos, sin, zero], 1), torch.stack([-sin, cos, zero], 1)], 1
        )
        return self._affine(x, theta)

    def _crop(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Random translation by up to ``crop`` of the side, shifting zeros in."""
        b, _, h, w = x.shape
        sh, sw = int(h * self.crop + 0.5), int(w * self.crop + 0.5)
        tx = torch.floor(u[:, 0] * (2 * sh + 1)).long() - sh
        ty = torch.floor(u[:, 1] * (2 * sw + 1)).long() - sw
        rows = torch.arange(h, device=x.device).view(1, h, 1) + tx.view(-1, 1, 1) + 1
        cols = torch.arange(w, device=x.device).view(1, 1, w) + ty.view(-1, 1, 1) + 1
        rows = rows.clamp(0, h + 1).expand(b, h, w)
        cols = cols.clamp(0, w + 1).expand(b, h, w)
        batch = torch.arange(b, device=x.device).view(b, 1, 1).expand(b, h, w)
        padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
        return padded[batch, rows, cols].permute(0, 3, 1, 2)

    def _cutout(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        """Zero a ``cutout`` x ``cutout`` fraction square at a random centre."""
        _, _, h, w = x.shape
        ch, cw = int(h * self.cutout + 0.5), int(w * self.cutout + 0.5)
        ox = torch.floor(u[:, 0] * (h + 1 - ch % 2)).long() - ch // 2
        oy = torch.floor(u[:, 1] * (w + 1 - cw % 2)).long() - cw // 2
        rows = torch.arange(h, device=x.device).view(1, h)
        cols = torch.arange(w, device=x.device).view(1, w)
        in_r = (rows >= ox.view(-1, 1)) & (rows < ox.view(-1, 1) + ch)
        in_c = (cols >= oy.view(-1, 1)) & (cols < oy.view(-1, 1) + cw)
        keep = ~(in_r[:, :, None] & in_c[:, None, :])
        return x * keep.unsqueeze(1).to(x.dtype)


@dataclass
class SoftAugmentParams:
    """Per-sample crop boxes (pixels: top, left, height, width) and flip flags."""

    boxes: torch.Tensor
    flips: torch.Tensor
    image_hw: tuple[int, int]


class SoftAugment:
    """Batch-wise RandomResizedCrop with per-sample boxes plus horizontal flip."""

    def __init__(
        self,
        scale: Sequence[float] = (0.08, 1.0),
        ratio: Sequence[float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.5,
        size: int | Sequence[int] | None = None,
        attempts: int = 10,
    ) -> None:
        """``size`` is the output side (default: the input size)."""
        lo, hi = (float(v) for v in scale)
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"SoftAugment scale must satisfy 0 < lo <= hi <= 1, got {scale}")
        rlo, rhi = (float(v) for v in ratio)
        if not 0.0 < rlo <= rhi:
            raise ValueError(f"SoftAugment ratio must satisfy 0 < lo <= hi, got {ratio}")
        if not 0.0 <= flip_prob <= 1.0:
            raise ValueError(f"SoftAugment flip_prob must be in [0, 1], got {flip_prob}")
        self.scale = (lo, hi)
        self.ratio = (rlo, rhi)
        self.flip_prob = float(flip_prob)
        if isinstance(size, int):
            size = (size, size)
        self.size = None if size is None else (int(size[0]), int(size[1]))
        self.attempts = int(attempts)

    def __repr__(self) -> str:
        return f"SoftAugment(scale={self.scale}, ratio={self.ratio}, flip_prob={self.flip_prob})"

    def sample_params(
        self, batch_size: int, image_hw: tuple[int, int], generator: torch.Generator
    ) -> SoftAugmentParams:
        """Draw one crop box and flip flag per sample (RandomResizedCrop's rejection rule)."""
        g = _check_generator(generator)
        h, w = int(image_hw[0]), int(image_hw[1])
        n, k = batch_size, self.attempts
        area = h * w * (self.scale[0] + _uniform(n, g, k) * (self.scale[1] - self.scale[0]))
        log_lo, log_hi = math.log(self.ratio[0]), math.log(self.ratio[1])
        aspect = torch.exp(log_lo + _uniform(n, g, k) * (log_hi - log_lo))
        cw = torch.round(torch.sqrt(area * aspect))
        chh = torch.round(torch.sqrt(area / aspect))
        ok = (cw > 0) & (cw <= w) & (chh > 0) & (chh <= h)
        u_top, u_left = _uniform(n, g, k), _uniform(n, g, k)
        top = torch.floor(u_top * (h - chh + 1))
        left = torch.floor(u_left * (w - cw + 1))
        # Fallback when no attempt fits: the whole image clamped to the ratio range, centred.
        in_ratio = w / h
        if in_ratio < self.ratio[0]:
            fw, fh = w, round(w / self.ratio[0])
        elif in_ratio > self.ratio[1]:
            fh, fw = h, round(h * self.ratio[1])
        else:
            fw, fh = w, h
        fallback = torch.tensor(
            [(h - fh) // 2, (w - fw) // 2, fh, fw], dtype=torch.float32, device=g.device
        )
        first = torch.argmax(ok.to(torch.int8), dim=1)
        rows = torch.arange(n, device=g.device)
        boxes = torch.stack(
            [top[rows, first], left[rows, first], chh[rows, first], cw[rows, first]], dim=1
        )
        boxes = torch.where(ok.any(dim=1, keepdim=True), boxes, fallback.expand(n, 4))
        flips = _uniform(n, g, 1)[:, 0] < self.flip_prob
        return SoftAugmentParams(boxes=boxes, flips=flips, image_hw=(h, w))

    def apply(self, x: torch.Tensor, params: SoftAugmentParams) -> torch.Tensor:
        """Crop each sample's box, resize bilinearly, flip where flagged."""
        _check_batch(x)
        b, c, h, w = x.shape
        if (h, w) != params.image_hw or params.boxes.shape[0] != b:
            raise ValueError(
                f"SoftAugment params for {params.boxes.shape[0]} images of {params.image_hw} "
                f"cannot apply to a batch of shape {tuple(x.shape)}"
            )
        boxes = params.boxes.to(device=x.device, dtype=x.dtype)
        top, left, bh, bw = boxes.unbind(1)
        sx = bw / w
        sy = bh / h
        cx = (2 * left + bw) / w - 1
        cy = (2 * top + bh) / h - 1
        sx = torch.where(params.flips.to(x.device), -sx, sx)
        zero = torch.zeros_like(sx)
        theta = torch.stack([torch.stack([sx, zero, cx], 1), torch.stack([zero, sy, cy], 1)], 1)
        out_h, out_w = self.size if self.size is not None else (h, w)
        grid = F.affine_grid(theta, [b, c, out_h, out_w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Sample per-sample boxes/flips from ``generator`` and apply them."""
        _check_batch(x)
        params = self.sample_params(x.shape[0], (x.shape[2], x.shape[3]), generator)
        return self.apply(x, params)


def sample_beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw, driven only by ``generator``."""
    g = _check_generator(generator)
    if alpha <= 0:
        raise ValueError(f"Beta alpha must be > 0, got {alpha}")
    seed = int(torch.randint(0, 2**62, (1,), generator=g, device=g.device))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def cutmix_box(h: int, w: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """Random box (top, bottom, left, right) covering about ``1 - lam`` of an h x w image."""
    g = _check_generator(generator)
    cut = math.sqrt(max(0.0, 1.0 - lam))
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(h, (1,), generator=g, device=g.device))
    cx = int(torch.randint(w, (1,), generator=g, device=g.device))
    top, bottom = min(max(cy - ch // 2, 0), h), min(max(cy + ch // 2, 0), h)
    left, right = min(max(cx - cw // 2, 0), w), min(max(cx + cw // 2, 0), w)
    return top, bottom, left, right


def cutmix(
    x: torch.Tensor, generator: torch.Generator, alpha: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Paste a random box from a permuted batch; ``lam`` = exact kept-area fraction."""
    _check_batch(x)
    g = _check_generator(generator)
    b, _, h, w = x.shape
    lam = sample_beta(alpha, g)
    perm = torch.randperm(b, generator=g, device=g.device).to(x.device)
    top, bottom, left, right = cutmix_box(h, w, lam, g)
    mask = torch.zeros((1, 1, h, w), dtype=torch.bool, device=x.device)
    mask[:, :, top:bottom, left:right] = True
    mixed = torch.where(mask, x[perm], x)
    lam = 1.0 - (bottom - top) * (right - left) / float(h * w)
    return mixed, perm, lam


def _identity(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """No augmentation."""
    return x


AUGMENTS: dict[str, Callable[..., Augment]] = {
    "none": lambda: _identity,
    "dsa": DSA,
    "rrc_flip": SoftAugment,
}


def make_augment(name: str, **params: object) -> Augment:
    """Build an augmentation ``(x, generator) -> x`` by name: none, dsa, rrc_flip."""
    if name not in AUGMENTS:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(AUGMENTS)}")
    if name == "none" and params:
        raise ValueError(f"augmentation 'none' takes no parameters, got {sorted(params)}")
    try:
        return AUGMENTS[name](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for augmentation {name!r}: {exc}") from exc
