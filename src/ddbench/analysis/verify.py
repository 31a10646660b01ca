"""Provenance check: every result file against the current config and ddbench version.

Each writer stores `config_sha256` of the parameters that produced the file (HDF5 root
attribute, or a JSON field). `verify_results` recomputes the expected hash from the config
for every file under `resources/` and `results/` and reports files that are stale (made from
other parameters or another ddbench version), foreign (no target of this config), corrupt
(unreadable) or missing. No torch needed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from dataclasses import replace as dc_replace
from pathlib import Path

import h5py

from ddbench import __version__
from ddbench.config import excluded, grid
from ddbench.data.h5io import (
    CONTENT_KEY,
    FORMATS,
    DataFileError,
    config_sha256,
    decode_attr,
    file_sha256,
    h5_content_sha256,
    json_content_sha256,
)
from ddbench.stages.priors import PRIOR_JSON
from ddbench.training.protocols import resolve_protocol
from ddbench.workflow.paths import Target, identity_mismatch, parse_target, target_path


@dataclass(frozen=True)
class Finding:
    """One file's provenance status."""

    path: str
    status: str  # ok | stale | foreign | misfiled | corrupt | missing
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
    from ddbench.methods import get_method_class
    from ddbench.registry import SCORERS
    from ddbench.workflow.inputs import input_kind

    teachers: set[str] = set()
    features: set[str] = set()
    scorers: set[str] = set()
    for name, spec in config["protocols"].items():
        teachers.update(resolve_protocol(name, spec).teachers)
    for spec in config["methods"].values():
        params = {k: v for k, v in spec.items() if k != "kind"}
        for need, value in get_method_class(spec["kind"])(**params).input_names().items():
            target = input_kind(need).target
            if target == "teacher":
                teachers.add(value)
            elif target == "features":
                features.add(value)
            elif target == "scores":
                scorers.add(value)
    quality = config["quality"]["teacher"] or next(iter(config["teachers"]), None)
    if quality is not None:
        features.add(quality)
        teachers.add(quality)
    teachers |= features
    for name in scorers:  # the teachers a scorer's job reads
        spec = config["scorers"][name]
        if "teacher" in SCORERS.get(spec["kind"]).inputs:
            teachers.add(spec["teacher"])
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
    target = parse_target(eval_path)
    if target is None or target.kind != "eval":
        return [*issues, f"{eval_path} is not an evaluation path of the workflow"]
    rel = target_path(
        "condensed", dataset=target.dataset, method=target.method, ipc=target.ipc, seed=target.seed
    )
    text = Path(eval_path).as_posix()
    cset = Path(text[: len(text) - len(target.path)] + rel)  # beside it, in its working dir
    shown = rel.split("/", 2)[2]  # condensed/{method}/ipc{ipc}/s{seed}.h5
    if not cset.is_file():
        return [*issues, f"condensed set {shown} is missing"]
    if metrics.get("condensed_sha256") != file_sha256(cset):
        issues.append(f"condensed set {shown} changed after this evaluation")
    expected = expected_hashes(config) if expected is None else expected
    try:
        sha, _ = _read_provenance(cset)
    except ValueError as exc:
        return [*issues, f"condensed set {shown}: {exc}"]
    if rel not in expected:
        issues.append(f"method {method!r} is not in the current config")
    elif sha != expected[rel]:
        issues.append(f"condensed set {shown} made from other method parameters")
    trained_on = metrics.get("condensed_config_sha256")
    if isinstance(trained_on, str) and rel in expected and trained_on != expected[rel]:
        issues.append("evaluation trained on a set made from other method parameters")
    return issues


def _read_provenance(path: Path) -> tuple[str | None, str | None]:
    """(config_sha256, ddbench_version) of a result file; raises ValueError if unreadable."""
    record = _read_record(path)
    version = record.get("ddbench_version") or (record.get("versions") or {}).get("ddbench")
    sha = record.get("config_sha256")
    return (None if sha is None else str(sha)), (None if version is None else str(version))


def _read_record(path: Path) -> dict:
    """The fields a result file records about itself: HDF5 root attributes or the JSON object."""
    if path.suffix == ".h5":
        try:
            with h5py.File(path, "r") as f:
                attrs = {k: decode_attr(v) for k, v in f.attrs.items()}
        except OSError as exc:
            raise ValueError(f"not a readable HDF5 file: {exc}") from None
        if attrs.get("format") not in FORMATS.values():
            raise ValueError(f"format {attrs.get('format')!r} is not a ddbench format")
        if "dataset" not in attrs and "name" in attrs:  # a prepared dataset names itself `name`
            attrs["dataset"] = attrs["name"]
        return attrs
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    return data


def _content_problem(path: Path, target: Target, record: dict, workdir: Path) -> tuple[str, str]:
    """("", "") when the bytes are those written; else (status, reason)."""
    if path.suffix == ".h5":
        try:
            recorded, actual = h5_content_sha256(path)
        except DataFileError as exc:
            return "corrupt", str(exc)
        except (OSError, KeyError, ValueError) as exc:  # a dataset that cannot be read back
            return "corrupt", f"cannot read its data: {exc}"
    elif path.suffix == ".json":
        recorded = record.get(CONTENT_KEY)
        actual = json_content_sha256(record)
    else:  # a checkpoint: its hash is recorded by the JSON written beside it
        sidecar, key = _checkpoint_sidecar(target, workdir)
        if not sidecar.is_file():
            return "stale", f"{sidecar.relative_to(workdir)} that records its hash is missing"
        try:
            recorded = _read_record(sidecar).get(key)
        except ValueError:
            return "stale", f"{sidecar.relative_to(workdir)} that records its hash is unreadable"
        actual = file_sha256(path)
    if recorded is None:
        return "stale", "no content hash recorded (written by an older ddbench): rebuild it"
    if recorded != actual:
        return "corrupt", "content differs from what was written (truncated or edited)"
    return "", ""


def _checkpoint_sidecar(target: Target, workdir: Path) -> tuple[Path, str]:
    if target.kind == "teacher":
        info = target_path("teacher_info", dataset=target.dataset, name=target.name)
        return workdir / info, "weights_sha256"
    kind = "reference" if target.kind == "reference_checkpoint" else "eval"
    fields = {k: v for k, v in asdict(target).items() if k not in ("kind", "name")}
    if kind == "reference":
        fields.pop("method", None)
    return workdir / target_path(kind, **fields), "checkpoint_sha256"


def _check_prior(folder: Path) -> tuple[str, str]:
    """A prior folder against the file manifest its prior.json records."""
    meta = folder / PRIOR_JSON
    try:
        info = _read_record(meta)
    except (ValueError, FileNotFoundError) as exc:
        return "corrupt", f"{PRIOR_JSON}: {exc}"
    manifest = info.get("files")
    if not isinstance(manifest, dict):
        return "stale", "no file manifest recorded (written by an older ddbench): rebuild it"
    return _check_manifest(folder, manifest)


def _check_manifest(folder: Path, manifest: dict[str, str]) -> tuple[str, str]:
    """Every file a folder's record lists (relative path -> SHA-256) is there, unchanged."""
    missing = sorted(rel for rel in manifest if not (folder / rel).is_file())
    if missing:
        return "corrupt", f"files missing: {', '.join(missing[:5])}"
    changed = sorted(rel for rel, sha in manifest.items() if file_sha256(folder / rel) != sha)
    if changed:
        return "corrupt", f"files changed since written: {', '.join(changed[:5])}"
    return "", ""


def _check_experts(folder: Path) -> tuple[str, str]:
    """An experts folder against the per-file SHA-256 its experts.json records."""
    from ddbench.stages.experts import EXPERTS_JSON

    meta = folder / EXPERTS_JSON
    try:
        info = _read_record(meta)
    except (ValueError, FileNotFoundError) as exc:
        return "corrupt", f"{EXPERTS_JSON}: {exc}"
    entries = info.get("expert_files")
    if not isinstance(entries, list) or not entries:
        return "corrupt", f"{EXPERTS_JSON} lists no expert files"
    return _check_manifest(folder, {e["file"]: e["sha256"] for e in entries})


_FOLDER_CHECKS = {"prior": _check_prior, "experts": _check_experts}

_EXPECTED_KINDS = (
    "dataset",
    "teacher_info",
    "features",
    "scores",
    "condensed",
    "eval",
    "reference",
)


def _check_one(
    path: Path, rel: str, target: Target, expected: dict[str, str], workdir: Path
) -> Finding:
    if target.kind in _EXPECTED_KINDS and rel not in expected:
        return Finding(rel, "foreign", "no target of this config produces it")
    if target.kind in _FOLDER_CHECKS:
        status, reason = _FOLDER_CHECKS[target.kind](path)
        return Finding(rel, status or "ok", reason)
    try:
        record = _read_record(path) if path.suffix in (".h5", ".json") else {}
    except ValueError as exc:
        return Finding(rel, "corrupt", str(exc))
    status, reason = _content_problem(path, target, record, workdir)
    if status == "corrupt":
        return Finding(rel, status, reason)
    wrong = identity_mismatch(rel, record) if record else []
    if wrong:
        return Finding(rel, "misfiled", "not what its path says: " + "; ".join(wrong))
    if status:
        return Finding(rel, status, reason)
    if rel in expected:
        sha = record.get("config_sha256")
        version = record.get("ddbench_version") or (record.get("versions") or {}).get("ddbench")
        if sha != expected[rel]:
            return Finding(rel, "stale", "made from other parameters than the current config")
        if version is not None and version != __version__:
            return Finding(rel, "stale", f"made by ddbench {version}, current is {__version__}")
    return Finding(rel, "ok")


def _result_paths(workdir: Path):
    """(path, relative path, target) of every result file, prior and experts folder under `workdir`."""
    for root in ("resources", "results"):
        base = workdir / root
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(workdir).as_posix()
            target = parse_target(rel)
            if target is None or (target.kind in _FOLDER_CHECKS) != path.is_dir():
                continue
            if ("/priors/" in rel or "/experts/" in rel) and target.kind not in _FOLDER_CHECKS:
                continue  # a file inside a prior or experts folder: checked with its folder
            yield path, rel, target


def verify_results(config: dict, workdir: str | Path = ".") -> list[Finding]:
    """Provenance and integrity of every result file under `workdir` (and of missing targets).

    Each file is checked for: readability and format; its content against the hash recorded
    when it was written (HDF5 `content_sha256` attribute, JSON `content_sha256` field, a
    checkpoint's hash in the JSON beside it, a prior folder's file manifest); its recorded
    dataset / method / IPC / seed / protocol / student against its path; and, for targets of
    this config, the parameters' hash and the ddbench version.
    Statuses: ok, stale (other parameters or version, or no hash recorded), foreign (no target
    of this config), misfiled (not what its path says), corrupt (unreadable, or its bytes
    changed since written), missing.
    """
    workdir = Path(workdir)
    expected = expected_hashes(config)
    findings: list[Finding] = []
    seen = set()
    for path, rel, target in _result_paths(workdir):
        seen.add(rel)
        findings.append(_check_one(path, rel, target, expected, workdir))
    for rel in sorted(set(expected) - seen):
        findings.append(Finding(rel, "missing", "not computed yet"))
    return findings


TO_DELETE = ("corrupt", "misfiled", "stale")


def files_to_delete(findings: list[Finding]) -> list[str]:
    """The files to delete so that the workflow rebuilds them (corrupt, misfiled, stale)."""
    return [f.path for f in findings if f.status in TO_DELETE]
