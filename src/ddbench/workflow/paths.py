"""Target paths: every path of the workflow is built and parsed here.

A path says what a file is (dataset, method, IPC, seed, protocol, student, variant name);
the file itself records the same fields when it is written. `check_identity` compares the
two, so a set copied onto another cell's path, or an evaluation moved to another folder, is
refused instead of being counted as the cell its path names. No heavy imports: the rule
files, `verify` and the collectors use this module.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from ddbench.errors import DataFileError

REFERENCE_METHOD = "full_train"  # the whole-training-set reference row (no IPC folder)

_N = r"[A-Za-z0-9_]+"
# kind -> (relative path template, regex); names, IPC and seed as the wildcard constraints say
_TEMPLATES: dict[str, str] = {
    "dataset": "resources/datasets/{dataset}.h5",
    "teacher": "results/{dataset}/teachers/{name}.pt",
    "teacher_info": "results/{dataset}/teachers/{name}.json",
    "features": "results/{dataset}/features/{name}.h5",
    "scores": "results/{dataset}/scores/{name}.h5",
    "clusters": "results/{dataset}/clusters/{name}.h5",
    "pool": "results/{dataset}/pools/{name}.h5",
    "prior": "results/{dataset}/priors/{name}",
    "experts": "results/{dataset}/experts/{name}",
    "condensed": "results/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.h5",
    "eval": "results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.json",
    "checkpoint": "results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.pt",
    "reference": "results/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.json",
    "reference_checkpoint": "results/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.pt",
    "quality": "results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.json",
    "quality_features": "results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.h5",
    "tm_loss": "results/{dataset}/tm_loss/{method}/ipc{ipc}/s{seed}.json",
    "benchmark": "benchmarks/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.tsv",
}
# paths that are built but never parsed back (aggregates, tables, figures)
_BUILT: dict[str, str] = {
    "collected_eval": "results/{dataset}/eval/collected.jsonl",
    "collected_quality": "results/{dataset}/quality/collected.jsonl",
    "collected_tm_loss": "results/{dataset}/tm_loss/collected.jsonl",
    "collected_benchmarks": "results/{dataset}/cost/condense_benchmarks.jsonl",
    "table": "results/tables/{name}.{ext}",
    "figure": "results/figures/{dataset}-{name}.{ext}",
    "figure_folder": "results/figures/{dataset}-{name}",
}
_GROUPS = {
    "dataset": _N,
    "name": r"[A-Za-z0-9_\-]+",  # clusters are named `{extractor}-k{k}`
    "method": _N,
    "protocol": _N,
    "student": _N,
    "ipc": r"\d+",
    "seed": r"\d+",
}


def _regex(template: str) -> re.Pattern:
    pattern = re.escape(template)
    for key, group in _GROUPS.items():
        pattern = pattern.replace(re.escape("{" + key + "}"), f"(?P<{key}>{group})")
    # anchored at a path-component boundary, so a working-directory prefix is allowed
    return re.compile(rf"(?:^|/){pattern}$")


# the field under which a file of a named variant records its name (older files may lack it)
_NAME_FIELD = {
    "teacher_info": "teacher",
    "features": "extractor",
    "scores": "scorer",
    "clusters": "extractor",
}
_PATTERNS = {kind: _regex(t) for kind, t in _TEMPLATES.items()}
# most specific first: the reference row must not parse as an evaluation of method "full_train"
_ORDER = ("reference", "reference_checkpoint", *[k for k in _TEMPLATES if "reference" not in k])


@dataclass(frozen=True)
class Target:
    """What a result path names. Unused fields are None."""

    kind: str
    dataset: str
    name: str | None = None  # teacher, scorer, extractor-k, pool, prior or experts
    method: str | None = None
    ipc: int | None = None
    seed: int | None = None
    protocol: str | None = None
    student: str | None = None

    @property
    def path(self) -> str:
        """The relative path of this target."""
        return target_path(self.kind, **{k: v for k, v in asdict(self).items() if k != "kind"})

    def identity(self) -> dict[str, Any]:
        """The fields a file of this target records about itself (dataset, method, ipc, ...)."""
        fields = ("dataset", "method", "ipc", "seed", "protocol", "student")
        out = {k: getattr(self, k) for k in fields if getattr(self, k) is not None}
        if self.kind in ("reference", "reference_checkpoint"):
            out["method"] = REFERENCE_METHOD
        if self.name is not None and self.kind in _NAME_FIELD:
            out[_NAME_FIELD[self.kind]] = self.name
        return out


def target_path(kind: str, **fields: Any) -> str:
    """The relative path of a target of `kind` (e.g. `target_path("condensed", dataset=..., ...)`).

    A field left out stays a `{wildcard}`, so `target_path("condensed", dataset="d")` is the
    pattern of every condensed set of dataset d.
    """
    template = _TEMPLATES.get(kind) or _BUILT.get(kind)
    if template is None:
        known = ", ".join([*_TEMPLATES, *_BUILT])
        raise KeyError(f"unknown target kind {kind!r} (known: {known})")
    values = {k: v for k, v in fields.items() if v is not None}
    return template.format_map(_KeepMissing(values))


# the rule wildcards that stand for a target's `name`
_NAME_WILDCARD = {
    "teacher": "{teacher}",
    "teacher_info": "{teacher}",
    "features": "{teacher}",
    "scores": "{scorer}",
    "clusters": "{extractor}-k{k}",
    "pool": "{pool}",
    "prior": "{prior}",
    "experts": "{experts}",
}


def pattern(kind: str) -> str:
    """The path pattern of a target kind with every field a Snakemake `{wildcard}`."""
    return target_path(kind, name=_NAME_WILDCARD.get(kind))


class _KeepMissing(dict):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def parse_target(path: str | os.PathLike) -> Target | None:
    """The target a path names (a working-directory prefix is ignored); None if it names none."""
    text = os.fspath(path).replace(os.sep, "/")
    for kind in _ORDER:
        m = _PATTERNS[kind].search(text)
        if m:
            got = m.groupdict()
            return Target(
                kind=kind,
                dataset=got["dataset"],
                name=got.get("name"),
                method=REFERENCE_METHOD if "reference" in kind else got.get("method"),
                ipc=int(got["ipc"]) if got.get("ipc") is not None else None,
                seed=int(got["seed"]) if got.get("seed") is not None else None,
                protocol=got.get("protocol"),
                student=got.get("student"),
            )
    return None


def _same(recorded: Any, expected: Any) -> bool:
    if isinstance(expected, int) and not isinstance(recorded, bool):
        try:
            return int(recorded) == expected
        except (TypeError, ValueError):
            return False
    return recorded == expected


def identity_mismatch(path: str | os.PathLike, recorded: Mapping[str, Any]) -> list[str]:
    """The fields whose recorded value differs from what `path` says (empty: they agree).

    Fields the path does not name are not compared; a path that names no target gives [].
    """
    target = parse_target(path)
    if target is None:
        return []
    wrong = []
    for key, want in target.identity().items():
        if key not in recorded or recorded[key] is None:
            if key in _NAME_FIELD.values():
                continue
            wrong.append(f"{key} (path says {want!r}, file records none)")
        elif not _same(recorded[key], want):
            wrong.append(f"{key} (path says {want!r}, file records {recorded[key]!r})")
    return wrong


def check_identity(path: str | os.PathLike, recorded: Mapping[str, Any]) -> None:
    """Raise DataFileError naming the file and both values unless it is what its path says."""
    wrong = identity_mismatch(path, recorded)
    if wrong:
        raise DataFileError(
            f"{os.fspath(path)}: the file is not what its path says: {'; '.join(wrong)}. "
            "It was copied or moved here from another cell; delete it and let the workflow "
            "rebuild it"
        )
