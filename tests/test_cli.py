"""The `ddbench` command: listings, inspect, validate, import and export; errors are one line, exit 2."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from ddbench.cli import main
from ddbench.data.datasets import ImageData, load_dataset
from ddbench.data.h5io import file_sha256, read_attrs, write_h5
from ddbench.methods import CondensedSet, Context, get_method_class, list_methods

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_user_error(result, *fragments: str) -> None:
    """Exit status 2, one line on stderr naming the problem, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.output + result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture
def dataset_file(tiny_data: ImageData, tmp_path: Path) -> Path:
    """tiny_data written as a prepared-dataset file."""
    path = tmp_path / "tiny.h5"
    write_h5(
        path,
        "dataset",
        {
            "train/images": tiny_data.train_images,
            "train/labels": tiny_data.train_labels,
            "test/images": tiny_data.test_images,
            "test/labels": tiny_data.test_labels,
        },
        created_by="test",
        attrs={"name": "tiny", "classes": '["a", "b", "c"]', "mean": [0.5], "std": [0.25]},
    )
    return path


@pytest.fixture
def set_file(dataset_file: Path, tmp_path: Path) -> Path:
    """A random coreset (IPC 2, seed 0) of the tiny dataset."""
    data = load_dataset(dataset_file)
    cset = get_method_class("random")().condense(Context(data=data, dataset="tiny"), 2, 0)
    cset.method = "random"
    path = tmp_path / "random_ipc2.h5"
    cset.save(path, created_by="test", seed=0)
    return path


def test_list_methods_shows_every_kind_and_its_inputs() -> None:
    result = run("list", "methods")
    assert result.exit_code == 0
    kinds = [line.split()[0] for line in result.stdout.splitlines()]
    assert kinds == list_methods()
    assert "external" in kinds and "needs: external" in result.stdout
    assert any(
        line.startswith("herding") and "needs: features" in line
        for line in result.stdout.splitlines()
    )


def test_list_protocols_models_and_students() -> None:
    protocols = run("list", "protocols").stdout
    assert [line.split()[0] for line in protocols.splitlines()] == [
        "hl",
        "sl",
        "slkd",
        "mt",
        "teacher",
    ]
    models = run("list", "models").stdout
    assert "convnet-d3-w128-in" in models and "timm:resnet18" in models
    students = run("list", "students", "--config", ROOT / "config/smoke.yaml").stdout
    assert students.split() == ["convnet", "convnet-d2-w16-in"]
    assert run("list", "nonsense").exit_code == 2  # click's usage error


def test_inspect_prints_format_datasets_and_provenance(set_file: Path) -> None:
    result = run("inspect", set_file)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "format: ddbench.condensed/1" in out
    assert "/images" in out and "[6, 1, 6, 6]" in out and "float32" in out
    assert "/labels" in out and "int64" in out
    for attr in (
        "config_sha256",
        "created_by: test",
        "ipc: 2",
        "method: random",
        "ddbench_version",
    ):
        assert attr in out


def test_inspect_of_a_non_hdf5_file_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "notes.h5"
    bad.write_text("not hdf5")
    assert_user_error(run("inspect", bad), "notes.h5", "not a readable HDF5 file")
    assert_user_error(run("inspect", tmp_path / "absent.h5"), "absent.h5", "does not exist")


def test_validate_prints_ok_or_the_config_error(tmp_path: Path) -> None:
    result = run("validate", ROOT / "config/smoke.yaml")
    assert result.exit_code == 0 and result.stdout.startswith("OK: ")
    config = yaml.safe_load((ROOT / "config/smoke.yaml").read_text())
    config["methods"]["herding"]["kind"] = "herdingg"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(config))
    assert_user_error(run("validate", bad), "config error at methods.herding.kind", "'herdingg'")


def test_example_config_validates() -> None:
    result = run("validate", ROOT / "config/examples/external.yaml")
    assert result.exit_code == 0, result.output


def test_import_writes_a_checked_condensed_set_with_provenance(
    dataset_file, tiny_data, tmp_path
) -> None:
    idx = np.concatenate([i[:2] for i in tiny_data.class_indices()])
    source = tmp_path / "mine_ipc2.npz"
    np.savez(source, images=tiny_data.train_images[idx], labels=tiny_data.train_labels[idx])
    out = tmp_path / "mine.h5"
    result = run(
        "import", source, "--dataset", dataset_file, "--ipc", 2, "--out", out, "--name", "mine"
    )
    assert result.exit_code == 0, result.output
    cset = CondensedSet.load(out, 3, (1, 6, 6))
    assert cset.method == "mine" and cset.kind == "external" and cset.ipc == 2
    np.testing.assert_array_equal(cset.images, tiny_data.train_float()[idx])
    assert read_attrs(out, "condensed")["source_sha256"] == file_sha256(source)


def test_import_of_a_bad_set_is_a_one_line_error(dataset_file, tiny_data, tmp_path) -> None:
    idx = np.concatenate([i[:2] for i in tiny_data.class_indices()])
    source = tmp_path / "mine_ipc2.npz"
    np.savez(source, images=tiny_data.train_images[idx], labels=tiny_data.train_labels[idx])
    result = run(
        "import", source, "--dataset", dataset_file, "--ipc", 3, "--out", tmp_path / "x.h5"
    )
    assert_user_error(result, "mine_ipc2.npz", "expected exactly IPC 3 images per class")
    assert not (tmp_path / "x.h5").exists()


def test_export_then_import_round_trips(set_file, dataset_file, tmp_path) -> None:
    out_dir = tmp_path / "exported"
    result = run("export", set_file, out_dir, "--dataset", dataset_file)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "000_a", "001_b", "002_c", "labels.csv", "meta.json"
    ]  # fmt: skip
    rows = list(csv.DictReader((out_dir / "labels.csv").open()))
    original = CondensedSet.load(set_file)
    assert [int(r["label"]) for r in rows] == original.labels.tolist()
    assert rows[0]["file"].startswith(f"00{original.labels[0]}_") and rows[0]["file"].endswith(
        ".png"
    )
    back = tmp_path / "back.h5"
    result = run("import", out_dir, "--dataset", dataset_file, "--ipc", 2, "--out", back)
    assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(CondensedSet.load(back).images, original.images)
    assert_user_error(run("export", set_file, out_dir), "exported", "already exists")


def test_export_without_class_names_uses_index_folders(set_file, tmp_path) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(set_file, lone / "set.h5")  # no dataset file given or found above it
    assert run("export", lone / "set.h5", tmp_path / "out").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == [
        "000",
        "001",
        "002",
    ]
