"""Configs that used to validate and then went silently wrong (or failed late) are refused.

Each test mutates config/smoke.yaml (sklearn digits, no data files) and expects one
`ConfigError` naming the key path: duplicate YAML keys (with both line numbers), non-finite
numbers, the reserved `full_train` name, an empty grid, duplicate reference seeds, seeds
beyond 2**32 - 1, proxy epochs that were never recorded, reversed crop ranges, `device: cuda`
without a GPU and an unknown `quality.teacher`.
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ddbench import config as config_module
from ddbench.cli import main
from ddbench.config import (
    ConfigError,
    check_config_files,
    grid,
    load_config,
    load_yaml,
    validate_config,
)

ROOT = Path(__file__).resolve().parents[1]
SMOKE_PATH = ROOT / "config" / "smoke.yaml"
SMOKE_TEXT = SMOKE_PATH.read_text()
SMOKE: dict = yaml.safe_load(SMOKE_TEXT)


def smoke() -> dict:
    return copy.deepcopy(SMOKE)


def mentions(*parts: str) -> str:
    """A regex that matches when every part occurs in the message, in any order."""
    return "(?s)" + "".join(f"(?=.*{re.escape(p)})" for p in parts)


def refused(config: dict, *parts: str, **kw) -> str:
    with pytest.raises(ConfigError, match=mentions(*parts)) as info:
        validate_config(config, check_sources=False, **kw)
    message = str(info.value)
    assert message.startswith("config error at "), message
    assert "\n" not in message, message
    return message


@pytest.fixture
def no_device_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DDBENCH_SKIP_DEVICE_CHECK", raising=False)


# --------------------------------------------------------------------------- 1. duplicate keys


def _with_duplicate_method(tmp_path: Path) -> tuple[Path, int, int]:
    """The smoke config with a second `random:` under `methods:`; returns both line numbers."""
    lines = SMOKE_TEXT.splitlines(keepends=True)
    first = lines.index("  random:\n") + 1
    herding = lines.index("  herding:\n")
    lines[herding:herding] = ["  random:\n", "    kind: herding\n", "    features: convnet\n"]
    path = tmp_path / "dup.yaml"
    path.write_text("".join(lines))
    return path, first, herding + 1


def test_load_config_refuses_a_duplicate_key_naming_both_lines(tmp_path: Path) -> None:
    path, first, second = _with_duplicate_method(tmp_path)
    shipped = len(yaml.safe_load(SMOKE_PATH.read_text())["methods"])
    assert len(yaml.safe_load(path.read_text())["methods"]) == shipped  # PyYAML: second wins
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith("config error at methods.random: "), message
    assert f"lines {first} and {second}" in message and str(path) in message, message


def test_check_config_files_refuses_a_duplicate_key_naming_file_and_lines(tmp_path: Path) -> None:
    path, first, second = _with_duplicate_method(tmp_path)
    check_config_files([SMOKE_PATH, tmp_path / "absent.yaml"])  # missing: Snakemake's error
    with pytest.raises(ConfigError, match=mentions(str(path), f"lines {first} and {second}")):
        check_config_files([SMOKE_PATH, str(path)])


def test_duplicate_keys_are_found_at_any_depth_and_in_json() -> None:
    text = "exclude:\n  - dataset: a\n    seed: 0\n    dataset: b\n"
    with pytest.raises(ConfigError, match=mentions("exclude[0].dataset", "lines 2 and 4")):
        load_yaml(text, "x.yaml")
    with pytest.raises(ConfigError, match=mentions("top: 1", "lines 1 and 3")):
        load_yaml("top: 1\nother: 2\ntop: 3\n", "top: 1")


def test_json_config_file_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('{"seeds": [0],\t"seeds": [1]}')  # a tab: JSON, but not YAML for PyYAML
    with pytest.raises(ConfigError, match=mentions("seeds", str(path))):
        check_config_files([path])


def test_merge_key_overrides_are_not_duplicates() -> None:
    text = "base: &b {lr: 0.1, epochs: 2}\nother:\n  <<: *b\n  lr: 0.2\n"
    assert load_yaml(text)["other"] == {"lr": 0.2, "epochs": 2}


def test_every_shipped_config_file_has_unique_keys() -> None:
    paths = sorted((ROOT / "config").glob("**/*.yaml"))
    assert len(paths) >= 5
    check_config_files(paths)


def test_cli_validate_duplicate_key_is_one_error_line(tmp_path: Path) -> None:
    path, first, second = _with_duplicate_method(tmp_path)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"lines {first} and {second}" in lines[0], result.stderr
    assert "Traceback" not in result.output + result.stderr


# --------------------------------------------------------------------------- 2. non-finite numbers


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("protocols", "hl", "lr"), float("nan")),
        (("protocols", "slkd", "temperature"), float("inf")),
        (("teachers", "convnet", "weight_decay"), float("-inf")),
        (("protocols", "hl", "cutmix"), float("inf")),
    ],
    ids=["lr_nan", "temperature_inf", "weight_decay_minus_inf", "cutmix_inf"],
)
def test_non_finite_numbers_are_refused(path: tuple[str, ...], value: float) -> None:
    config = smoke()
    node = config
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    refused(config, ".".join(path), "not a finite number")


@pytest.mark.parametrize("literal", [".nan", ".inf", "-.inf", ".NaN", "1.0e+400"])
def test_non_finite_yaml_literals_are_refused_by_load_config(tmp_path: Path, literal: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        SMOKE_TEXT.replace("    batch_size: 64\n  slkd:", f"    lr: {literal}\n  slkd:")
    )
    with pytest.raises(ConfigError, match=mentions("protocols.hl.lr", "finite")):
        load_config(path)


def test_non_finite_method_param_is_refused() -> None:
    config = smoke()
    config["methods"]["el2n_easy"]["keep"] = "band"
    config["methods"]["el2n_easy"]["band"] = [0.0, float("nan")]
    refused(config, "methods.el2n_easy.band[1]", "finite")


# --------------------------------------------------------------------------- 4. late failures


def test_method_named_full_train_is_reserved() -> None:
    config = smoke()
    config["methods"]["full_train"] = {"kind": "random"}
    refused(config, "methods.full_train", "reserved", "reference")


def test_exclude_that_empties_the_grid_is_refused() -> None:
    config = smoke()
    config["exclude"] = [{"dataset": "digits"}]
    refused(config, "exclude", "the grid is empty after exclude")
    config = smoke()
    config["exclude"] = [{"ipc": 1}, {"ipc": 5}]
    refused(config, "exclude", "the grid is empty after exclude")
    whole = len(list(grid(validate_config(smoke(), check_sources=False))))
    config = smoke()
    config["exclude"] = [{"ipc": 1}]
    assert len(list(grid(validate_config(config, check_sources=False)))) == whole // 2  # 2 IPCs


def test_duplicate_reference_seeds_are_refused() -> None:
    config = smoke()
    config["reference"]["seeds"] = [0, 0]
    refused(config, "reference.seeds", "duplicate", "[0]")
    config = smoke()
    config["reference"]["seeds"] = []
    refused(config, "reference.seeds")


@pytest.mark.parametrize(
    "where",
    [("seeds", 0), ("reference", "seeds", 0), ("teachers", "convnet", "seed")],
    ids=["grid", "reference", "teacher"],
)
def test_seeds_beyond_2_to_the_32_are_refused(where: tuple) -> None:
    for value, ok in ((2**70, False), (2**32, False), (2**32 - 1, True)):
        config = smoke()
        config["reference"]["seeds"] = [1]
        node = config
        for key in where[:-1]:
            node = node[key]
        node[where[-1]] = value
        if ok:
            validate_config(config, check_sources=False)
        else:
            refused(config, ".".join(map(str, where[:-1])), str(value))


def test_method_seed_param_beyond_2_to_the_32_is_refused() -> None:
    """A `*_seed` parameter of a method's own schema (psr's pool_seed) is bounded too."""
    config = smoke()
    config["priors"] = {"unet": {"kind": "unet"}}
    config["methods"]["psr"] = {"kind": "psr", "prior": "unet", "teacher": "convnet"}
    config["methods"]["psr"]["pool_seed"] = 2**32 - 1
    validate_config(copy.deepcopy(config), check_sources=False)
    config["methods"]["psr"]["pool_seed"] = 2**40
    refused(config, "methods.psr.pool_seed", str(2**40))


def test_el2n_epoch_beyond_the_recorded_epochs_is_refused() -> None:
    config = smoke()  # scorer `dynamics` records 3 epochs: 0, 1, 2
    config["methods"]["el2n_easy"]["epoch"] = 3
    refused(config, "methods.el2n_easy.epoch", "3", "scorers.dynamics.epochs")
    config = smoke()
    config["methods"]["el2n_easy"]["epoch"] = 2
    validate_config(config, check_sources=False)


def test_cad_windows_beyond_the_recorded_epochs_are_refused() -> None:
    config = smoke()
    config["methods"]["cad"] = {"kind": "cad_prune", "scorer": "dynamics"}
    refused(config, "methods.cad", "K=3, J=3, W=3", "scorers.dynamics.epochs")
    config["methods"]["cad"] = {"kind": "cad_prune", "scorer": "dynamics", "budget": 20}
    config["scorers"]["dynamics"]["epochs"] = 10
    refused(config, "methods.cad.budget", "K=20")
    config["methods"]["cad"] = {"kind": "cad_prune", "scorer": "dynamics"}
    validate_config(config, check_sources=False)  # K=10: epochs 4..8 of 1..10


@pytest.mark.parametrize(
    ("scale", "parts"),
    [
        ([0.9, 0.5], ("protocols.slkd.rrc_scale", "reversed")),
        ([0.0, 1.0], ("protocols.slkd.rrc_scale[0]",)),
        ([0.5, 1.5], ("protocols.slkd.rrc_scale[1]",)),
    ],
    ids=["reversed", "zero", "above_one"],
)
def test_rrc_scale_reversed_or_outside_0_1_is_refused(
    scale: list[float], parts: tuple[str, ...]
) -> None:
    config = smoke()
    config["protocols"]["slkd"]["rrc_scale"] = scale
    refused(config, *parts)


def test_reversed_scorer_crop_scale_is_refused() -> None:
    config = smoke()
    config["scorers"]["crops"] = {"kind": "crops", "teacher": "convnet", "scale": [1.0, 0.5]}
    refused(config, "scorers.crops.scale", "reversed")


@pytest.mark.usefixtures("no_device_check")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:3"])
def test_cuda_device_without_cuda_is_refused(monkeypatch: pytest.MonkeyPatch, device: str) -> None:
    monkeypatch.setattr(config_module, "cuda_available", lambda: False)
    config = smoke()
    config["device"] = device
    refused(config, "device", repr(device), "DDBENCH_SKIP_DEVICE_CHECK=1")
    validate_config(smoke() | {"device": device}, check_sources=False, check_device=False)
    monkeypatch.setenv("DDBENCH_SKIP_DEVICE_CHECK", "1")
    validate_config(smoke() | {"device": device}, check_sources=False)


@pytest.mark.usefixtures("no_device_check")
def test_cpu_and_auto_need_no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "cuda_available", lambda: False)
    for device in ("cpu", "auto"):
        validate_config(smoke() | {"device": device}, check_sources=False)


def test_cuda_probe_without_torch_reads_driver_files_and_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    monkeypatch.setattr(config_module.os.path, "exists", lambda f: f == "/dev/nvidiactl")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert config_module.cuda_available() is True
    for hidden in ("", "-1"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", hidden)
        assert config_module.cuda_available() is False
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setattr(config_module.os.path, "exists", lambda f: False)
    assert config_module.cuda_available() is False


def test_config_validation_does_not_import_torch(tmp_path: Path) -> None:
    import subprocess

    code = (
        "import sys; from ddbench.config import load_config; "
        f"load_config({str(SMOKE_PATH)!r}); print('torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


def test_unknown_quality_teacher_is_refused() -> None:
    config = smoke()
    config["quality"]["teacher"] = "nope"
    refused(config, "quality.teacher", "'nope'", "convnet")
    config = smoke()
    config["quality"]["teacher"] = "convnet_b"
    validate_config(config, check_sources=False)


# --------------------------------------------------------------------------- cheap source checks


def _fashion_folder(tmp_path: Path) -> Path:
    """A Fashion-MNIST folder whose four files exist but are not IDX files."""
    folder = tmp_path / "fm"
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"):
        (folder / f"{stem}.gz").write_bytes(b"not gzip")
    for stem in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / f"{stem}.gz").write_bytes(b"not gzip")
    return folder


def test_read_sources_false_only_checks_that_the_files_exist(tmp_path: Path) -> None:
    folder = _fashion_folder(tmp_path)
    config = smoke()
    config["datasets"] = {"fm": {"kind": "fashion_mnist", "path": str(folder)}}
    config["ipcs"] = [1, 100000]  # no class count without reading: no IPC check either
    validate_config(copy.deepcopy(config), read_sources=False)
    with pytest.raises(ConfigError, match="datasets.fm"):
        validate_config(copy.deepcopy(config))  # reading the files finds they are not IDX
    config["datasets"]["fm"]["path"] = str(tmp_path / "absent")
    with pytest.raises(ConfigError, match=mentions("datasets.fm", "absent")):
        validate_config(config, read_sources=False)


def test_read_sources_false_skips_the_ipc_check_that_reading_does() -> None:
    config = smoke()
    config["ipcs"] = [1, 1000]  # digits has < 200 images per class
    validate_config(copy.deepcopy(config), read_sources=False)
    with pytest.raises(ConfigError, match=mentions("ipcs", "1000")):
        validate_config(config)
