"""The one training engine for teachers, proxies and students, under every protocol."""

from __future__ import annotations

import math
import os
import platform
import resource
import sys
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ddbench.errors import TrainingDivergedError
from ddbench.training import optim
from ddbench.training.augment import cutmix, make_augment
from ddbench.training.protocols import Protocol


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` picks CUDA when present, else CPU; `cpu` and `cuda[:i]` are taken literally."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} requested but CUDA is not available on this machine")
    return torch.device(name)


def set_determinism(seed: int, threads: int | None = None) -> None:
    """Seed torch/numpy and ask for deterministic kernels (bitwise-repeatable on CPU)."""
    if threads:
        torch.set_num_threads(int(threads))
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    # the C-level switch of torch.use_deterministic_algorithms: the Python wrapper also
    # configures torch.compile's inductor, which imports it and costs ~2 s in every job
    torch._C._set_deterministic_algorithms(True, warn_only=True)
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True


class Normalize(torch.nn.Module):
    """Per-channel normalisation as the first layer, so every model takes [0,1] images."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class Classifier(torch.nn.Module):
    """A backbone behind a normalisation layer; `features` gives the penultimate embedding."""

    def __init__(self, backbone: torch.nn.Module, mean, std):
        super().__init__()
        self.norm = Normalize(mean, std)
        self.backbone = backbone

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.norm(x))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(self.norm(x))


def build_classifier(
    model_name: str, num_classes: int, in_chans: int, image_size: int, mean, std, **kw
):
    """create_model wrapped with the dataset's normalisation."""
    from ddbench.training.models import create_model

    return Classifier(create_model(model_name, num_classes, in_chans, image_size, **kw), mean, std)


@dataclass
class TrainResult:
    """What a training run reports."""

    steps: int
    epochs: float
    final_train_loss: float
    wall_time_s: float
    images_per_s: float
    history: list[float] = field(default_factory=list)


def _optimizer(model: torch.nn.Module, p: Protocol) -> optim.SGD | optim.Adam:
    params = [q for q in model.parameters() if q.requires_grad]
    if p.optimizer == "sgd":
        return optim.SGD(params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    if p.optimizer == "adamw":
        return optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    if p.optimizer == "adam":
        return optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)
    raise ValueError(f"protocol {p.name}: unknown optimizer {p.optimizer!r}")


def _lr_factor(p: Protocol, step: int, total: int) -> float:
    if p.schedule == "step_half":
        return 0.1 if step >= total // 2 else 1.0
    if p.schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / total))
    if p.schedule == "constant":
        return 1.0
    raise ValueError(f"protocol {p.name}: unknown schedule {p.schedule!r}")


@torch.no_grad()
def teacher_probs(
    teachers: list[torch.nn.Module], x: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Mean over teachers of softmax(logits / T): the soft label of a batch."""
    probs = [F.softmax(t(x) / temperature, dim=1) for t in teachers]
    return torch.stack(probs).mean(0)


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor, batch_size: int = 512, device=None
) -> torch.Tensor:
    """Logits for a float image tensor, batched, in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [
        model(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def embed(
    model: Classifier, images: torch.Tensor, batch_size: int = 512, device=None
) -> torch.Tensor:
    """Penultimate features, batched, in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [
        model.features(images[i : i + batch_size].to(device)).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out)


def accuracy(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512
) -> float:
    """Top-1 accuracy in percent."""
    logits = predict(model, images, batch_size)
    return float((logits.argmax(1) == labels).float().mean().item() * 100.0)


def soft_kl(logits: torch.Tensor, target_probs: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(target || softmax(logits/T)) * T², batch mean: the soft-label loss."""
    log_p = F.log_softmax(logits / temperature, dim=1)
    return F.kl_div(log_p, target_probs, reduction="batchmean") * temperature**2


def train(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    protocol: Protocol,
    seed: int,
    *,
    n_full: int,
    teachers: list[torch.nn.Module] | None = None,
    soft_labels: torch.Tensor | None = None,
    device: torch.device | None = None,
    desc: str = "train",
    on_epoch_end=None,
) -> TrainResult:
    """Train `model` on float images [n,C,H,W] in [0,1] under `protocol`; all randomness from `seed`."""
    device = device or torch.device("cpu")
    model.to(device)
    teachers = [t.to(device).eval() for t in (teachers or [])]
    for t in teachers:
        t.requires_grad_(False)
    n = len(images)
    if n == 0:
        raise ValueError("cannot train on an empty set")
    bs = protocol.effective_batch(n)
    total = protocol.total_steps(n, n_full)
    steps_per_epoch = math.ceil(n / bs)
    gen = torch.Generator().manual_seed(int(seed))
    augment = make_augment(protocol.augment, **_augment_params(protocol))
    opt = _optimizer(model, protocol)
    base_lrs = [g["lr"] for g in opt.param_groups]
    T = protocol.temperature
    if protocol.labels == "soft" and soft_labels is None:
        if not teachers:
            raise ValueError(f"protocol {protocol.name}: soft labels need a teacher")
        bsz = protocol.eval_batch_size
        soft_labels = torch.cat(
            [
                teacher_probs(teachers, images[i : i + bsz].to(device), T).cpu()
                for i in range(0, n, bsz)
            ]
        )
    if protocol.labels == "kd" and not teachers:
        raise ValueError(f"protocol {protocol.name}: online KD needs at least one teacher")

    # mixed precision only where it pays off (CUDA); on CPU the fp32 path is unchanged
    amp = bool(protocol.amp) and device.type == "cuda"
    history: list[float] = []
    step = 0
    seen = 0
    t0 = time.perf_counter()
    epochs_total = math.ceil(total / steps_per_epoch)
    bar = tqdm(total=epochs_total, desc=desc, file=sys.stderr, mininterval=2.0, leave=True)
    running = 0.0
    count = 0
    while step < total:
        model.train()
        perm = torch.randperm(n, generator=gen)
        for b in range(steps_per_epoch):
            if step >= total:
                break
            idx = perm[b * bs : (b + 1) * bs]
            x = augment(images[idx], gen).to(device, non_blocking=True)
            mix = None
            if protocol.cutmix > 0:
                x, mix_perm, lam = cutmix(x, gen, alpha=protocol.cutmix)
                mix = (mix_perm.to(device), lam)
            factor = _lr_factor(protocol, step, total)
            for g, lr in zip(opt.param_groups, base_lrs, strict=True):
                g["lr"] = lr * factor
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            if protocol.labels == "hard":
                y = labels[idx].to(device)
                loss = F.cross_entropy(logits, y)
                if mix is not None:
                    loss = mix[1] * loss + (1 - mix[1]) * F.cross_entropy(logits, y[mix[0]])
            elif protocol.labels == "soft":
                target = soft_labels[idx].to(device)
                if mix is not None:
                    target = mix[1] * target + (1 - mix[1]) * target[mix[0]]
                loss = soft_kl(logits, target, T)
            elif protocol.labels == "kd":
                target = teacher_probs(teachers, x, T)
                loss = soft_kl(logits, target, T)
            else:
                raise ValueError(f"protocol {protocol.name}: unknown labels {protocol.labels!r}")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            seen += len(idx)
            # the one host sync of the step, taken anyway for the running loss
            value = float(loss.detach())
            if not math.isfinite(value):
                bar.close()
                raise _diverged(protocol, desc, value, step, total, len(history) + 1, factor)
            running += value
            count += 1
        history.append(running / max(count, 1))
        bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
        bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(len(history) - 1, model)
        running, count = 0.0, 0
    bar.close()
    wall = time.perf_counter() - t0
    return TrainResult(
        steps=step,
        epochs=step / steps_per_epoch,
        final_train_loss=history[-1] if history else float("nan"),
        wall_time_s=wall,
        images_per_s=seen / wall if wall > 0 else float("nan"),
        history=history,
    )


def _diverged(
    p: Protocol, desc: str, loss: float, step: int, total: int, epoch: int, factor: float
) -> TrainingDivergedError:
    """The error of a non-finite loss: where it happened and which learning rate to lower."""
    if p.preset == "teacher":
        # teachers and dynamics proxies: the protocol is named after the teacher or scorer
        hint = f"lower the lr of teachers.{p.name} or scorers.{p.name}"
    else:
        hint = f"lower protocols.{p.name}.lr"
    return TrainingDivergedError(
        f"training diverged ({desc}): loss is {loss} at step {step} of {total} (epoch {epoch}) "
        f"of protocol {p.name} (lr {p.lr:g} × {factor:.3g} schedule = {p.lr * factor:.3g}, "
        f"optimizer {p.optimizer}); nothing is written; {hint}"
    )


def _augment_params(p: Protocol) -> dict:
    if p.augment == "rrc_flip":
        return {"scale": tuple(p.rrc_scale)}
    return {}


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if platform.system() == "Darwin" else rss / 1024


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape a result."""
    import h5py

    from ddbench import __version__

    return {
        "ddbench": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "h5py": h5py.__version__,
    }
