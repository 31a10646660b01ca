"""The one training engine for teachers, proxies and students, under every protocol."""

from __future__ import annotations

import math
import os
import platform
import resource
import sys
import time
import typing
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


class Source(typing.Protocol):
    """Images a loop reads by index: `batch(idx, device)` gives float [b,C,H,W] in [0,1] there."""

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor: ...


class TensorSource:
    """A float image tensor [n,C,H,W] in [0,1] as a `Source` (condensed sets, small data)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        if self.images.device != device and device.type == "cuda":
            return _to_device(self.images[idx], device)
        return self.images[idx.to(self.images.device)].to(device)

    def rows(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        return _to_device(self.images[start:stop], device)

    def to(self, device: torch.device) -> TensorSource:
        """The same images moved to `device` (once, for the whole run)."""
        return TensorSource(self.images.detach().to(device))


class ImageSource:
    """uint8 NHWC images (in memory or `H5Images`) as a `Source`: each batch read, moved, then made float.

    The uint8 batch crosses to the device (pinned, non-blocking on CUDA) and becomes float
    there; the values equal `to_float_chw` bit for bit. `indices` selects a subset;
    `transform` (float32 NCHW NumPy -> same, e.g. a fitted ZCA) is applied per batch on the host.
    """

    def __init__(self, images, indices=None, transform=None) -> None:
        self.images = images
        self.indices = None if indices is None else np.asarray(indices, dtype=np.int64)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images) if self.indices is None else len(self.indices)

    @property
    def streamed(self) -> bool:
        """True when batches are read from the file (worth reading the next one ahead)."""
        return not isinstance(self.images, np.ndarray)

    def fetch(self, idx: torch.Tensor) -> np.ndarray:
        """The uint8 rows of a batch, on the host (safe to call from a reader thread)."""
        idx = idx.cpu().numpy()
        return self.images[idx if self.indices is None else self.indices[idx]]

    def place(self, rows: np.ndarray, device: torch.device) -> torch.Tensor:
        """Fetched rows -> float [b,C,H,W] in [0,1] (or transformed) on `device`."""
        if self.transform is not None:
            from ddbench.data.datasets import to_float_chw

            x = self.transform(to_float_chw(rows))
            return _to_device(torch.from_numpy(np.ascontiguousarray(x, np.float32)), device)
        return _uint8_to_float(rows, device)

    def batch(self, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
        return self.place(self.fetch(idx), device)

    def rows(self, start: int, stop: int, device: torch.device) -> torch.Tensor:
        """Rows start..stop-1 (of the subset, if any): one contiguous read when unsubset."""
        if self.indices is None:
            return self.place(self.images[start:stop], device)
        return self.place(self.images[self.indices[start:stop]], device)


def data_source(data, split: str = "train", indices=None, transform=None) -> ImageSource:
    """A `Source` over a prepared dataset's split (optionally the rows `indices`), read per batch."""
    return ImageSource(data.split(split)[0], indices, transform)


def as_source(images) -> Source:
    """A float tensor becomes a `TensorSource`; a `Source` is returned as is."""
    if isinstance(images, torch.Tensor):
        return TensorSource(images)
    if hasattr(images, "batch") and hasattr(images, "__len__"):
        return images
    raise TypeError(f"expected a float image tensor or a Source, got {type(images).__name__}")


def _to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Host -> device copy; on CUDA through pinned memory, non-blocking."""
    device = torch.device(device)
    if device.type == "cuda" and x.device.type == "cpu":
        return x.pin_memory().to(device, non_blocking=True)
    return x.to(device)


def _uint8_to_float(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 [b,H,W,C] -> float32 [b,C,H,W] / 255 on `device` (equal to `to_float_chw`)."""
    x = _to_device(torch.from_numpy(np.ascontiguousarray(images)), device)
    # standard NCHW strides (a bare `.contiguous()` keeps odd ones when C = 1, and the
    # convolutions then take another path: the results would no longer match bit for bit)
    x = x.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format)
    return x.div_(255.0)


def _source_rows(src: Source, start: int, stop: int, device: torch.device) -> torch.Tensor:
    if hasattr(src, "rows"):
        return src.rows(start, stop, device)
    return src.batch(torch.arange(start, stop), device)


class _Prefetcher:
    """Reads a streamed source's next batch on a thread while the current one trains.

    Only the file read moves off the loop (it needs no random draws); the batches of an
    epoch are known once its permutation is drawn, so results do not change.
    """

    def __init__(self, src: Source) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.src = src
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddbench-reader")
        self.batches: list[torch.Tensor] = []
        self.pending: dict[int, object] = {}

    def start(self, batches: list[torch.Tensor]) -> None:
        self.batches = batches
        self.pending = {}
        self._submit(0)

    def _submit(self, b: int) -> None:
        if b < len(self.batches):
            self.pending[b] = self.pool.submit(self.src.fetch, self.batches[b])

    def take(self, b: int) -> np.ndarray:
        future = self.pending.pop(b, None)
        if future is None:
            future = self.pool.submit(self.src.fetch, self.batches[b])
        self._submit(b + 1)  # one ahead
        return future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DevicePlan:
    """How a run uses its device; `device_plan` picks it, tests may force the CUDA choices on CPU.

    `data_on_device`: a float-tensor set moves to the device once and is augmented there
    (draws still from the CPU generator); `torch_optim`: torch.optim's multi-tensor
    (`fused` where supported) SGD/Adam instead of ddbench.training.optim; `channels_last`
    and `amp` (bf16 autocast) for convolutions on CUDA.
    """

    data_on_device: bool = False
    torch_optim: bool = False
    fused: bool = False
    channels_last: bool = False
    amp: bool = False


def device_plan(device: torch.device, protocol: Protocol) -> DevicePlan:
    """CUDA: set and augmentation on device, fused torch.optim, bf16 + channels_last if amp; CPU: as before."""
    if device.type != "cuda":
        return DevicePlan()
    amp = bool(protocol.amp)
    return DevicePlan(data_on_device=True, torch_optim=True, fused=True, channels_last=amp, amp=amp)


# a float-tensor set up to this size moves to the GPU for the run (condensed sets are far smaller)
DEVICE_SET_MAX_BYTES = 2 << 30


@dataclass
class TrainResult:
    """What a training run reports."""

    steps: int
    epochs: float
    final_train_loss: float
    wall_time_s: float
    images_per_s: float
    history: list[float] = field(default_factory=list)


def _optimizer(model: torch.nn.Module, p: Protocol, plan: DevicePlan | None = None):
    params = [q for q in model.parameters() if q.requires_grad]
    if plan is not None and plan.torch_optim:
        return _torch_optimizer(params, p, plan.fused)
    if p.optimizer == "sgd":
        return optim.SGD(params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    if p.optimizer == "adamw":
        return optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay)
    if p.optimizer == "adam":
        return optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay)
    raise ValueError(f"protocol {p.name}: unknown optimizer {p.optimizer!r}")


def _torch_optimizer(params: list, p: Protocol, fused: bool) -> torch.optim.Optimizer:
    """torch.optim's multi-tensor (`fused`: single-kernel) SGD / Adam / AdamW: the CUDA path."""
    kw = {"fused": True} if fused else {"foreach": True}
    if p.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay, **kw
        )
    if p.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=p.lr, weight_decay=p.weight_decay, **kw)
    if p.optimizer == "adam":
        return torch.optim.Adam(params, lr=p.lr, weight_decay=p.weight_decay, **kw)
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
def _map_batches(fn, images, batch_size: int, device) -> list[torch.Tensor]:
    """`fn` over consecutive batches of a float tensor or `Source`, outputs float on the CPU."""
    src = as_source(images)
    device = torch.device(device)  # callers may name it ("cpu", "cuda:0")
    n = len(src)
    return [
        fn(_source_rows(src, i, min(i + batch_size, n), device)).float().cpu()
        for i in range(0, n, batch_size)
    ]


@torch.no_grad()
def predict(
    model: torch.nn.Module, images: torch.Tensor | Source, batch_size: int = 512, device=None
) -> torch.Tensor:
    """Logits for a float image tensor or a `Source`, batched, in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = _map_batches(model, images, batch_size, device)
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def embed(
    model: Classifier, images: torch.Tensor | Source, batch_size: int = 512, device=None
) -> torch.Tensor:
    """Penultimate features of a float image tensor or a `Source`, batched, in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    return torch.cat(_map_batches(model.features, images, batch_size, device))


def accuracy(
    model: torch.nn.Module,
    images: torch.Tensor | Source,
    labels: torch.Tensor,
    batch_size: int = 512,
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
    images: torch.Tensor | Source,
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
    on_step_end=None,
    plan: DevicePlan | None = None,
) -> TrainResult:
    """Train `model` on float images [n,C,H,W] in [0,1] under `protocol`; all randomness from `seed`.

    `images` is a float tensor or a `Source` (e.g. `data_source(data)`: uint8 read per batch).
    `on_epoch_end(epoch, model)` runs after each epoch (0-based), `on_step_end(step, model)`
    after each optimiser step (1-based count of steps done); either may switch to eval mode.
    `plan` (how the device is used) defaults to `device_plan(device, protocol)`.
    """
    device = device or torch.device("cpu")
    plan = plan or device_plan(device, protocol)
    model.to(device)
    if plan.channels_last:
        model.to(memory_format=torch.channels_last)
    teachers = [t.to(device).eval() for t in (teachers or [])]
    for t in teachers:
        t.requires_grad_(False)
    src = as_source(images)
    n = len(src)
    if n == 0:
        raise ValueError("cannot train on an empty set")
    if (
        plan.data_on_device
        and isinstance(src, TensorSource)
        and src.images.nbytes <= DEVICE_SET_MAX_BYTES
    ):
        src = src.to(device)
    # augmentation runs where the batch is: on the device with the set there, else on the host
    batch_device = device if plan.data_on_device else torch.device("cpu")
    bs = protocol.effective_batch(n)
    total = protocol.total_steps(n, n_full)
    steps_per_epoch = math.ceil(n / bs)
    gen = torch.Generator().manual_seed(int(seed))
    augment = make_augment(protocol.augment, **_augment_params(protocol))
    opt = _optimizer(model, protocol, plan)
    base_lrs = [g["lr"] for g in opt.param_groups]
    T = protocol.temperature
    if protocol.labels == "soft" and soft_labels is None:
        if not teachers:
            raise ValueError(f"protocol {protocol.name}: soft labels need a teacher")
        bsz = protocol.eval_batch_size
        soft_labels = torch.cat(
            [
                teacher_probs(teachers, _source_rows(src, i, min(i + bsz, n), device), T).cpu()
                for i in range(0, n, bsz)
            ]
        )
    if protocol.labels == "kd" and not teachers:
        raise ValueError(f"protocol {protocol.name}: online KD needs at least one teacher")
    if plan.data_on_device:  # per-sample targets beside the set: no host copy per step
        labels = labels.to(device)
        soft_labels = None if soft_labels is None else soft_labels.to(device)

    # mixed precision only where it pays off (CUDA); on CPU the fp32 path is unchanged
    amp = plan.amp and device.type == "cuda"
    history: list[float] = []
    step = 0
    seen = 0
    t0 = time.perf_counter()
    epochs_total = math.ceil(total / steps_per_epoch)
    bar = tqdm(total=epochs_total, desc=desc, file=sys.stderr, mininterval=2.0, leave=True)
    running = 0.0
    count = 0
    reader = _Prefetcher(src) if getattr(src, "streamed", False) else None
    while step < total:
        model.train()
        perm = torch.randperm(n, generator=gen)
        batches = [perm[b * bs : (b + 1) * bs] for b in range(min(steps_per_epoch, total - step))]
        if reader is not None:
            reader.start(batches)
        for b, idx in enumerate(batches):
            if reader is not None:
                x = src.place(reader.take(b), batch_device)
            else:
                x = src.batch(idx, batch_device)
            x = augment(x, gen).to(device, non_blocking=True)
            mix = None
            if protocol.cutmix > 0:
                x, mix_perm, lam = cutmix(x, gen, alpha=protocol.cutmix)
                mix = (mix_perm.to(device), lam)
            if plan.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
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
                if reader is not None:
                    reader.close()
                raise _diverged(protocol, desc, value, step, total, len(history) + 1, factor)
            running += value
            count += 1
            if on_step_end is not None:
                on_step_end(step, model)
                model.train()
        history.append(running / max(count, 1))
        bar.set_postfix(loss=f"{history[-1]:.4f}", refresh=False)
        bar.update(1)
        if on_epoch_end is not None:
            on_epoch_end(len(history) - 1, model)
        running, count = 0.0, 0
    bar.close()
    if reader is not None:
        reader.close()
    wall = time.perf_counter() - t0
    if plan.channels_last:
        model.to(memory_format=torch.contiguous_format)  # leave the model as it came
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
