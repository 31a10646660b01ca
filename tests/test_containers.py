"""Container recipes and pinned environments agree with each other and with the workflow.

Apptainer, Docker's daemon and conda are not available here, so nothing is built: these tests
check what can be checked without them. `snakemake --containerize` needs `conda` only to ask
for the platform (to look for envs/*.<platform>.pin.txt files) and its version; a stand-in
answers those three queries for linux-64.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml
from conftest import run_snakemake

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli
    import tomli as tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
RECIPES = [ROOT / "containers/Dockerfile", ROOT / "containers/ddbench.def"]
ENV_FILES = sorted((ROOT / "envs").glob("*.yaml"))
# pyproject dependencies that run the workflow on the submit host, never inside a job's env
HOST_ONLY = {"snakemake", "snakemake-executor-plugin-slurm", "click"}
NOT_PACKAGES = {"python", "pip"}  # the interpreter and installer each env needs
CONDA_STUB = """#!/bin/sh
case "$*" in
  --version) echo "conda 24.11.3" ;;
  "info --json") echo '{"platform": "linux-64", "conda_prefix": "/opt/conda"}' ;;
  "config --get channel_priority --json") echo '{"get": {"channel_priority": "strict"}}' ;;
  *) echo "conda stand-in: unsupported: $*" >&2; exit 1 ;;
esac
"""


@pytest.fixture(scope="module")
def containerized(tmp_path_factory) -> dict:
    """What `snakemake --containerize` prints: env hash and {source: (prefix, content lines)}."""
    bindir = tmp_path_factory.mktemp("conda-stand-in")
    (bindir / "conda").write_text(CONDA_STUB)
    (bindir / "conda").chmod(0o755)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    # the checkout is the working directory: --containerize runs no job, it prints the recipe
    proc = run_snakemake(
        ROOT,
        ROOT / "config/smoke.yaml",
        "--containerize",
        "dockerfile",
        "--workflow-profile",
        "none",
        "--replace-workflow-config",  # no profile: keep config/config.yaml out of it
        env=env,
    )
    out = proc.stdout
    envs = {}
    for block in out.split("# Conda environment:\n")[1:]:
        source = re.search(r"^#   source: (\S+)$", block, re.M).group(1)
        prefix = re.search(r"^#   prefix: (\S+)$", block, re.M).group(1)
        lines = block.splitlines()[2:]  # after the source: and prefix: lines
        content = [line[4:] for line in lines if line.startswith("#   ")]
        envs[source] = (prefix, content)
    env_hash = re.search(r'conda_env_hash="(\w+)"', out).group(1)
    return {"hash": env_hash, "envs": envs, "text": out}


def env_packages(path: Path) -> dict[str, str]:
    """{canonical name: pin} of the conda and pip packages an env file lists."""
    spec = yaml.safe_load(path.read_text())
    found = {}
    for dep in spec["dependencies"]:
        if isinstance(dep, dict):
            for pip_dep in dep["pip"]:
                req = Requirement(pip_dep)
                found[canonicalize_name(req.name)] = str(req.specifier)
        else:
            name, _, pin = dep.partition("=")
            found[canonicalize_name(name)] = pin
    return found


def test_containerize_lists_every_env_file_verbatim(containerized):
    envs = containerized["envs"]
    assert set(envs) == {f"envs/{p.name}" for p in ENV_FILES}
    for path in ENV_FILES:
        _, content = envs[f"envs/{path.name}"]
        assert content == path.read_text().strip().splitlines(), path


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_builds_the_containerize_envs(recipe, containerized):
    """Each env file lands at Snakemake's prefix for it, and that env is created there."""
    text = recipe.read_text()
    copied = dict(re.findall(r"envs/(\w+\.yaml) (/conda-envs/\w+)/environment\.yaml", text))
    expected = {Path(src).name: prefix for src, (prefix, _) in containerized["envs"].items()}
    assert copied == expected, f"{recipe.name}: regenerate with `snakemake --containerize`"
    for prefix in expected.values():
        assert f"conda env create --prefix {prefix} --file {prefix}/environment.yaml" in text
    assert containerized["hash"] in text, f"{recipe.name}: conda_env_hash label is stale"
    # ddbench goes into the torch env, which is first on PATH
    torch_prefix = expected["torch.yaml"]
    assert f"{torch_prefix}/bin/python -m pip install -r /opt/ddbench/requirements.lock" in text
    assert f"{torch_prefix}/bin/python -m pip install --no-deps /opt/ddbench" in text
    assert re.search(rf"PATH={torch_prefix}/bin:", text), recipe.name
    assert "nvidia/cuda:" in text and "runtime" in text  # a CUDA-capable base


def test_every_env_package_is_pinned_and_a_project_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    # the image runs every rule: the core dependencies and the diffusion extra
    needed = project["dependencies"] + project["optional-dependencies"]["diffusion"]
    declared = {canonicalize_name(Requirement(r).name) for r in needed}
    in_envs = {}
    for path in ENV_FILES:
        for name, pin in env_packages(path).items():
            if name in NOT_PACKAGES:
                continue
            assert re.match(r"^(==)?\d", pin), f"{path.name}: {name} is not pinned ({pin!r})"
            in_envs.setdefault(name, set()).add(path.name)
    missing_in_pyproject = sorted(set(in_envs) - declared)
    assert not missing_in_pyproject, f"pinned in envs/ but not in pyproject: {missing_in_pyproject}"
    missing_in_envs = sorted(declared - set(in_envs) - HOST_ONLY)
    assert not missing_in_envs, f"pyproject dependencies no env file pins: {missing_in_envs}"


def test_torch_pins_agree_with_install_sh():
    pins = env_packages(ROOT / "envs/torch.yaml")
    x86 = re.search(r'^\s*\*\) TORCH="([^"]+)"', (ROOT / "install.sh").read_text(), re.M)
    assert x86, "install.sh: no default (x86_64) TORCH= line"
    install = dict(item.split("==") for item in x86.group(1).split())
    assert pins["torch"] == f"=={install['torch']}"
    assert pins["torchvision"] == f"=={install['torchvision']}"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.name)
def test_recipe_copies_every_env_file_and_nothing_else(recipe):
    copied = set(re.findall(r"(?<![\w/])envs/(\w+\.yaml)", recipe.read_text()))
    assert copied == {p.name for p in ENV_FILES}
