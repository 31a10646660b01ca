"""Method registry; importing this package registers the built-in kinds (no torch needed)."""

from . import coresets, external, generative, patches, synthesis  # noqa: F401  (registers the built-in kinds)
from . import diffsel  # noqa: F401  (ddps, psr: selection with a diffusion prior)
from .base import (
    METHODS,
    CondensedSet,
    Context,
    Method,
    get_method_class,
    list_methods,
    register_method,
)

__all__ = [
    "METHODS",
    "CondensedSet",
    "Context",
    "Method",
    "get_method_class",
    "list_methods",
    "register_method",
]
