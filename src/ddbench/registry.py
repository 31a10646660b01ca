"""Registries of the kinds a config can name besides methods: scorers, priors, dataset sources
and expert trajectories.

Each kind is one `Kind`: its name, a one-line summary, the parameter keys it reads (their
JSON schema and defaults come from the config schema, filled once at validation), what its
job reads besides the dataset, and the functions that do the work, named as
"module:function" so listing or validating a config imports no torch. Plugins add kinds
through entry points (`ddbench.scorers`, `ddbench.stages.priors`, `ddbench.data.sources`) whose modules
call `register_scorer` / `register_prior` / `register_source`. `ddbench list scorers` (and
`priors`, `sources`, `experts`) shows each kind with its parameters.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any


def load_entry_points(group: str, what: str) -> None:
    """Import every plugin module of an entry-point group (importing registers its kinds)."""
    for ep in entry_points(group=group):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the built-ins
            raise ImportError(
                f"{what} plugin {ep.name!r} ({ep.value}) failed to load: {exc}"
            ) from exc


@dataclass(frozen=True)
class Kind:
    """One registered kind."""

    name: str
    summary: str
    keys: tuple[str, ...]  # parameter keys it reads (besides `kind`)
    functions: dict[str, str] = field(default_factory=dict)  # role -> "module:function"
    inputs: tuple[str, ...] = ()  # what its job reads besides the dataset (e.g. teacher, prior)
    schema_path: tuple[str, ...] = ()  # where its parameters sit in the config schema, if not
    # where the registry's kinds share them

    def function(self, role: str):
        """The callable of a role ("run", "check", "load", ...), imported on first use."""
        if role not in self.functions:
            raise KeyError(f"{self.name}: no {role!r} function registered")
        module, _, name = self.functions[role].partition(":")
        return getattr(import_module(module), name)


class Registry:
    """Name -> Kind for one section of the config, with plugins from an entry-point group."""

    def __init__(self, what: str, group: str, schema_path: tuple[str, ...]):
        self.what = what
        self.group = group
        self.schema_path = (
            schema_path  # where the kinds' parameter schema sits in the config schema
        )
        self._kinds: dict[str, Kind] = {}
        self._plugins_loaded = False

    def register(self, kind: Kind) -> Kind:
        """Add a kind; registering another definition under a taken name is an error."""
        if kind.name in self._kinds and self._kinds[kind.name] != kind:
            raise ValueError(f"{self.what} kind {kind.name!r} is registered twice")
        self._kinds[kind.name] = kind
        return kind

    def _load_plugins(self) -> None:
        if not self._plugins_loaded:
            self._plugins_loaded = True
            load_entry_points(self.group, self.what)

    def names(self) -> list[str]:
        """Registered kind names, built-ins and plugins."""
        self._load_plugins()
        return sorted(self._kinds)

    def get(self, name: str) -> Kind:
        """The kind registered as `name`; KeyError naming the registered ones."""
        self._load_plugins()
        if name not in self._kinds:
            raise KeyError(
                f"unknown {self.what} kind {name!r} (registered: {', '.join(self.names())})"
            )
        return self._kinds[name]

    def parameter_schema(self, name: str) -> dict[str, Any]:
        """The JSON schema of a kind's parameters, from the config schema."""
        from ddbench.config import schema

        kind = self.get(name)
        node: Any = schema()
        for part in kind.schema_path or self.schema_path:
            node = node[part]
        props = node.get("properties", {})
        out = {}
        for key in kind.keys:
            if key in props:
                out[key] = copy.deepcopy(props[key])
            else:  # a plugin's own key: described by the plugin
                out[key] = {}
        return out


SCORERS = Registry("scorer", "ddbench.scorers", ("properties", "scorers", "additionalProperties"))
PRIORS = Registry(
    "prior", "ddbench.stages.priors", ("properties", "priors", "additionalProperties")
)
SOURCES = Registry(
    "dataset source", "ddbench.data.sources", ("properties", "datasets", "additionalProperties")
)
EXPERTS = Registry("experts", "ddbench.experts", ("properties", "experts", "additionalProperties"))


def register_scorer(kind: Kind) -> Kind:
    """Add a scorer kind: `functions["run"]` is called as
    run(dataset_path, *input_paths, name, spec, out_path, device=..., threads=...)."""
    return SCORERS.register(kind)


def register_prior(kind: Kind) -> Kind:
    """Add a prior kind: `functions["build"]` is called as build(data, spec, out_dir, device)."""
    return PRIORS.register(kind)


def register_experts(kind: Kind) -> Kind:
    """Add a kind of expert trajectories: `functions["run"]` is called as
    run(dataset_path, name, spec, out_dir, device=..., threads=...)."""
    return EXPERTS.register(kind)


def register_source(kind: Kind) -> Kind:
    """Add a dataset source kind: `functions["check"]` (spec, read_files) -> info dict and
    `functions["load"]` (spec) -> sources.RawData."""
    return SOURCES.register(kind)


_TRAINING = (
    "model",
    "small_stem",
    "runs",
    "epochs",
    "batch_size",
    "optimizer",
    "lr",
    "momentum",
    "weight_decay",
    "schedule",
    "augment",
    "seed",
    "record_every_steps",
    "store",
)
_CROPS = ("teacher", "max_images_per_class", "crops_per_image", "scale", "seed")
register_scorer(
    Kind(
        "dynamics",
        "training dynamics of proxy runs (EL2N, forgetting, CAD read them)",
        _TRAINING,
        {"run": "ddbench.stages.dynamics:record_dynamics"},
    )
)
register_scorer(
    Kind(
        "crops",
        "random-resized crops scored by a teacher's loss (RDED, CA2D)",
        _CROPS,
        {"run": "ddbench.stages.crops:score_crops"},
        inputs=("teacher",),
    )
)
register_scorer(
    Kind(
        "ddps",
        "patches scored by a diffusion prior's conditional noise-prediction gain (DDPS)",
        (
            *_CROPS,
            "prior",
            "t_range",
            "timesteps",
            "dift_t",
            "dift_block",
            "keep_per_image",
        ),
        {"run": "ddbench.stages.ddps:score_patches"},
        inputs=("prior", "teacher"),
    )
)

_UNET_KEYS = (
    "block_out_channels",
    "layers_per_block",
    "attention",
    "norm_groups",
    "epochs",
    "max_images_per_class",
    "batch_size",
    "lr",
    "weight_decay",
    "label_dropout",
    "num_train_timesteps",
    "beta_schedule",
    "seed",
    "sample_steps",
    "sample_guidance",
    "samples_per_class",
)
_SD_KEYS = (
    "path",
    "prompt_template",
    "resolution",
    "seed",
    "sample_steps",
    "sample_guidance",
    "samples_per_class",
)
register_prior(
    Kind(
        "unet",
        "class-conditional UNet trained by the workflow with label dropout (classifier-free guidance)",
        _UNET_KEYS,
        {"build": "ddbench.stages.diffusion:build_unet_prior"},
        schema_path=("$defs", "unet_prior"),
    )
)
register_prior(
    Kind(
        "stable_diffusion",
        "a pretrained Stable Diffusion pipeline from a local folder (never downloaded)",
        _SD_KEYS,
        {"build": "ddbench.stages.diffusion:build_sd_prior"},
        schema_path=("$defs", "sd_prior"),
    )
)

register_experts(
    Kind(
        "trajectories",
        "SGD training trajectories of expert networks on the real training split (MTT, DATM)",
        (
            "model",
            "small_stem",
            "n_experts",
            "epochs",
            "batch_size",
            "lr",
            "momentum",
            "weight_decay",
            "dsa",
            "zca",
            "seed",
        ),
        {"run": "ddbench.stages.experts:train_experts"},
    )
)

_CAPS = ("max_train_per_class", "max_test_per_class")
for _name, _summary, _keys in (
    ("digits", "scikit-learn's bundled 8x8 digits (offline)", ("test_fraction", *_CAPS)),
    ("fashion_mnist", "Fashion-MNIST IDX files (plain or gzipped)", ("path", *_CAPS)),
    ("cifar10", "CIFAR-10 python batches", ("path", *_CAPS)),
    ("cifar100", "CIFAR-100 python batches (fine labels)", ("path", *_CAPS)),
    (
        "imagefolder",
        "train/<class>/ and val|test/<class>/ image folders (ImageNet layout)",
        ("path", "image_size", "channels", "classes", "class_names", *_CAPS),
    ),
):
    register_source(
        Kind(
            _name,
            _summary,
            _keys,
            {
                "check": f"ddbench.data.sources:_check_{_name.rstrip('0123456789')}",
                "load": f"ddbench.data.sources:_load_{_name.rstrip('0123456789')}",
                "layout": f"ddbench.data.sources:_layout_{_name.rstrip('0123456789')}",
            },
        )
    )
