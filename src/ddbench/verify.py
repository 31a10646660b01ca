"""Provenance check: every result file against the current config and ddbench version.

Each writer stores `config_sha256` of the parameters that produced the file (HDF5 root
attribute, or a JSON field). `verify_results` recomputes the expected hash from the config
for every file under `resources/` and `results/` and reports files that are stale (made from
other parameters or another ddbench version), foreign (no target of this config), corrupt
(unreadable) or missing. No torch needed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from dataclasses import replace as dc_replace
from pathlib import Path

import h5py

from . import __version__
from .config import excluded, grid
from .h5io import FORMATS, config_sha256, file_sha256
from .protocols import resolve_protocol


@dataclass(frozen=True)
class Finding:
    """One file's provenance status."""

    path: str
    status: str  # ok | stale | foreign | corrupt | missing
    reason: str = ""


def expected_eval_sha(
    config: dict, protocol: str, student: str, seed: int, reference: bool = False
) -> str:
    """The config hash an evaluation JSON of this cell must carry."""
    p = resolve_protocol(protocol, config["protocols"][protocol])
    if reference and p.full_epochs is None:
        p = dc_replace(p, epochs=int(config["reference"]["epochs"]))
    return config_sha256(
        {"protocol": p.to_dict(), "student": config["students"][student], "seed": int(seed)}
    )


def _needed_variants(config: dict) -> tuple[set[str], set[str], set[str]]:
    """(teachers, feature extractors, scorers) the workflow builds for this config.

    A variant nobody reads is never built, so it is not reported missing.
    """
    from .methods import get_method_class

    teachers: set[str] = set()
    features: set[str] = set()
    scorers: set[str] = set()
    for name, spec in config["protocols"].items():
        teachers.update(resolve_protocol(name, spec).teachers)
    for spec in config["methods"].values():
        params = {k: v for k, v in spec.items() if k != "kind"}
        for need, value in get_method_class(spec["kind"])(**params).input_names().items():
            if need == "teacher":
                teachers.add(value)
            elif need == "features":
                features.add(value)
            elif need in ("scores", "crops"):
                scorers.add(value)
    quality = config["quality"]["teacher"] or next(iter(config["teachers"]), None)
    if quality is not None:
        features.add(quality)
        teachers.add(quality)
    teachers |= features
    for name in scorers:
        if config["scorers"][name].get("kind") == "crops":
            teachers.add(config["scorers"][name]["teacher"])
    return teachers, features, scorers


def expected_hashes(config: dict) -> dict[str, str]:
    """Relative path -> expected config_sha256 for every target the workflow builds."""
    teachers, features, scorers = _needed_variants(config)
    out: dict[str, str] = {}
    for ds, spec in config["datasets"].items():
        out[f"resources/datasets/{ds}.h5"] = config_sha256(spec)
        for t, tspec in config["teachers"].items():
            if t in teachers:
                out[f"results/{ds}/teachers/{t}.json"] = config_sha256(tspec)
            if t in features:
                out[f"results/{ds}/features/{t}.h5"] = config_sha256({"extractor": t})
        for s, sspec in config["scorers"].items():
            if s in scorers:
                out[f"results/{ds}/scores/{s}.h5"] = config_sha256(sspec)
    for cell in grid(config):
        ds, m, ipc, seed = cell["dataset"], cell["method"], cell["ipc"], cell["seed"]
        spec = config["methods"][m]
        params = {k: v for k, v in spec.items() if k != "kind"}
        out[f"results/{ds}/condensed/{m}/ipc{ipc}/s{seed}.h5"] = config_sha256(
            {"method": m, "kind": spec["kind"], **params}
        )
        out[f"results/{ds}/eval/{cell['protocol']}/{cell['student']}/{m}/ipc{ipc}/s{seed}.json"] = (
            expected_eval_sha(config, cell["protocol"], cell["student"], seed)
        )
    if config["reference"]["enabled"]:
        for ds in config["datasets"]:
            for p in config["protocols"]:
                for st in config["students"]:
                    for s in config["reference"]["seeds"] or config["seeds"]:
                        cell = {"dataset": ds, "protocol": p, "student": st, "seed": s}
                        if excluded(config, cell):
                            continue
                        out[f"results/{ds}/eval/{p}/{st}/full_train/s{s}.json"] = expected_eval_sha(
                            config, p, st, s, True
                        )
    return out


def eval_provenance(
    config: dict, metrics: dict, eval_path: str | Path, expected: dict[str, str] | None = None
) -> list[str]:
    """Why an evaluation's provenance does not match the current config and code (empty: it does).

    Checks the evaluation's own config hash and ddbench version, and for a condensed-set cell
    that the set it trained on is the set now on disk (by SHA-256) and that this set carries
    the config hash the current config expects. `eval_path` locates the set:
    results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.json.
    `expected` (from `expected_hashes`) may be passed to save recomputing it per file.
    """
    issues = []
    method = metrics.get("method")
    reference = method == "full_train"
    protocol, student = metrics.get("protocol"), metrics.get("student")
    if protocol not in config["protocols"] or student not in config["students"]:
        return [f"protocol {protocol!r} / student {student!r} is not in the current config"]
    want = expected_eval_sha(config, protocol, student, metrics.get("seed", -1), reference)
    if metrics.get("config_sha256") != want:
        issues.append("evaluation made from other protocol/student parameters")
    version = (metrics.get("versions") or {}).get("ddbench")
    if version is not None and version != __version__:
        issues.append(f"evaluation made by ddbench {version}, current is {__version__}")
    if reference:
        return issues
    eval_path = Path(eval_path)
    results = eval_path.parents[5]  # .../results/{dataset}
    rel = f"condensed/{method}/ipc{metrics.get('ipc')}/s{metrics.get('seed')}.h5"
    cset = results / rel
    if not cset.is_file():
        return [*issues, f"condensed set {rel} is missing"]
    if metrics.get("condensed_sha256") != file_sha256(cset):
        issues.append(f"condensed set {rel} changed after this evaluation")
    expected = expected_hashes(config) if expected is None else expected
    key = f"results/{results.name}/{rel}"
    try:
        sha, _ = _read_provenance(cset)
    except ValueError as exc:
        return [*issues, f"condensed set {rel}: {exc}"]
    if key not in expected:
        issues.append(f"method {method!r} is not in the current config")
    elif sha != expected[key]:
        issues.append(f"condensed set {rel} made from other method parameters")
    return issues


def _read_provenance(path: Path) -> tuple[str | None, str | None]:
    """(config_sha256, ddbench_version) of a result file; raises ValueError if unreadable."""
    if path.suffix == ".h5":
        try:
            with h5py.File(path, "r") as f:
                fmt = f.attrs.get("format")
                if fmt not in FORMATS.values():
                    raise ValueError(f"format {fmt!r} is not a ddbench format")
                return str(f.attrs.get("config_sha256")), str(f.attrs.get("ddbench_version"))
        except OSError as exc:
            raise ValueError(f"not a readable HDF5 file: {exc}") from None
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    version = data.get("versions", {}).get("ddbench")
    return data.get("config_sha256"), version


_CHECKED = re.compile(
    r"(resources/datasets/.*\.h5|results/[^/]+/(teachers/.*\.json|features/.*\.h5|scores/.*\.h5|condensed/.*\.h5|eval/.*\.json))$"
)


def verify_results(config: dict, workdir: str | Path = ".") -> list[Finding]:
    """Provenance status of every result file under `workdir` (and of missing targets)."""
    workdir = Path(workdir)
    expected = expected_hashes(config)
    findings: list[Finding] = []
    seen = set()
    files = sorted(
        p for root in ("resources", "results") for p in (workdir / root).rglob("*") if p.is_file()
    )
    for path in files:
        rel = path.relative_to(workdir).as_posix()
        if not _CHECKED.search(rel):
            continue
        seen.add(rel)
        if rel not in expected:
            findings.append(Finding(rel, "foreign", "no target of this config produces it"))
            continue
        try:
            sha, version = _read_provenance(path)
        except ValueError as exc:
            findings.append(Finding(rel, "corrupt", str(exc)))
            continue
        if sha != expected[rel]:
            findings.append(
                Finding(rel, "stale", "made from other parameters than the current config")
            )
        elif version is not None and version != __version__:
            findings.append(
                Finding(rel, "stale", f"made by ddbench {version}, current is {__version__}")
            )
        else:
            findings.append(Finding(rel, "ok"))
    for rel in sorted(set(expected) - seen):
        findings.append(Finding(rel, "missing", "not computed yet"))
    return findings
