"""Method plugins: built-ins pass the conformance helper, which catches broken kinds, and a
package registering a kind through the `ddbench.methods` entry point runs in the workflow."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_snakemake

from ddbench.methods import CondensedSet, Context, Method, register_method
from ddbench.methods.base import METHODS
from ddbench.testing import ConformanceError, check_method

ROOT = Path(__file__).resolve().parents[1]
PLUGIN = ROOT / "tests" / "plugin_pkg"
BUILTIN_PARAMS = {
    "random": {},
    "herding": {"features": "convnet"},
    "kcenter": {"features": "convnet"},
    "el2n": {"scorer": "dynamics", "epoch": 1, "keep": "easy"},
    "forgetting": {"scorer": "dynamics"},
    "external": {"path": "sets/mine/ipc{ipc}.npz"},
    "cad_prune": {"scorer": "dynamics", "budget": 6, "window_j": 2, "window_w": 2},
    "dm": {"iterations": 3, "model": "convnet-d1-w8-in"},  # 6x6 test images: one pooled block
}
# sre2l, rded and ca2d need a trained teacher or teacher-scored crops: make_context territory
SLOW = {"dm": {"ipcs": (1,), "seeds": (0,)}}


@pytest.mark.parametrize("kind", sorted(BUILTIN_PARAMS))
def test_builtin_kinds_pass_the_conformance_helper(kind: str) -> None:
    passed = check_method(kind, BUILTIN_PARAMS[kind], **SLOW.get(kind, {}))
    assert {"exact class-balanced IPC", "same seed, same set", "save/load round trip"} <= set(
        passed
    )


# --- the helper catches what it promises to catch ---------------------------------------------


class _Broken(Method):
    """Base for deliberately broken kinds; registered and removed by the `broken` fixture."""

    def condense(self, ctx: Context, ipc: int, seed: int) -> CondensedSet:
        idx = np.concatenate([i[:ipc] for i in ctx.data.class_indices()])
        images = ctx.data.train_float()[idx]
        return CondensedSet(
            images, ctx.data.train_labels[idx], "x", self.kind, {}, ipc, ctx.data.name
        )


class _Unbalanced(_Broken):
    def condense(self, ctx, ipc, seed):
        cset = super().condense(ctx, ipc, seed)
        cset.labels = cset.labels.copy()
        cset.labels[0] = (cset.labels[0] + 1) % ctx.data.num_classes
        return cset


class _Unseeded(_Broken):
    calls = 0

    def condense(self, ctx, ipc, seed):
        type(self).calls += 1
        cset = super().condense(ctx, ipc, seed)
        cset.images = np.roll(cset.images, type(self).calls, axis=-1)
        return cset


class _Busy(_Broken):
    def __init__(self, **params):
        super().__init__(**params)
        self.cache_ = {}


class _UnknownInput(_Broken):
    requires = frozenset({"database"})


@pytest.fixture
def broken(request):
    cls = request.param
    register_method(f"broken_{cls.__name__.lower()}")(cls)
    yield cls.kind
    METHODS.pop(cls.kind)


@pytest.mark.parametrize(
    "broken, check",
    [
        (_Unbalanced, "exact class-balanced IPC"),
        (_Unseeded, "same seed, same set"),
        (_Busy, "__init__ stores params only"),
        (_UnknownInput, "requires known inputs"),
    ],
    indirect=["broken"],
)
def test_conformance_helper_names_the_broken_check(broken: str, check: str) -> None:
    with pytest.raises(
        ConformanceError, match=rf"method kind '{broken}' fails '{re.escape(check)}'"
    ):
        check_method(broken, {})


def test_conformance_helper_rejects_params_outside_the_schema() -> None:
    with pytest.raises(ConformanceError, match=r"'parameter schema'.*unknown key\(s\) 'featurs'"):
        check_method("herding", {"features": "convnet", "featurs": "convnet"})


# --- a real plugin package ---------------------------------------------------------------------


def readme_block(section: str, lang: str, index: int = 0) -> str:
    """The `index`-th fenced `lang` block of the README section `## {section}`."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)[index]


def test_readme_plugin_files_are_the_tested_package() -> None:
    assert readme_block("Add a method", "toml") == (PLUGIN / "pyproject.toml").read_text()
    source = PLUGIN / "src" / "ddbench_plugin_demo" / "__init__.py"
    assert readme_block("Add a method", "python", 0) == source.read_text()


@pytest.fixture(scope="module")
def plugin_env(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that has the plugin installed.

    pip installs a copy of tests/plugin_pkg into a private folder put on PYTHONPATH, so
    the shared venv (and every other process using it) is left unchanged and reruns start
    clean; entry points are found the same way as from site-packages.
    """
    tmp = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN, tmp / "pkg", ignore=shutil.ignore_patterns("build", "*.egg-info"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
           "--no-build-isolation", "--no-index", "--target", str(tmp / "site"), str(tmp / "pkg")]  # fmt: skip
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tmp / "site"), env.get("PYTHONPATH")]))
    return env


def run_python(code: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_installed_plugin_is_listed_and_passes_the_readme_check(plugin_env) -> None:
    listed = run_python(
        "from ddbench.methods import list_methods; print(list_methods())", plugin_env
    )
    assert "'centroid_nearest'" in listed.stdout
    cli = Path(sys.executable).parent / "ddbench"
    out = subprocess.run(
        [str(cli), "list", "methods"], env=plugin_env, capture_output=True, text=True
    )
    assert re.search(r"^centroid_nearest +needs: - ", out.stdout, flags=re.M), (
        out.stdout + out.stderr
    )
    check = run_python(readme_block("Add a method", "python", 1), plugin_env)
    assert "save/load round trip" in check.stdout


def test_plugin_picks_the_images_nearest_the_class_mean(plugin_env) -> None:
    code = textwrap.dedent(
        """
        import numpy as np
        from ddbench.methods import Context, get_method_class
        from ddbench.testing import tiny_dataset

        data = tiny_dataset()
        cset = get_method_class("centroid_nearest")().condense(Context(data, "tiny"), 2, 0)
        x = data.train_images.reshape(len(data.train_labels), -1).astype(float)
        for c, idx in enumerate(data.class_indices()):
            d = ((x[idx] - x[idx].mean(0)) ** 2).sum(1)
            assert set(cset.source_indices[cset.labels == c]) == set(idx[np.argsort(d)[:2]])
        print("ok")
        """
    )
    assert run_python(code, plugin_env).stdout.strip() == "ok"


@pytest.mark.workflow
def test_plugin_runs_through_the_workflow(plugin_env, tmp_path) -> None:
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    config.update(
        ipcs=[1],
        methods={"random": {"kind": "random"}, "nearest": {"kind": "centroid_nearest"}},
        protocols={"hl": config["protocols"]["hl"]},
        reference={"enabled": False},
    )
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    evals = [f"results/digits/eval/hl/convnet/{m}/ipc1/s0.json" for m in ("random", "nearest")]
    run_snakemake(tmp_path, cfg, "--cores", "2", targets=evals, env=plugin_env)
    metrics = json.loads((tmp_path / evals[1]).read_text())
    assert metrics["method"] == "nearest" and 0 <= metrics["accuracy"] <= 100
    print(f"\nplugin centroid_nearest, digits IPC 1, hl: {metrics['accuracy']:.2f} %")
