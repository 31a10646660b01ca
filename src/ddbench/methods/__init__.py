"""Method registry; importing this package registers the built-in kinds (no torch needed)."""

from ddbench.methods import (  # noqa: F401  (registers the built-in kinds)
    coresets,
    diffsel,  # noqa: F401  (ddps, psr: selection with a diffusion prior)
    external,
    generative,
    idm,  # noqa: F401  (improved distribution matching)
    matching,  # noqa: F401  (dc, dsa, mtt, datm)
    patches,
    synthesis,
)
from ddbench.methods.base import (
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
