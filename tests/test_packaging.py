"""Packaging: one lock file that every install uses, agreeing with pyproject and the envs."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: pytest brings tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PER_MACHINE = {"torch", "torchvision"}  # install.sh picks the build per machine


def _lock() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[canonicalize_name(name)] = version
    return pins


def test_lock_pins_every_dependency_within_its_range():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in meta["dependencies"]]
    for items in meta["optional-dependencies"].values():
        reqs += [Requirement(r) for r in items if not r.startswith("ddbench")]
    pins = _lock()
    for req in reqs:
        name = canonicalize_name(req.name)
        if name in PER_MACHINE:
            assert name not in pins, f"{name} is installed per machine by install.sh"
            continue
        assert name in pins, f"{req.name} is not in requirements.lock"
        assert req.specifier.contains(pins[name], prereleases=True), (req, pins[name])


def test_env_pins_agree_with_the_lock():
    pins = _lock()
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        deps = yaml.safe_load(env.read_text())["dependencies"]
        pip = next((d["pip"] for d in deps if isinstance(d, dict) and "pip" in d), [])
        for item in pip:
            name, _, version = item.partition("==")
            name = canonicalize_name(name)
            if name not in PER_MACHINE and name in pins:
                assert pins[name] == version, f"{env.name}: {item} vs lock {pins[name]}"
        for item in deps:
            if isinstance(item, str) and "=" in item and not item.startswith(("python", "pip")):
                name, version = item.split("=", 1)
                name = canonicalize_name(name)
                if name in pins:  # conda pins a prefix (numpy=2.4): the lock must be in it
                    assert pins[name] == version or pins[name].startswith(version + "."), (
                        f"{env.name}: {item} vs lock {pins[name]}"
                    )


def test_install_and_containers_install_from_the_lock():
    assert re.search(r"pip install .*-r requirements\.lock", (ROOT / "install.sh").read_text())
    for recipe in ("containers/Dockerfile", "containers/ddbench.def"):
        text = (ROOT / recipe).read_text()
        assert "requirements.lock" in text and "--no-deps /opt/ddbench" in text, recipe
    assert (ROOT / "LICENSE").is_file()
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] and cff["title"].startswith("ddbench")
