"""Diffusion-prior specs and Stable Diffusion source checks (no torch: config validation uses it).

The heavy side (training, loading, sampling) lives in `ddbench.stages.diffusion`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ddbench.errors import SourceError

PRIOR_FORMAT = "ddbench.prior/1"
PRIOR_JSON = "prior.json"
SAMPLES_PNG = "samples.png"
PRIOR_KINDS = ("unet", "stable_diffusion")
# the StableDiffusionPipeline components a source folder must hold, each a subfolder
SD_COMPONENTS = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")
DEFAULT_PROMPT = "an image of {class_name}"


class PriorSourceError(SourceError):
    """A Stable Diffusion source folder is missing, incomplete or changed."""


def check_sd_source(path: str | os.PathLike) -> Path:
    """Raise PriorSourceError naming what is missing unless `path` is a complete SD folder."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise PriorSourceError(f"Stable Diffusion folder {root} does not exist")
    if not (root / "model_index.json").is_file():
        raise PriorSourceError(
            f"{root / 'model_index.json'} is missing: not a diffusers StableDiffusionPipeline folder"
        )
    for part in SD_COMPONENTS:
        sub = root / part
        if not sub.is_dir() or not any(sub.iterdir()):
            raise PriorSourceError(
                f"Stable Diffusion folder {root}: component folder {sub} is missing or empty"
            )
    return root


def sd_fingerprint(path: str | os.PathLike) -> dict:
    """A cheap identity of an SD folder: every file's relative name and size, and model_index.json's SHA-256."""
    root = check_sd_source(path)
    files = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = Path(dirpath) / name
            files[full.relative_to(root).as_posix()] = full.stat().st_size
    index_sha = hashlib.sha256((root / "model_index.json").read_bytes()).hexdigest()
    listing = "\n".join(f"{k}\t{v}" for k, v in sorted(files.items()))
    return {
        "model_index_sha256": index_sha,
        "files_sha256": hashlib.sha256(listing.encode()).hexdigest(),
        "n_files": len(files),
        "total_bytes": sum(files.values()),
    }


def prior_spec_param(config: dict):
    """The `params.spec` function of rule train_prior: the prior's spec as JSON.

    A Stable Diffusion source's fingerprint joins the spec, so a changed folder reruns the
    prior and everything built from it.
    """

    def spec(wildcards) -> str:
        value = dict(config["priors"][wildcards.prior])
        if value["kind"] == "stable_diffusion":
            value["source_fingerprint"] = sd_fingerprint(value["path"])
        return json.dumps(value, sort_keys=True)

    return spec


def class_prompt(template: str, class_name: str) -> str:
    """The prompt of one class: `{class_name}` in the template replaced (plain text, never format())."""
    return template.replace("{class_name}", class_name)


def check_prompt_template(template: str) -> None:
    """The template must name `{class_name}` and no other field."""
    if "{class_name}" not in template:
        raise ValueError("prompt_template: must contain {class_name}")
    rest = template.replace("{class_name}", "")
    if "{" in rest or "}" in rest:
        raise ValueError(
            f"prompt_template: only the field {{class_name}} is allowed (got {template!r})"
        )


def check_unet_shape(block_out_channels: list[int], norm_groups: int) -> None:
    """GroupNorm needs every block width divisible by `norm_groups`."""
    bad = [c for c in block_out_channels if c % norm_groups]
    if bad:
        raise ValueError(
            f"block_out_channels: widths {bad} are not divisible by norm_groups {norm_groups}"
        )


def unet_padding(image_size: int, n_blocks: int) -> int:
    """Pixels added at the bottom/right so each of the n_blocks - 1 downsamplings halves exactly."""
    step = 2 ** (n_blocks - 1)
    return (-image_size) % step
