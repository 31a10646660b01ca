"""ddbench: a reproducible benchmark workflow for dataset distillation and coreset selection."""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"


def evaluate(images, labels=None, soft_labels=None, **kwargs):
    """Evaluate a condensed set given as arrays or tensors under the config's protocols.

    `ddbench.evaluate(images, labels, dataset="fashion_mnist", protocol="hl", seeds=[0, 1, 2])`
    returns one row per (protocol, seed) with the last-epoch test accuracy; see
    `ddbench.api.evaluate` for every argument.
    """
    from ddbench.api import evaluate as run

    return run(images, labels, soft_labels, **kwargs)


# Modules that moved into subpackages keep answering to their old names, so code written
# against `ddbench.quality`, `ddbench.engine`, ... still imports (the same module object).
# (`ddbench.evaluate` is left free: it names the evaluation entry point, not a module.)
MOVED_MODULES = {
    **{m: f"data.{m}" for m in ("sources", "datasets", "h5io", "export")},
    **{m: f"training.{m}" for m in ("engine", "optim", "augment", "models", "protocols")},
    **{
        m: f"stages.{m}"
        for m in (
            "teachers",
            "dynamics",
            "features",
            "scores",
            "crops",
            "ddps",
            "priors",
            "diffusion",
            "psr",
            "tiny_sd",
        )
    },
    **{m: f"methods.{m}" for m in ("selection", "condense")},
    **{m: f"analysis.{m}" for m in ("quality", "tables", "figures", "verify")},
    "targets": "workflow.paths",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        """The module object is the moved one, already executed."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        prefix, _, name = fullname.partition(".")
        if prefix != __name__ or name not in MOVED_MODULES:
            return None
        new = f"{__name__}.{MOVED_MODULES[name]}"
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new))


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
