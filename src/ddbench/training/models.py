"""Model registry: DD ConvNets and timm backbones, built from one name string.

Importing this module is cheap: torch is imported inside the functions that need it
and timm only inside the timm constructor, so configuration validation can call
:func:`parse_model_name` in a light process.

Names:

* ``convnet-d{depth}-w{width}-{norm}[-{pool}]`` - the DD ConvNet; ``norm`` is ``in``
  (instance norm as GroupNorm(width, width)), ``bn`` or ``none``; ``pool`` is ``avg``
  (default), ``max`` or ``nopool``.  ``convnet-d3-w128-in`` is the usual benchmark net.
* ``timm:<model>`` - any timm architecture, always randomly initialised.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Mapping
from typing import Any

MODEL_FAMILIES: dict[str, Callable[..., Any]] = {}
_FAMILY_PARSERS: dict[str, Callable[[str], dict[str, Any]]] = {}

CONVNET_NORMS = ("in", "bn", "none")
CONVNET_POOLS = ("avg", "max", "nopool")


def register_model_family(
    prefix: str, parse: Callable[[str], dict[str, Any]] | None = None
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering ``constructor(spec, num_classes, in_chans, image_size, **kw)``."""
    if not re.fullmatch(r"[a-z][a-z0-9_]*", prefix):
        raise ValueError(f"model family prefix {prefix!r} must match [a-z][a-z0-9_]*")

    def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
        MODEL_FAMILIES[prefix] = fn
        _FAMILY_PARSERS[prefix] = parse if parse is not None else _parse_generic(prefix)
        return fn

    return decorator


def list_model_families() -> list[str]:
    """Registered family prefixes, sorted."""
    return sorted(MODEL_FAMILIES)


def _parse_generic(prefix: str) -> Callable[[str], dict[str, Any]]:
    def parse(name: str) -> dict[str, Any]:
        return {"family": prefix, "name": name}

    return parse


def _family_of(name: str) -> str:
    if ":" in name:
        return name.split(":", 1)[0]
    return name.split("-", 1)[0]


def parse_model_name(name: str) -> dict[str, Any]:
    """Validate a model name and return its parsed fields (no torch needed)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    family = _family_of(name)
    if family not in _FAMILY_PARSERS:
        raise ValueError(
            f"unknown model family {family!r} in model name {name!r}; "
            f"known families: {', '.join(list_model_families())} "
            "(e.g. 'convnet-d3-w128-in' or 'timm:resnet18')"
        )
    spec = _FAMILY_PARSERS[family](name)
    spec.setdefault("family", family)
    spec.setdefault("name", name)
    return spec


def _parse_convnet(name: str) -> dict[str, Any]:
    usage = "expected 'convnet-d{depth}-w{width}-{in|bn|none}[-{avg|max|nopool}]'"
    parts = name.split("-")
    if parts[0] != "convnet" or len(parts) not in (4, 5):
        raise ValueError(f"bad ConvNet name {name!r}: {usage}")
    m_depth = re.fullmatch(r"d(\d+)", parts[1])
    if not m_depth:
        raise ValueError(f"bad ConvNet name {name!r}: depth field {parts[1]!r}; {usage}")
    m_width = re.fullmatch(r"w(\d+)", parts[2])
    if not m_width:
        raise ValueError(f"bad ConvNet name {name!r}: width field {parts[2]!r}; {usage}")
    depth, width = int(m_depth.group(1)), int(m_width.group(1))
    if depth < 1:
        raise ValueError(f"bad ConvNet name {name!r}: depth must be >= 1")
    if width < 1:
        raise ValueError(f"bad ConvNet name {name!r}: width must be >= 1")
    norm = parts[3]
    if norm not in CONVNET_NORMS:
        raise ValueError(
            f"bad ConvNet name {name!r}: norm {norm!r} not one of {', '.join(CONVNET_NORMS)}"
        )
    pool = parts[4] if len(parts) == 5 else "avg"
    if pool not in CONVNET_POOLS:
        raise ValueError(
            f"bad ConvNet name {name!r}: pool {pool!r} not one of {', '.join(CONVNET_POOLS)}"
        )
    return {
        "family": "convnet",
        "name": name,
        "depth": depth,
        "width": width,
        "norm": norm,
        "pool": pool,
    }


def _parse_timm(name: str) -> dict[str, Any]:
    arch = name.split(":", 1)[1]
    if not arch:
        raise ValueError(f"bad timm model name {name!r}: expected 'timm:<architecture>'")
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+", arch):
        raise ValueError(
            f"bad timm model name {name!r}: architecture {arch!r} may only contain "
            "letters, digits, '_', '.', '-'"
        )
    return {"family": "timm", "name": name, "arch": arch}


def convnet_feature_size(image_size: int, depth: int, pool: str, name: str = "convnet") -> int:
    """Side length of the ConvNet's last feature map; ValueError if pooling reaches 0."""
    size = image_size
    if pool == "nopool":
        return size
    for _ in range(depth):
        if size // 2 < 1:
            raise ValueError(
                f"model {name!r} cannot take image_size={image_size}: {depth} pooled "
                f"blocks would shrink the feature map to 0 (use fewer blocks or '-nopool')"
            )
        size //= 2
    return size


@functools.cache
def _convnet_class() -> type:
    """Build (once) the ConvNet nn.Module class; kept lazy so the module imports without torch."""
    from torch import nn

    class ConvNet(nn.Module):
        """Conv3x3 -> norm -> ReLU -> pool blocks followed by one linear classifier."""

        def __init__(
            self,
            in_chans: int,
            num_classes: int,
            image_size: int,
            depth: int = 3,
            width: int = 128,
            norm: str = "in",
            pool: str = "avg",
            name: str = "convnet",
        ) -> None:
            super().__init__()
            if norm not in CONVNET_NORMS:
                raise ValueError(f"ConvNet norm {norm!r} not one of {CONVNET_NORMS}")
            if pool not in CONVNET_POOLS:
                raise ValueError(f"ConvNet pool {pool!r} not one of {CONVNET_POOLS}")
            size = convnet_feature_size(image_size, depth, pool, name)
            layers: list[nn.Module] = []
            chans = in_chans
            for _ in range(depth):
                layers.append(nn.Conv2d(chans, width, kernel_size=3, padding=1))
                if norm == "in":
                    layers.append(nn.GroupNorm(width, width, affine=True))
                elif norm == "bn":
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.ReLU())
                if pool == "avg":
                    layers.append(nn.AvgPool2d(kernel_size=2, stride=2))
                elif pool == "max":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                chans = width
            self.body = nn.Sequential(*layers)
            self.feature_size = size
            self.num_features = width * size * size
            self.num_classes = num_classes
            self.classifier = nn.Linear(self.num_features, num_classes)

        def features(self, x: Any) -> Any:
            """Penultimate (flattened) embedding."""
            return self.body(x).flatten(1)

        def forward(self, x: Any) -> Any:
            """Class logits."""
            return self.classifier(self.features(x))

    # Make the class picklable as ``ddbench.training.models.ConvNet`` (resolved by __getattr__).
    ConvNet.__module__ = __name__
    ConvNet.__qualname__ = "ConvNet"
    return ConvNet


@functools.cache
def _timm_wrapper_class() -> type:
    """Build (once) the wrapper that gives timm models ``features`` and ``num_features``."""
    from torch import nn

    class TimmModel(nn.Module):
        """A timm model with ``features(x)`` (pre-logits embedding) and ``num_features``.

        Attribute reads fall through to the wrapped model (``m.conv1``); its state-dict
        keys carry the ``model.`` prefix.
        """

        def __init__(self, model: nn.Module) -> None:
            super().__init__()
            self.model = model
            self.num_features = int(model.num_features)

        def forward(self, x: Any) -> Any:
            """Class logits."""
            return self.model(x)

        def features(self, x: Any) -> Any:
            """Penultimate embedding (``forward_head(..., pre_logits=True)``)."""
            return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

        def __getattr__(self, name: str) -> Any:
            try:
                return super().__getattr__(name)
            except AttributeError:
                inner = self.__dict__.get("_modules", {}).get("model")
                if inner is None or name.startswith("__"):
                    raise
                return getattr(inner, name)

    TimmModel.__module__ = __name__
    TimmModel.__qualname__ = "TimmModel"
    return TimmModel


def __getattr__(name: str) -> Any:
    if name == "ConvNet":
        return _convnet_class()
    if name == "TimmModel":
        return _timm_wrapper_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@register_model_family("convnet", parse=_parse_convnet)
def _create_convnet(
    spec: Mapping[str, Any], num_classes: int, in_chans: int, image_size: int, **kwargs: Any
) -> Any:
    if kwargs:
        raise ValueError(f"model {spec['name']!r} takes no extra options, got {sorted(kwargs)}")
    return _convnet_class()(
        in_chans=in_chans,
        num_classes=num_classes,
        image_size=image_size,
        depth=spec["depth"],
        width=spec["width"],
        norm=spec["norm"],
        pool=spec["pool"],
        name=spec["name"],
    )


def _apply_small_stem(model: Any) -> bool:
    """Swap a ResNet-like stem for conv3x3/stride 1 without max-pool; False if not ResNet-like."""
    from torch import nn

    conv1 = getattr(model, "conv1", None)
    if not isinstance(conv1, nn.Module) or not hasattr(model, "maxpool"):
        return False
    convs = (
        [conv1]
        if isinstance(conv1, nn.Conv2d)
        else [m for m in conv1.modules() if isinstance(m, nn.Conv2d)]
    )
    if not convs:
        return False
    in_chans, out_chans = convs[0].in_channels, convs[-1].out_channels
    model.conv1 = nn.Conv2d(in_chans, out_chans, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return True


@register_model_family("timm", parse=_parse_timm)
def _create_timm(
    spec: Mapping[str, Any],
    num_classes: int,
    in_chans: int,
    image_size: int,
    small_stem: bool | None = None,
    **kwargs: Any,
) -> Any:
    import timm

    arch = spec["arch"]
    if kwargs.pop("pretrained", False):
        raise ValueError(f"model {spec['name']!r}: pretrained weights are never downloaded")
    if not timm.is_model(arch):
        raise ValueError(f"model {spec['name']!r}: timm has no architecture {arch!r}")
    model = timm.create_model(
        arch, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs
    )
    want = image_size <= 64 if small_stem is None else small_stem
    applied = bool(want) and _apply_small_stem(model)
    if want and not applied and small_stem is not None:
        raise ValueError(
            f"model {spec['name']!r}: small_stem=True needs a ResNet-like model "
            "with 'conv1' and 'maxpool' modules"
        )
    wrapped = _timm_wrapper_class()(model)
    wrapped.small_stem = applied
    return wrapped


def create_model(name: str, num_classes: int, in_chans: int, image_size: int, **kwargs: Any) -> Any:
    """Build a randomly initialised model by name; ``checkpoint=path`` loads a state dict."""
    spec = parse_model_name(name)
    for label, value in (
        ("num_classes", num_classes),
        ("in_chans", in_chans),
        ("image_size", image_size),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"model {name!r}: {label} must be a positive int, got {value!r}")
    checkpoint = kwargs.pop("checkpoint", None)
    model = MODEL_FAMILIES[spec["family"]](spec, num_classes, in_chans, image_size, **kwargs)
    model.ddbench_name = name
    if checkpoint is not None:
        import torch

        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
        load_state_checked(model, state, checkpoint)
    return model


def model_fingerprint(model: Any) -> dict[str, Any]:
    """Class name, registry name, parameter count and a hash of parameter names/shapes."""
    shapes = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    digest = hashlib.sha256(repr(shapes).encode()).hexdigest()
    cls = type(model).__name__
    inner = getattr(model, "_modules", {}).get("model") if cls == "TimmModel" else None
    return {
        "class": cls if inner is None else f"{cls}({type(inner).__name__})",
        "name": getattr(model, "ddbench_name", None),
        "num_params": int(sum(p.numel() for p in model.parameters())),
        "state_shapes_sha256": digest,
    }


def _preview(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def load_state_checked(model: Any, state_dict: Mapping[str, Any], path: Any) -> Any:
    """Load ``state_dict`` strictly; ValueError naming ``path`` and the mismatches otherwise."""
    if not isinstance(state_dict, Mapping):
        raise ValueError(
            f"checkpoint {path}: expected a state dict, got {type(state_dict).__name__}"
        )
    own = model.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shape_bad = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(own[k].shape)}"
        for k in own
        if k in state_dict
        and hasattr(state_dict[k], "shape")
        and tuple(state_dict[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or shape_bad:
        problems = []
        if missing:
            problems.append(f"missing keys: {_preview(missing)}")
        if unexpected:
            problems.append(f"unexpected keys: {_preview(unexpected)}")
        if shape_bad:
            problems.append(f"shape mismatches: {_preview(shape_bad)}")
        label = getattr(model, "ddbench_name", type(model).__name__)
        raise ValueError(
            f"checkpoint {path} does not match model {label!r} "
            f"(is it for another architecture?): " + "; ".join(problems)
        )
    model.load_state_dict(dict(state_dict), strict=True)
    return model
