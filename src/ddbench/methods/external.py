"""External condensed sets: check a set made elsewhere and turn it into a ddbench condensed set.

One file or folder per IPC, named by a pattern such as ``sets/mine/ipc{ipc}.npz``. Supported:

* ``npz`` / ``pt``: ``images`` ``[n,C,H,W]`` or ``[n,H,W,C]`` (``[n,H,W]`` for one channel),
  uint8 0..255 or float in [0, 1]; ``labels`` int ``[n]``; optional ``soft_labels`` float
  ``[n,K]`` and ``classes`` (the class names, checked against the dataset's, in order).
  ``.pt`` files load with ``torch.load(weights_only=True)``; ``.npz`` without pickle.
* ``imagefolder``: one sub-folder per class holding PNG/JPEG images of exactly the dataset's
  resolution and mode (8-bit grey ``L`` or ``RGB``). A sub-folder names its class by the class
  name (``Dress``), the name with characters other than letters, digits, ``.``, ``-`` and ``_``
  replaced by ``_`` (``T-shirt_top``), the 0-based class index (``3``, ``003``) or index and
  name (``003_Dress``, as written by ``ddbench export``); an exact class name wins over an index.
  Images are taken in the order of ``labels.csv`` (columns ``file``, ``label``) when the folder
  has one, else class by class in file-name order; ``soft_labels.npy`` rows follow that order.
  An image over ``sources.MAX_IMAGE_PIXELS`` pixels is refused before it is decoded.
  Sub-folders ``new000``, ``new001``, ... (SRe2L / RDED output) are class indices; any other
  naming is mapped by ``class_map.json`` in the folder (``{sub-folder: class index or name}``).
* ``h5``: a ddbench condensed set (``ddbench.condensed/1``).
* ``mtt``: an MTT / DATM run: ``images_best.pt`` (a tensor ``[n,C,H,W]``) with
  ``labels_best.pt`` beside it (hard labels ``[n]``, or DATM's soft labels ``[n,K]``) and,
  when present, ``lr_best.pt`` (the learned ``syn_lr``); given as the folder or the images file
  (``images_<tag>.pt`` pairs with ``labels_<tag>.pt`` and ``lr_<tag>.pt``).

Scalar entries of a ``.pt`` dict or ``.npz`` beyond the arrays (``syn_lr``, ``temperature``,
``iteration``, ...) are kept as attributes of the condensed set (``temperature`` as
``soft_label_temperature``; a name the file format uses itself gets a ``set_`` prefix); an
unknown *array* entry is refused rather than dropped. Soft labels that are not probability
rows are read as logits and stored as ``softmax(logits / T)`` (T: the set's temperature,
default 1; ``soft_labels_from`` records which). Without hard labels, the classes are the soft
labels' argmax when that is class-balanced, else the class blocks MTT/DATM store.

Everything is checked against the dataset (class count and names, exact IPC per class,
resolution, channels, value range, NaN) and every problem raises a ``DataFileError`` naming
the file. No torch or PIL import at module level: the Snakefile imports the method registry.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
import string
from pathlib import Path
from typing import Any

import numpy as np

from ddbench.data.datasets import ImageData
from ddbench.data.h5io import DataFileError, file_sha256
from ddbench.methods.base import CondensedSet, Context, Method, register_method

FORMATS = ("auto", "imagefolder", "npz", "pt", "h5", "mtt")
SUFFIX_FORMATS = {".npz": "npz", ".pt": "pt", ".pth": "pt", ".h5": "h5", ".hdf5": "h5"}
ARRAY_KEYS = ("images", "labels", "soft_labels", "classes")
FOLDER_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
FOLDER_SIDE_FILES = ("labels.csv", "soft_labels.npy", "meta.json", "class_map.json")
# Scalar entries of a set file kept as attributes of the condensed set under these names.
SET_ATTRS = {"syn_lr": "syn_lr", "temperature": "soft_label_temperature",
             "soft_label_temperature": "soft_label_temperature"}  # fmt: skip
# Attribute names a condensed-set file uses itself: another scalar entry of that name is
# kept as `set_<name>`.
RESERVED_ATTRS = frozenset(
    {"format", "ddbench_version", "created_by", "config_sha256", "params", "seed", "method",
     "kind", "ipc", "dataset", "content_sha256", "source_path", "source_sha256", "source_format",
     "soft_labels_from"}
)  # fmt: skip
# MTT / DATM output: images_best.pt with labels_best.pt (and DATM's lr_best.pt) beside it.
MTT_IMAGES = re.compile(r"images(_.*)?\.pt")
PATTERN_FIELDS = ("ipc", "seed")


def safe_class_name(name: str) -> str:
    """A class name usable as a folder name: characters outside [A-Za-z0-9._-] become '_'."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(name))


def pattern_fields(pattern: str) -> list[str]:
    """The fields of a path pattern; ValueError unless they are only {ipc} and {seed}."""
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ValueError(
            f"path: {pattern!r} is not a valid pattern ({exc}); write braces as {{{{ }}}}"
        ) from None
    fields = []
    for _, field, _, conversion in parsed:
        if field is None:
            continue
        if field not in PATTERN_FIELDS or conversion:
            raise ValueError(
                f"path: {pattern!r} uses {{{field}{'!' + conversion if conversion else ''}}}; "
                "only {ipc} and {seed} are allowed"
            )
        fields.append(field)
    if "ipc" not in fields:
        raise ValueError(f"path: {pattern!r} has no {{ipc}}: give one set per IPC")
    try:
        pattern.format(ipc=1, seed=0)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"path: {pattern!r} has a bad format spec ({exc})") from None
    return fields


def format_path(pattern: str, ipc: int | str, seed: int | str) -> str:
    """The file of one cell: the pattern with {ipc} and {seed} filled in."""
    return pattern.format(ipc=int(ipc), seed=int(seed))


def external_inputs(pattern: str, ipc: int | str, seed: int | str) -> dict[str, Any]:
    """Snakemake inputs of an external set: the path, plus every entry of it when it is a folder.

    Listing a folder's files and sub-folders makes an edited, added or removed image rerun
    the set (a folder's own modification time does not change when a file in it is edited).
    """
    path = format_path(pattern, ipc, seed)
    inputs: dict[str, Any] = {"external": path}
    if os.path.isdir(path):
        entries = []
        for root, dirs, files in os.walk(path):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            entries += [os.path.join(root, d) for d in dirs]
            entries += [os.path.join(root, f) for f in sorted(files) if not f.startswith(".")]
        inputs["external_files"] = entries
    return inputs


def detect_format(path: str | os.PathLike, fmt: str = "auto") -> str:
    """The source format: `fmt` unless 'auto', else a folder or the file suffix decides."""
    if fmt != "auto":
        if fmt not in FORMATS:
            raise DataFileError(f"{path}: unknown format {fmt!r} (known: {', '.join(FORMATS)})")
        return fmt
    path = Path(path)
    if path.is_dir():
        return "mtt" if (path / "images_best.pt").is_file() else "imagefolder"
    if MTT_IMAGES.fullmatch(path.name) and _mtt_sibling(path, "labels").is_file():
        return "mtt"
    found = SUFFIX_FORMATS.get(path.suffix.lower())
    if found is None:
        raise DataFileError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r} "
            f"(known: {', '.join(SUFFIX_FORMATS)} or a folder); set format:"
        )
    return found


def source_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, or of a folder's sorted (relative path, file SHA-256) manifest."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = file.relative_to(path).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        digest.update(f"{rel}\t{file_sha256(file)}\n".encode())
    return digest.hexdigest()


def load_external(
    path: str | os.PathLike,
    data: ImageData,
    ipc: int,
    *,
    fmt: str = "auto",
    method: str = "external",
    params: dict | None = None,
) -> CondensedSet:
    """Read, check and convert an external set for `data` at `ipc`; provenance in extra_attrs."""
    path = Path(path)
    fmt = detect_format(path, fmt) if path.exists() else fmt
    arrays = read_set_arrays(path, data, fmt)
    cset = _to_condensed(path, arrays, data, int(ipc))
    cset.method = method
    cset.params = dict(params) if params is not None else {"path": str(path), "format": fmt}
    cset.extra_attrs.update(
        {
            "source_path": str(path),
            "source_sha256": source_sha256(path),
            "source_format": fmt,
        }
    )
    return cset


# --------------------------------------------------------------------------- readers


def read_set_arrays(path: str | os.PathLike, data: ImageData, fmt: str = "auto") -> dict[str, Any]:
    """The arrays of a set file or folder (images, labels, and soft_labels / classes if given).

    Scalar entries such as ``syn_lr`` come back in ``attrs`` (name -> value).
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"{path}: external set does not exist")
    fmt = detect_format(path, fmt)
    if fmt == "mtt":
        return _read_mtt(path)
    if fmt == "imagefolder":
        if not path.is_dir():
            raise DataFileError(f"{path}: format imagefolder needs a folder")
        return _read_folder(path, data)
    if path.is_dir():
        raise DataFileError(f"{path}: is a folder, but format {fmt} needs a file")
    if fmt == "npz":
        return _read_npz(path)
    if fmt == "pt":
        return _read_pt(path)
    return _read_h5(path)


def to_condensed_arrays(
    source: str | os.PathLike,
    arrays: dict[str, Any],
    data: ImageData,
    ipc: int,
    *,
    whitened: bool = False,
) -> CondensedSet:
    """Check and convert in-memory arrays (images, labels, optional soft_labels and attrs) for
    `data`; errors name `source`. `whitened`: ZCA-whitened float pixels, not [0, 1]."""
    return _to_condensed(Path(source), arrays, data, int(ipc), whitened=whitened)


# An .npz is a zip archive: its members are decompressed into memory when read. A set of
# 1 000 classes x 50 images of 3 x 224 x 224 float32 is about 30 GB, so 64 GiB leaves room for
# real sets while a decompression bomb (a tiny file that inflates to terabytes) is refused.
MAX_NPZ_BYTES = 64 << 30


def _check_npz_size(path: Path) -> None:
    """Refuse an .npz whose members would decompress to more than MAX_NPZ_BYTES."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            total = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataFileError(f"{path}: not a readable .npz file: {exc}") from None
    if total > MAX_NPZ_BYTES:
        raise DataFileError(
            f"{path}: its arrays would decompress to {total / 2**30:.1f} GiB, over the cap of "
            f"{MAX_NPZ_BYTES / 2**30:.0f} GiB (external.MAX_NPZ_BYTES, a guard against "
            "decompression bombs)"
        )


def _read_npz(path: Path) -> dict[str, Any]:
    _check_npz_size(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            keys = list(z.files)
            return _split_attrs(path, {k: z[k] for k in keys})
    except DataFileError:
        raise
    except ValueError as exc:  # object arrays need pickle
        raise DataFileError(
            f"{path}: holds arrays that need pickle ({exc}); store plain numeric arrays"
        ) from None
    except (OSError, EOFError) as exc:
        raise DataFileError(f"{path}: not a readable .npz file: {exc}") from None
    except Exception as exc:  # zipfile.BadZipFile and friends
        raise DataFileError(f"{path}: not a readable .npz file: {exc}") from None


def _read_pt(path: Path) -> dict[str, Any]:
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for anything beyond tensors and containers
        raise DataFileError(
            f"{path}: cannot be loaded with torch.load(weights_only=True) "
            f"(a dict of tensors is expected): {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(obj, (tuple, list)) and len(obj) in (2, 3):
        # an (images, labels) or (images, labels, soft_labels) pair, as many repos save them
        obj = dict(zip(("images", "labels", "soft_labels"), obj, strict=False))
        if obj.get("soft_labels") is None and _is_soft(obj.get("labels")):
            obj["soft_labels"] = obj.pop("labels")  # DATM-style learned label logits
        obj = {k: v for k, v in obj.items() if v is not None}
    if isinstance(obj, torch.Tensor):
        partner = _mtt_sibling(path, "labels") if MTT_IMAGES.fullmatch(path.name) else None
        raise DataFileError(
            f"{path}: holds one tensor; "
            + (
                f"as an MTT/DATM images file it needs {partner.name} beside it"
                if partner is not None
                else "save a dict with images and labels, an (images, labels) pair, or an "
                "MTT/DATM images_best.pt with labels_best.pt beside it"
            )
        )
    if not isinstance(obj, dict):
        raise DataFileError(
            f"{path}: holds a {type(obj).__name__}, expected a dict with images, labels or an "
            "(images, labels) pair"
        )
    out: dict[str, Any] = {}
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        out[key] = value if key == "classes" else np.asarray(value)
    return _split_attrs(path, out)


def _is_soft(labels) -> bool:
    """True for a float [n, K] label array: soft labels (probabilities or logits)."""
    if labels is None or not hasattr(labels, "ndim") or labels.ndim != 2:
        return False
    dtype = labels.dtype
    return bool(getattr(dtype, "is_floating_point", False)) or (
        isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating)
    )


def _split_attrs(path: Path, arrays: dict[str, Any]) -> dict[str, Any]:
    """Scalar entries (syn_lr, temperature, ...) moved into ``attrs``; arrays checked by name."""
    attrs: dict[str, Any] = {}
    for key in [k for k in arrays if k not in ARRAY_KEYS]:
        value = np.asarray(arrays[key])
        if value.size != 1 or value.dtype.kind not in "biufU":
            continue  # refused by _check_keys below: an unknown array is never dropped silently
        scalar = value.reshape(()).item()
        name = SET_ATTRS.get(key, f"set_{key}" if key in RESERVED_ATTRS else key)
        if name in ("syn_lr", "soft_label_temperature"):
            if not isinstance(scalar, (int, float)) or not np.isfinite(scalar) or scalar <= 0:
                raise DataFileError(f"{path}: {key} is {scalar!r}; it must be a positive number")
            scalar = float(scalar)
        attrs[name] = scalar
        del arrays[key]
    _check_keys(path, list(arrays))
    if attrs:
        arrays["attrs"] = attrs
    return arrays


def _mtt_sibling(images: Path, kind: str) -> Path:
    """labels_best.pt / lr_best.pt beside images_best.pt (the same suffix after the kind)."""
    m = MTT_IMAGES.fullmatch(images.name)
    suffix = (m.group(1) or "") if m else ""
    return images.with_name(f"{kind}{suffix}.pt")


def _load_tensor(path: Path, what: str):
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise DataFileError(
            f"{path}: cannot be loaded with torch.load(weights_only=True): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(obj, torch.Tensor):
        raise DataFileError(f"{path}: holds a {type(obj).__name__}, expected a tensor of {what}")
    return obj.detach().cpu().numpy()


def _read_mtt(path: Path) -> dict[str, Any]:
    """An MTT/DATM pair: images_best.pt + labels_best.pt (hard labels or DATM's soft ones),
    with lr_best.pt (or syn_lr_best.pt) as the learned syn_lr when present."""
    images_file = path / "images_best.pt" if path.is_dir() else path
    if not images_file.is_file():
        raise DataFileError(
            f"{path}: no images_best.pt in it; pass an MTT/DATM run folder or its images_*.pt"
        )
    if not MTT_IMAGES.fullmatch(images_file.name):
        raise DataFileError(
            f"{path}: an MTT/DATM set is named images_*.pt; pass that file or its folder"
        )
    labels_file = _mtt_sibling(images_file, "labels")
    if not labels_file.is_file():
        raise DataFileError(
            f"{images_file}: no {labels_file.name} beside it; an MTT/DATM set needs both "
            f"(or pass a .pt dict with images and labels, format pt)"
        )
    out: dict[str, Any] = {"images": _load_tensor(images_file, "images [n, C, H, W]")}
    labels = _load_tensor(labels_file, "labels [n] or soft labels [n, K]")
    if labels.ndim == 2 and np.issubdtype(labels.dtype, np.floating):
        out["soft_labels"] = labels
    elif labels.ndim == 1 and np.issubdtype(labels.dtype, np.floating):
        if not np.array_equal(labels, np.round(labels)):
            raise DataFileError(f"{labels_file}: float labels [n] that are not whole class indices")
        out["labels"] = labels.astype(np.int64)
    else:
        out["labels"] = labels
    attrs = {}
    for kind in ("lr", "syn_lr"):
        lr_file = _mtt_sibling(images_file, kind)
        if lr_file.is_file():
            value = _load_tensor(lr_file, "the learned learning rate")
            if value.size != 1 or not np.isfinite(value).all() or float(value.reshape(())) <= 0:
                raise DataFileError(
                    f"{lr_file}: expected one positive learning rate, got shape {value.shape}"
                )
            attrs["syn_lr"] = float(value.reshape(()))
            break
    if attrs:
        out["attrs"] = attrs
    return out


def _read_h5(path: Path) -> dict[str, Any]:
    from ddbench.data.h5io import read_attrs

    cset = CondensedSet.load(path)
    out: dict[str, Any] = {"images": cset.images, "labels": cset.labels}
    if cset.soft_labels is not None:
        out["soft_labels"] = cset.soft_labels
    attrs = read_attrs(path, "condensed")
    kept = {k: attrs[k] for k in ("syn_lr", "soft_label_temperature") if k in attrs}
    if "soft_label_temperature" not in kept and "temperature" in cset.params:
        kept["soft_label_temperature"] = float(cset.params["temperature"])
    if kept:
        out["attrs"] = kept
    return out


def _check_keys(path: Path, keys: list[str]) -> None:
    unknown = [k for k in keys if k not in ARRAY_KEYS]
    if unknown:
        raise DataFileError(
            f"{path}: unexpected entries {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(ARRAY_KEYS)}); scalar entries such as syn_lr are kept as "
            "attributes, other arrays are not read: remove or rename them"
        )
    missing = [k for k in ("images", "labels") if k not in keys]
    if missing == ["labels"] and "soft_labels" in keys:
        missing = []  # classes from the soft labels (argmax)
    if missing:
        raise DataFileError(
            f"{path}: missing {' and '.join(missing)} (found: {', '.join(keys) or 'nothing'})"
        )


def _folder_class(path: Path, folder: str, classes: list[str]) -> int:
    """The class index a sub-folder name stands for (see the module docstring)."""
    if folder in classes:
        return classes.index(folder)
    safe = [safe_class_name(c) for c in classes]
    if safe.count(folder) == 1:
        return safe.index(folder)
    # "new003": SRe2L / RDED output folders, numbered by class index (the sorted class order)
    m = re.fullmatch(r"(?:new)?(\d+)(?:_(.*))?", folder)
    if m is None:
        raise DataFileError(
            f"{path}: sub-folder {folder!r} is not a class of the dataset "
            f"(name a class folder by class name, index 0..{len(classes) - 1}, index_name or "
            f"new<index>, or map folders to classes in {path}/class_map.json; "
            f"classes: {', '.join(classes[:10])}{', ...' if len(classes) > 10 else ''})"
        )
    index = int(m.group(1))
    if index >= len(classes):
        raise DataFileError(
            f"{path}: sub-folder {folder!r} names class {index}, but the dataset has "
            f"{len(classes)} classes (0..{len(classes) - 1})"
        )
    if m.group(2) is not None and m.group(2) not in (classes[index], safe[index]):
        raise DataFileError(
            f"{path}: sub-folder {folder!r} names class {index} {m.group(2)!r}, but class "
            f"{index} of the dataset is {classes[index]!r}"
        )
    return index


def _class_map(path: Path, classes: list[str]) -> dict[str, int] | None:
    """class_map.json: {sub-folder: class index or class name}, when the folder has one."""
    import json

    file = path / "class_map.json"
    if not file.is_file():
        return None
    try:
        raw = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise DataFileError(f"{file}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise DataFileError(f"{file}: expected an object {{sub-folder: class index or name}}")
    out = {}
    for folder, target in raw.items():
        if isinstance(target, int) and not isinstance(target, bool) and 0 <= target < len(classes):
            out[folder] = target
        elif isinstance(target, str) and target in classes:
            out[folder] = classes.index(target)
        else:
            raise DataFileError(
                f"{file}: {folder!r} maps to {target!r}, which is neither a class index "
                f"0..{len(classes) - 1} nor a class name of the dataset"
            )
    return out


def _read_folder(path: Path, data: ImageData) -> dict[str, Any]:
    from ddbench.data.sources import open_image  # imports PIL; kept out of the module import

    classes = list(data.classes)
    mode = {1: "L", 3: "RGB"}.get(data.in_chans)
    if mode is None:
        raise DataFileError(f"{path}: image folders need a 1- or 3-channel dataset")
    folders: dict[int, str] = {}
    mapping = _class_map(path, classes)
    for entry in sorted(os.scandir(path), key=lambda e: e.name):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            if mapping is not None and entry.name not in mapping:
                raise DataFileError(
                    f"{path}/class_map.json: does not map sub-folder {entry.name!r}; "
                    "list every class folder"
                )
            c = (
                mapping[entry.name]
                if mapping is not None
                else _folder_class(path, entry.name, classes)
            )
            if c in folders:
                raise DataFileError(
                    f"{path}: sub-folders {folders[c]!r} and {entry.name!r} both name class "
                    f"{c} ({classes[c]!r})"
                )
            folders[c] = entry.name
        elif entry.name.lower().endswith(FOLDER_IMAGE_EXTENSIONS):
            raise DataFileError(
                f"{path}: image {entry.name} lies outside the class sub-folders "
                "(one sub-folder per class)"
            )
    if not folders:
        raise DataFileError(f"{path}: no class sub-folders (one sub-folder per class, PNG/JPEG)")
    missing = [c for c in range(len(classes)) if c not in folders]
    if missing:
        names = ", ".join(f"{c} ({classes[c]!r})" for c in missing[:10])
        raise DataFileError(
            f"{path}: no sub-folder for class(es) {names}; every one of the {len(classes)} "
            "classes needs one"
        )
    files: list[tuple[str, int]] = []
    for c in range(len(classes)):
        folder = path / folders[c]
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if entry.name.startswith("."):
                continue
            if not entry.is_file() or not entry.name.lower().endswith(FOLDER_IMAGE_EXTENSIONS):
                raise DataFileError(
                    f"{folder / entry.name}: not a PNG/JPEG image (class folders hold images only)"
                )
            files.append((f"{folders[c]}/{entry.name}", c))
    order = _csv_order(path, files) if (path / "labels.csv").exists() else files
    h, w, want_c = data.image_size, data.image_size, data.in_chans
    images = np.empty((len(order), h, w, want_c), dtype=np.uint8)
    for i, (rel, _) in enumerate(order):
        file = path / rel
        try:
            # refuses images over sources.MAX_IMAGE_PIXELS before decoding them
            with open_image(file, error=DataFileError) as img:
                if img.mode != mode:
                    raise DataFileError(
                        f"{file}: image mode {img.mode}, expected {mode} "
                        f"(8-bit {'grey' if mode == 'L' else 'RGB'}) for the {want_c}-channel "
                        f"dataset {data.name!r}"
                    )
                if img.size != (w, h):
                    raise DataFileError(
                        f"{file}: image is {img.size[0]}x{img.size[1]} pixels, but dataset "
                        f"{data.name!r} is {w}x{h} (external sets are not resized)"
                    )
                images[i] = np.asarray(img, dtype=np.uint8).reshape(h, w, want_c)
        except DataFileError:
            raise
        except (OSError, ValueError, SyntaxError) as exc:
            raise DataFileError(f"{file}: cannot read image ({exc})") from None
    out: dict[str, Any] = {
        "images": images,
        "labels": np.array([c for _, c in order], dtype=np.int64),
    }
    soft = path / "soft_labels.npy"
    if soft.exists():
        try:
            out["soft_labels"] = np.load(soft, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise DataFileError(f"{soft}: not a readable .npy array: {exc}") from None
    return out


def _csv_order(path: Path, files: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """Images in the row order of labels.csv, checked against the class folders."""
    csv_path = path / "labels.csv"
    label_of = dict(files)
    order: list[tuple[str, int]] = []
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"file", "label"} <= set(reader.fieldnames):
            raise DataFileError(f"{csv_path}: needs a header with columns file and label")
        for line, row in enumerate(reader, start=2):
            rel = row["file"]
            if rel not in label_of:
                raise DataFileError(f"{csv_path}:{line}: {rel!r} is not an image in a class folder")
            try:
                label = int(row["label"])
            except ValueError:
                raise DataFileError(
                    f"{csv_path}:{line}: label {row['label']!r} is not an integer"
                ) from None
            if label != label_of[rel]:
                raise DataFileError(
                    f"{csv_path}:{line}: {rel!r} has label {label} but lies in the folder of class {label_of[rel]}"
                )
            order.append((rel, label))
    listed = [rel for rel, _ in order]
    if len(set(listed)) != len(listed):
        raise DataFileError(f"{csv_path}: lists an image more than once")
    unlisted = sorted(set(label_of) - set(listed))
    if unlisted:
        raise DataFileError(f"{csv_path}: does not list {', '.join(unlisted[:5])}")
    return order


# --------------------------------------------------------------------------- checks


def _describe(shape: tuple[int, ...]) -> str:
    """'16x16 pixels, 1 channel' for a [n,C,H,W] or [n,H,W,C] shape, when it can tell."""
    if len(shape) == 4 and shape[1] in (1, 3) and shape[3] not in (1, 3):
        return f"{shape[3]}x{shape[2]} pixels, {shape[1]} channel(s)"
    if len(shape) == 4 and shape[3] in (1, 3):
        return f"{shape[2]}x{shape[1]} pixels, {shape[3]} channel(s)"
    return f"shape {shape}"


def soft_label_probabilities(soft: np.ndarray, temperature: float = 1.0) -> tuple[np.ndarray, str]:
    """Stored soft labels as probabilities: rows that are already distributions (non-negative,
    summing to 1 within 1e-3) are kept; anything else is read as logits, softmax(z / T)."""
    soft = np.asarray(soft, dtype=np.float64)
    if (soft >= 0).all() and np.allclose(soft.sum(axis=1), 1.0, atol=1e-3):
        return soft.astype(np.float32), "probabilities"
    z = soft / float(temperature)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return (z / z.sum(axis=1, keepdims=True)).astype(np.float32), "logits"


def _class_of_soft(path: Path, soft: np.ndarray, k: int, ipc: int) -> np.ndarray:
    """Hard labels of a set given only soft labels: the argmax when it is class-balanced, else
    the class blocks MTT/DATM store their images in (IPC images of class 0, then class 1, ...)."""
    arg = soft.argmax(axis=1).astype(np.int64)
    if (np.bincount(arg, minlength=k) == ipc).all():
        return arg
    if len(soft) == k * ipc:
        blocks = np.repeat(np.arange(k, dtype=np.int64), ipc)
        import sys

        print(
            f"notice: {path}: the argmax of the soft labels is not {ipc} per class; each image "
            f"takes the class of its block (IPC {ipc} consecutive images per class, as MTT/DATM "
            f"store them); {int((arg != blocks).sum())} of {len(arg)} argmaxes differ",
            file=sys.stderr,
        )
        return blocks
    raise DataFileError(
        f"{path}: labels missing and the soft labels' argmax is not {ipc} per class; "
        "pass labels (class indices [n]) with the soft labels"
    )


def _to_condensed(
    path: Path, arrays: dict[str, Any], data: ImageData, ipc: int, *, whitened: bool = False
) -> CondensedSet:
    """Check and convert; `whitened`: pixels are ZCA-whitened floats (any finite value)."""
    k, c, s = data.num_classes, data.in_chans, data.image_size
    images = np.asarray(arrays["images"])
    if images.ndim == 3 and c == 1:
        images = images[:, None]
    chw, hwc = (c, s, s), (s, s, c)
    want = f"[n, {c}, {s}, {s}] or [n, {s}, {s}, {c}]"
    if images.ndim != 4:
        raise DataFileError(f"{path}: images have shape {images.shape}, expected {want}")
    if tuple(images.shape[1:]) == chw:
        pass
    elif tuple(images.shape[1:]) == hwc:
        images = images.transpose(0, 3, 1, 2)
    else:
        raise DataFileError(
            f"{path}: images have shape {tuple(images.shape)} ({_describe(images.shape)}), but "
            f"dataset {data.name!r} is {s}x{s} pixels, {c} channel(s): expected {want}"
        )
    if images.dtype == np.uint8 and whitened:
        raise DataFileError(
            f"{path}: uint8 images cannot be ZCA-whitened; pass the whitened float images "
            "(or leave out --zca)"
        )
    if images.dtype == np.uint8:
        floats = images.astype(np.float32) / np.float32(255.0)
    elif np.issubdtype(images.dtype, np.floating):
        floats = images.astype(np.float32)
        bad = ~np.isfinite(images)
        if bad.any():
            n_nan = int(np.isnan(images).sum())
            raise DataFileError(
                f"{path}: images contain {n_nan} NaN and {int(bad.sum()) - n_nan} infinite "
                f"pixel values (in {int(bad.reshape(len(images), -1).any(1).sum())} of "
                f"{len(images)} images)"
            )
        lo, hi = float(images.min(initial=0.0)), float(images.max(initial=0.0))
        if (lo < 0.0 or hi > 1.0) and not whitened:
            hint = " (0..255 floats? divide by 255 or store uint8)" if hi > 1.0 and lo >= 0 else ""
            raise DataFileError(
                f"{path}: float pixel values range over [{lo:.4g}, {hi:.4g}], expected [0, 1]{hint}"
            )
    else:
        raise DataFileError(
            f"{path}: images have dtype {images.dtype}, expected uint8 (0..255) or float (0..1)"
        )
    attrs = dict(arrays.get("attrs") or {})
    soft = arrays.get("soft_labels")
    if soft is not None:
        soft = np.asarray(soft)
        if soft.ndim != 2 or soft.shape[1] != k or not np.issubdtype(soft.dtype, np.floating):
            n = len(arrays["labels"]) if arrays.get("labels") is not None else len(soft)
            raise DataFileError(
                f"{path}: soft_labels are {soft.dtype} {soft.shape}, expected float [{n}, {k}]"
            )
        if not np.isfinite(soft).all():
            raise DataFileError(f"{path}: soft_labels contain NaN or infinite values")
        soft, attrs["soft_labels_from"] = soft_label_probabilities(
            soft, attrs.get("soft_label_temperature", 1.0)
        )
    if arrays.get("labels") is None:
        if soft is None:
            raise DataFileError(f"{path}: missing labels (class indices [n]) or soft_labels")
        arrays = {**arrays, "labels": _class_of_soft(path, soft, k, ipc)}
    labels = np.asarray(arrays["labels"])
    if labels.ndim == 2:
        raise DataFileError(
            f"{path}: labels have shape {labels.shape}; give class indices [n] "
            "(probability vectors go into soft_labels)"
        )
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise DataFileError(
            f"{path}: labels are {labels.dtype} {labels.shape}, expected integer class indices [n]"
        )
    if len(labels) != len(floats):
        raise DataFileError(f"{path}: {len(floats)} images but {len(labels)} labels")
    if len(labels) and (labels.min() < 0 or labels.max() >= k):
        raise DataFileError(
            f"{path}: labels range over {labels.min()}..{labels.max()}, but dataset "
            f"{data.name!r} has {k} classes (0..{k - 1})"
        )
    if "classes" in arrays:
        names = [str(n) for n in np.asarray(arrays["classes"]).reshape(-1).tolist()]
        if names != list(data.classes):
            raise DataFileError(
                f"{path}: class names {names[:10]} differ from dataset {data.name!r}'s "
                f"{list(data.classes)[:10]} (same classes in the same order needed)"
            )
    counts = np.bincount(labels.astype(np.int64), minlength=k)
    if (counts != ipc).any():
        wrong = [f"{data.classes[i]!r} has {int(n)}" for i, n in enumerate(counts) if n != ipc]
        more = f" (and {len(wrong) - 8} more)" if len(wrong) > 8 else ""
        raise DataFileError(
            f"{path}: expected exactly IPC {ipc} images per class for {k} classes, but class "
            f"{', '.join(wrong[:8])}{more}"
        )
    if soft is not None and len(soft) != len(labels):
        raise DataFileError(
            f"{path}: soft_labels are {soft.dtype} {soft.shape}, expected float [{len(labels)}, {k}]"
        )
    cset = CondensedSet(
        images=np.ascontiguousarray(floats),
        labels=labels.astype(np.int64),
        method="external",
        kind="external",
        params={},
        ipc=ipc,
        dataset=data.name,
        soft_labels=soft,
        extra_attrs=attrs,
    )
    if whitened:  # any finite value; the rest of the checks as for [0, 1] images
        from dataclasses import replace

        replace(cset, images=np.clip(cset.images, 0.0, 1.0)).validate(k, chw, where=str(path))
    else:
        cset.validate(k, chw, where=str(path))
    return cset


# --------------------------------------------------------------------------- the method


@register_method("external")
class ExternalSet(Method):
    """A condensed set made elsewhere: one file or folder per IPC, checked and converted."""

    requires = frozenset({"external"})
    param_schema = {
        "type": "object",
        "properties": {
            "path": {
                # {ipc} is required, checked in check_params (a schema `pattern` error would
                # print the regex); `examples` gives conformance tests a valid value
                "type": "string",
                "minLength": 1,
                "examples": ["sets/mine/ipc{ipc}.npz"],
                "description": "file or folder per cell, a pattern with {ipc} and optionally "
                "{seed}, e.g. sets/mine/ipc{ipc}.npz; relative to the working directory",
            },
            "format": {
                "type": "string",
                "enum": list(FORMATS),
                "default": "auto",
                "description": "auto: a folder is imagefolder, else the suffix decides",
            },
        },
        "required": ["path"],
        "additionalProperties": False,
    }

    def check_params(self) -> None:
        pattern_fields(self.params["path"])

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        path = ctx.extras.get("external_path") or format_path(self.params["path"], ipc, seed)
        return load_external(
            path,
            ctx.data,
            ipc,
            fmt=self.params.get("format", "auto"),
            method=self.kind,
            params=dict(self.params),
        )
