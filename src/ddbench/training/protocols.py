"""Evaluation protocols: named parameter sets for the one training engine (no torch needed here)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

# Frozen defaults of the four label regimes (DESIGN §6); every key can be overridden in config.
PRESETS: dict[str, dict[str, Any]] = {
    "hl": {
        "labels": "hard",
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
        "schedule": "step_half",
        "augment": "dsa",
        "cutmix": 0.0,
        "temperature": 1.0,
    },
    "sl": {
        "labels": "soft",
        "optimizer": "adamw",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "batch_size": 256,
        "schedule": "cosine",
        "augment": "dsa",
        "cutmix": 0.0,
        "temperature": 4.0,
    },
    "slkd": {
        "labels": "kd",
        "optimizer": "adamw",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "batch_size": 256,
        "schedule": "cosine",
        "augment": "rrc_flip",
        "cutmix": 1.0,
        "temperature": 20.0,
    },
    "mt": {
        "labels": "kd",
        "optimizer": "adamw",
        "lr": 1e-3,
        "momentum": 0.9,
        "weight_decay": 0.01,
        "batch_size": 256,
        "schedule": "cosine",
        "augment": "rrc_flip",
        "cutmix": 1.0,
        "temperature": 20.0,
    },
    # Teacher and proxy training on the full training split.
    "teacher": {
        "labels": "hard",
        "optimizer": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "batch_size": 256,
        "schedule": "cosine",
        "augment": "none",
        "cutmix": 0.0,
        "temperature": 1.0,
    },
}


# Label regimes the engine knows; `stored` trains on the set's own soft labels at the set's
# declared temperature (as DD-Ranking's soft-label evaluation does), refused for a set without.
LABELS = ("hard", "soft", "kd", "stored")
# `lr: from_set` uses the learning rate learned with the set (MTT/DATM `syn_lr`).
LR_FROM_SET = "from_set"


@dataclass(frozen=True)
class Protocol:
    """A resolved protocol: label regime, optimiser, schedule, augmentation and budget."""

    name: str
    preset: str
    labels: str
    optimizer: str
    lr: float | str  # a number, or LR_FROM_SET until the set's syn_lr replaces it
    momentum: float
    weight_decay: float
    batch_size: int
    schedule: str
    augment: str
    cutmix: float
    temperature: float
    teachers: tuple[str, ...] = ()
    epochs: int | None = None
    full_epochs: float | None = None
    eval_batch_size: int = 512
    rrc_scale: tuple[float, float] = (0.08, 1.0)
    keep_checkpoint: bool = False
    amp: bool = False
    extra: dict = field(default_factory=dict)

    def total_steps(self, n_train: int, n_full: int) -> int:
        """Number of optimisation steps for a set of n_train images (n_full: full training split)."""
        if self.full_epochs is not None:
            return max(1, math.ceil(self.full_epochs * n_full / self.batch_size))
        return self.epochs * math.ceil(n_train / self.effective_batch(n_train))

    def effective_batch(self, n_train: int) -> int:
        """Batch size actually used: never larger than the set."""
        return max(1, min(self.batch_size, n_train))

    def budget_text(self) -> str:
        """Human description of the budget, for captions and tables."""
        if self.full_epochs is not None:
            unit = "epoch" if self.full_epochs == 1 else "epochs"
            return f"{self.full_epochs:g} full-set {unit} of compute"
        return f"{self.epochs} epoch" + ("" if self.epochs == 1 else "s")

    @property
    def lr_from_set(self) -> bool:
        """True when the learning rate is the set's learned `syn_lr`."""
        return self.lr == LR_FROM_SET

    def to_dict(self) -> dict:
        d = asdict(self)
        d["teachers"] = list(self.teachers)
        d["rrc_scale"] = list(self.rrc_scale)
        return d


def resolve_protocol(name: str, spec: dict) -> Protocol:
    """Merge a configured protocol with its preset's frozen defaults."""
    spec = dict(spec)
    preset = spec.pop("preset", name)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (known: {sorted(PRESETS)})")
    merged = {**PRESETS[preset], **spec}
    known = {f.name for f in fields(Protocol)}
    extra = {k: merged.pop(k) for k in list(merged) if k not in known}
    if merged.get("epochs") is None and merged.get("full_epochs") is None:
        raise ValueError("give a budget, `epochs` or `full_epochs`")
    if merged.get("epochs") is not None and merged.get("full_epochs") is not None:
        raise ValueError("give `epochs` or `full_epochs`, not both")
    if merged["labels"] not in LABELS:
        raise ValueError(f"unknown labels {merged['labels']!r} (known: {', '.join(LABELS)})")
    lr = merged["lr"]
    if lr != LR_FROM_SET and (
        isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0
    ):
        raise ValueError(f"lr is {lr!r}; give a positive number or {LR_FROM_SET!r}")
    merged["teachers"] = tuple(merged.get("teachers") or ())
    if "rrc_scale" in merged:
        merged["rrc_scale"] = tuple(merged["rrc_scale"])
    return Protocol(name=name, preset=preset, extra=extra, **merged)


def teacher_protocol(name: str, spec: dict) -> Protocol:
    """The protocol that trains a teacher or proxy on the full training split."""
    keys = {f.name for f in fields(Protocol)} - {"name", "preset", "teachers", "extra"}
    overrides = {k: v for k, v in spec.items() if k in keys}
    overrides.setdefault("epochs", spec.get("epochs", 1))
    return resolve_protocol(name, {"preset": "teacher", **overrides})
