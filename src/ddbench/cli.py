"""The `ddbench` command: list registries, inspect and validate files, import and export sets."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path

import click

# Problems a user can fix: printed as one line, exit status 2, no traceback.
EXIT_USER_ERROR = 2
MODEL_EXAMPLES = {
    "convnet": [
        ("convnet-d3-w128-in", "DD ConvNet: depth 3, width 128, instance norm, average pooling"),
        ("convnet-d3-w16-bn-max", "batch norm, max pooling"),
        ("convnet-d2-w16-none-nopool", "no normalisation, no pooling"),
    ],
    "timm": [("timm:resnet18", "any timm architecture, randomly initialised")],
}


def _user_errors(fn: Callable) -> Callable:
    """Turn expected errors (bad file, bad config, bad value) into one line on stderr, exit 2."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        from ddbench.config import ConfigError
        from ddbench.data.h5io import DataFileError

        try:
            return fn(*args, **kwargs)
        except (ConfigError, DataFileError, ValueError, KeyError, OSError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            click.echo(f"error: {' '.join(str(msg).split())}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """ddbench: dataset distillation and coreset selection benchmark tools."""


@main.command("list")
@click.argument(
    "what",
    type=click.Choice(
        [
            "methods",
            "protocols",
            "students",
            "models",
            "scorers",
            "priors",
            "sources",
            "experts",
            "inputs",
        ]
    ),
)
@click.option("--config", "config_path", type=click.Path(), help="students: list a config's")
@_user_errors
def list_cmd(what: str, config_path: str | None) -> None:
    """List method kinds, protocol presets, students, model families, scorer / prior / dataset
    source kinds with their parameters, or the kinds of input a method can declare."""
    if what in ("scorers", "priors", "sources", "experts"):
        _list_registry(what)
    elif what == "inputs":
        from ddbench.workflow.inputs import INPUT_KINDS

        for name, kind in INPUT_KINDS.items():
            where = f"{kind.section}.<{kind.param}>" if kind.section else "(the method's own)"
            sort = f" {kind.scorer_kind} scorer" if kind.scorer_kind else ""
            click.echo(f"{name:<10} from {where:<22}{sort:<16} {kind.doc}")
    elif what == "methods":
        from ddbench.methods import get_method_class, list_methods

        rows = []
        for kind in list_methods():
            cls = get_method_class(kind)
            doc = (cls.__doc__ or "").strip().splitlines()
            rows.append((kind, ", ".join(sorted(cls.requires)) or "-", doc[0] if doc else ""))
        width = max(len(needs) for _, needs, _ in rows)
        for kind, needs, doc in rows:
            click.echo(f"{kind:<18} needs: {needs:<{width}}  {doc}")
    elif what == "protocols":
        from ddbench.training.protocols import PRESETS

        for name, p in PRESETS.items():
            note = "  (trains teachers and proxies)" if name == "teacher" else ""
            click.echo(
                f"{name:<8} labels {p['labels']:<5} {p['optimizer']} lr {p['lr']:g}, "
                f"batch {p['batch_size']}, {p['schedule']}, augment {p['augment']}"
                f"{', cutmix' if p['cutmix'] else ''}, T {p['temperature']:g}{note}"
            )
    elif what == "students" and config_path:
        from ddbench.config import load_config

        config = load_config(config_path)
        for name, spec in config["students"].items():
            click.echo(f"{name:<18} {spec['model']}")
    else:
        from ddbench.training.models import list_model_families

        if what == "students":
            click.echo("a student is any model name (--config FILE lists a config's students):")
        for family in list_model_families():
            click.echo(family)
            for name, desc in MODEL_EXAMPLES.get(family, []):
                click.echo(f"  {name:<28} {desc}")


def _list_registry(what: str) -> None:
    """Each registered kind: summary, what its job reads, parameters with their defaults."""
    from ddbench.registry import EXPERTS, PRIORS, SCORERS, SOURCES

    registry = {"scorers": SCORERS, "priors": PRIORS, "sources": SOURCES, "experts": EXPERTS}[what]
    for name in registry.names():
        kind = registry.get(name)
        reads = f"  (reads: {', '.join(kind.inputs)})" if kind.inputs else ""
        click.echo(f"{name:<18} {kind.summary}{reads}")
        for key, sub in registry.parameter_schema(name).items():
            default = f" = {json.dumps(sub['default'])}" if "default" in sub else ""
            desc = sub.get("description", "")
            click.echo(f"    {key}{default}" + (f"  {desc}" if desc else ""))


@main.command()
@click.argument("file", type=click.Path(dir_okay=False))
@_user_errors
def inspect(file: str) -> None:
    """Print an HDF5 file's format, datasets (shape, dtype) and provenance attributes."""
    import h5py

    path = Path(file)
    if not path.is_file():
        raise OSError(f"{path}: file does not exist")
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise OSError(f"{path}: not a readable HDF5 file: {exc}") from None
    with f:
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
        click.echo(f"{path}")
        click.echo(f"  format: {attrs.pop('format', '(none: not written by ddbench)')}")
        click.echo("  datasets:")

        def show(name: str, obj) -> None:
            if isinstance(obj, h5py.Dataset):
                click.echo(f"    /{name:<20} {str(list(obj.shape)):<18} {obj.dtype}")

        f.visititems(show)
        click.echo("  attributes:")
        for key in sorted(attrs):
            value = attrs[key]
            text = value if isinstance(value, str) else json.dumps(value)
            if len(text) > 200:
                text = text[:197] + "..."
            click.echo(f"    {key}: {text}")


def _plain(value):
    """An HDF5 attribute as a str, number or list."""
    if isinstance(value, bytes):
        return value.decode()
    return value.tolist() if hasattr(value, "tolist") else value


@main.command()
@click.argument("config_file", type=click.Path(dir_okay=False))
@_user_errors
def validate(config_file: str) -> None:
    """Validate a config file (schema, references, data folders); print OK or the error."""
    from ddbench.config import grid, load_config

    config = load_config(config_file)
    click.echo(f"OK: {config_file} ({sum(1 for _ in grid(config))} evaluation cells)")


@main.command("import")
@click.argument("source", type=click.Path())
@click.option(
    "--dataset",
    "dataset_file",
    required=True,
    type=click.Path(dir_okay=False),
    help="prepared dataset .h5",
)
@click.option("--ipc", required=True, type=click.IntRange(min=1), help="images per class")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False), help="condensed set .h5 to write"
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "imagefolder", "npz", "pt", "h5"]),
)
@click.option("--name", default="external", show_default=True, help="method name stored in the set")
@_user_errors
def import_cmd(source: str, dataset_file: str, ipc: int, out: str, fmt: str, name: str) -> None:
    """Check an external set (folder, .npz, .pt, .h5) against a dataset; write a condensed set."""
    from ddbench.data.datasets import load_dataset
    from ddbench.methods.external import load_external

    data = load_dataset(dataset_file)
    cset = load_external(source, data, ipc, fmt=fmt, method=name)
    cset.save(out, created_by="ddbench import", seed=-1)
    click.echo(
        f"wrote {out}: {len(cset.labels)} images ({ipc} per class, {data.num_classes} classes), "
        f"source sha256 {cset.extra_attrs['source_sha256'][:12]}"
    )


@main.command("export")
@click.argument("set_file", type=click.Path(dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option(
    "--dataset",
    "dataset_file",
    type=click.Path(dir_okay=False),
    help="prepared dataset .h5 (class names)",
)
@_user_errors
def export_cmd(set_file: str, out_dir: str, dataset_file: str | None) -> None:
    """Write a condensed set as 8-bit PNG class folders with labels.csv (+ soft_labels.npy)."""
    from ddbench.data.export import export_set

    info = export_set(set_file, out_dir, dataset=dataset_file)
    click.echo(
        f"wrote {info['images']} PNG images in {info['classes']} class folders to {out_dir} "
        f"(max 8-bit quantisation error {info['max_quantisation_error']:.3g})"
    )


@main.command()
@click.option(
    "--config",
    "config_path",
    default="config/config.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option(
    "--directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="the workflow's working directory",
)
@click.option("--all", "show_all", is_flag=True, help="also list files that are up to date")
@click.option(
    "--missing/--no-missing",
    default=False,
    show_default=True,
    help="also list targets not computed yet",
)
@_user_errors
def verify(config_path: str, directory: str, show_all: bool, missing: bool) -> None:
    """Check every result against the current config, its path and the hash recorded at write time.

    Lists files that are stale (other parameters or ddbench version), foreign (no target of
    this config), misfiled (not what their path says) or corrupt (unreadable, or changed
    since written), then the command that deletes the ones to rebuild. Exits 1 when any
    file is stale, foreign, misfiled or corrupt.
    """
    import shlex
    from collections import Counter

    from ddbench.analysis.verify import files_to_delete, verify_results
    from ddbench.config import load_config

    findings = verify_results(load_config(config_path), directory)
    shown = [
        f
        for f in findings
        if show_all or f.status not in ("ok", "missing") or (missing and f.status == "missing")
    ]
    for f in shown:
        click.echo(f"{f.status:8s} {f.path}" + (f"  ({f.reason})" if f.reason else ""))
    counts = Counter(f.status for f in findings)
    statuses = ("ok", "stale", "foreign", "misfiled", "corrupt", "missing")
    click.echo(", ".join(f"{counts[s]} {s}" for s in statuses))
    delete = files_to_delete(findings)
    if delete:
        click.echo(
            f"To rebuild the {len(delete)} stale, misfiled or corrupt file(s), delete them "
            f"(from {directory}) and run snakemake again:"
        )
        click.echo("rm -r " + " ".join(shlex.quote(p) for p in delete))
    if counts["stale"] or counts["foreign"] or counts["misfiled"] or counts["corrupt"]:
        sys.exit(1)


def _seed_list(ctx, param, value):
    if value is None:
        return None
    try:
        return [int(s) for s in value.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter(f"seeds are integers, e.g. '0,1,2', got {value!r}") from None


@main.command("evaluate")
@click.argument("set_path", metavar="SET", type=click.Path())
@click.option(
    "--dataset", required=True, help="a dataset of the config (its prepared file is reused)"
)
@click.option(
    "--protocol",
    "protocols",
    multiple=True,
    help="repeat for several; default: every protocol of the config",
)
@click.option("--student", default=None, help="a student of the config (default: its first)")
@click.option("--seeds", callback=_seed_list, default="0", show_default=True, help="e.g. 0,1,2")
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="default: config/config.yaml",
)
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "pt", "npz", "h5", "imagefolder", "mtt"]),
    help="auto: a folder with images_best.pt or a file images_*.pt is an MTT/DATM pair "
    "(mtt), another folder is class folders, else the suffix decides",
)
@click.option(
    "--workdir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="results tree: prepared data and teachers are reused from / kept in it",
)
@click.option(
    "--out-dir",
    default=None,
    type=click.Path(file_okay=False),
    help="per-seed JSON records (default: <workdir>/evaluations/<set name>)",
)
@click.option(
    "--normalized",
    nargs=2,
    default=None,
    metavar="MEAN STD",
    help="images stored as (x - mean) / std, per-channel comma lists (e.g. 0.5 0.25, or "
    "0.49,0.48,0.45 0.25,0.24,0.26): undone first",
)
@click.option("--no-resize", is_flag=True, help="refuse other resolutions instead of resizing")
@click.option(
    "--zca",
    is_flag=True,
    help="the set is ZCA-whitened (MTT/DATM/KIP): the dataset's ZCA is fitted on its train "
    "split and applied to the test images",
)
@click.option(
    "--zca-epsilon",
    type=float,
    default=None,
    help="ZCA regularisation added to the covariance eigenvalues (default 0.1, as kornia)",
)
@click.option(
    "--syn-lr",
    type=float,
    default=None,
    help="the set's learned learning rate (for protocols with lr: from_set); overrides a "
    "syn_lr stored with the set",
)
@click.option(
    "--temperature",
    type=float,
    default=None,
    help="temperature of the set's stored soft labels (for labels: stored; default: as "
    "stored with the set, else 1)",
)
@_user_errors
def evaluate_cmd(
    set_path,
    dataset,
    protocols,
    student,
    seeds,
    config_path,
    fmt,
    workdir,
    out_dir,
    normalized,
    no_resize,
    zca,
    zca_epsilon,
    syn_lr,
    temperature,
):
    """Evaluate a condensed set made anywhere under the config's protocols, next to `random`.

    SET: a .pt (dict with images and labels, or an (images, labels) pair), .npz, a ddbench
    .h5, an MTT/DATM images_best.pt (+ labels_best.pt, lr_best.pt) or its folder, or a
    class-folder tree (SRe2L/RDED new000/... too). Prints a Markdown table of mean ± std per
    protocol.
    """
    from .api import _config, _dataset_file, evaluate, summary_markdown
    from .data.datasets import load_dataset
    from .methods.external import read_set_arrays

    workdir_path = Path(workdir)
    cfg = _config(config_path)
    data = load_dataset(_dataset_file(cfg, dataset, workdir_path), train_images=False)
    if normalized is not None:
        try:
            normalized = tuple([float(v) for v in part.split(",")] for part in normalized)
        except ValueError:
            raise click.BadParameter("--normalized MEAN STD: comma-separated numbers") from None
    arrays = read_set_arrays(set_path, data, fmt)
    result = evaluate(
        arrays["images"],
        arrays.get("labels"),
        arrays.get("soft_labels"),
        dataset=dataset,
        protocol=list(protocols) or None,
        student=student,
        seeds=seeds,
        config=cfg,
        workdir=workdir_path,
        out_dir=out_dir,
        name=Path(set_path).stem,
        normalized=normalized,
        resize=not no_resize,
        zca=zca,
        zca_epsilon=zca_epsilon,
        syn_lr=syn_lr,
        temperature=temperature,
        attrs=arrays.get("attrs"),
    )
    click.echo(summary_markdown(result, workdir=workdir_path, dataset=dataset))


if __name__ == "__main__":
    main()
