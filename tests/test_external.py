"""External sets: every format reads to the same checked set, bad sets fail with a clear message,
export -> import is lossless on the 8-bit grid, and the README example runs as written."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ddbench.config import ConfigError, validate_config
from ddbench.data.datasets import ImageData, load_dataset, prepare_dataset
from ddbench.data.export import export_set
from ddbench.data.h5io import DataFileError, file_sha256, read_attrs
from ddbench.methods import CondensedSet, Context, get_method_class
from ddbench.methods.external import external_inputs, load_external, pattern_fields

ROOT = Path(__file__).resolve().parents[1]


def _coreset(data: ImageData, ipc: int) -> tuple[np.ndarray, np.ndarray]:
    """The first `ipc` training images of each class: uint8 NHWC images and labels."""
    idx = np.concatenate([i[:ipc] for i in data.class_indices()])
    return data.train_images[idx], data.train_labels[idx]


def _expected(data: ImageData, ipc: int) -> tuple[np.ndarray, np.ndarray]:
    images, labels = _coreset(data, ipc)
    return images.transpose(0, 3, 1, 2).astype(np.float32) / 255.0, labels


def _write_folder(root: Path, data: ImageData, ipc: int, names: list[str]) -> None:
    images, labels = _coreset(data, ipc)
    for c, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for j, img in enumerate(images[labels == c]):
            Image.fromarray(img[..., 0], mode="L").save(root / name / f"{j}.png")


# --- every format reads to the same set ---------------------------------------------------


def _write(fmt: str, tmp_path: Path, data: ImageData, ipc: int) -> Path:
    images, labels = _coreset(data, ipc)
    if fmt == "npz_nhwc_uint8":
        path = tmp_path / "set.npz"
        np.savez(path, images=images, labels=labels)
    elif fmt == "npz_nchw_float":
        path = tmp_path / "set.npz"
        np.savez(path, images=images.transpose(0, 3, 1, 2) / 255.0, labels=labels)
    elif fmt == "npz_nhw_with_classes":
        path = tmp_path / "set.npz"
        np.savez(path, images=images[..., 0], labels=labels, classes=np.array(data.classes))
    elif fmt == "pt":
        path = tmp_path / "set.pt"
        torch.save({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels)}, path)
    elif fmt == "folder_by_name":
        path = tmp_path / "set"
        _write_folder(path, data, ipc, list(data.classes))
    elif fmt == "folder_by_index":
        path = tmp_path / "set"
        _write_folder(path, data, ipc, [str(c) for c in range(data.num_classes)])
    elif fmt == "folder_by_index_and_name":
        path = tmp_path / "set"
        _write_folder(path, data, ipc, [f"{c:03d}_{n}" for c, n in enumerate(data.classes)])
    else:  # a ddbench condensed set from another run
        path = tmp_path / "set.h5"
        exp_images, exp_labels = _expected(data, ipc)
        CondensedSet(exp_images, exp_labels, "theirs", "random", {}, ipc, "elsewhere").save(
            path, created_by="another run", seed=0
        )
    return path


@pytest.mark.parametrize(
    "fmt",
    [
        "npz_nhwc_uint8",
        "npz_nchw_float",
        "npz_nhw_with_classes",
        "pt",
        "folder_by_name",
        "folder_by_index",
        "folder_by_index_and_name",
        "h5",
    ],
)
def test_every_format_reads_to_the_same_checked_set(fmt, tiny_data, tmp_path) -> None:
    path = _write(fmt, tmp_path, tiny_data, ipc=2)
    cset = load_external(path, tiny_data, 2, method="mine")
    images, labels = _expected(tiny_data, 2)
    np.testing.assert_allclose(cset.images, images, atol=1e-7)
    np.testing.assert_array_equal(cset.labels, labels)
    assert cset.images.dtype == np.float32 and cset.images.shape == (6, 1, 6, 6)
    assert (cset.method, cset.kind, cset.ipc, cset.dataset) == ("mine", "external", 2, "tiny")


def test_soft_labels_travel_with_the_set(tiny_data, tmp_path) -> None:
    images, labels = _coreset(tiny_data, 1)
    soft = np.full((3, 3), 0.1, dtype=np.float32) + np.eye(3, dtype=np.float32) * 0.7
    path = tmp_path / "set.pt"
    torch.save({"images": torch.from_numpy(images), "labels": torch.from_numpy(labels),
                "soft_labels": torch.from_numpy(soft)}, path)  # fmt: skip
    cset = load_external(path, tiny_data, 1)
    np.testing.assert_array_equal(cset.soft_labels, soft)


def test_provenance_records_the_source_file_and_its_sha256(tiny_data, tmp_path) -> None:
    path = _write("npz_nhwc_uint8", tmp_path, tiny_data, ipc=1)
    cset = load_external(path, tiny_data, 1, method="mine", params={"path": "x{ipc}.npz"})
    out = tmp_path / "condensed.h5"
    cset.save(out, created_by="test", seed=0)
    attrs = read_attrs(out, "condensed")
    assert attrs["source_sha256"] == file_sha256(path)
    assert attrs["source_path"] == str(path)
    assert attrs["source_format"] == "npz"
    assert json.loads(attrs["params"]) == {"path": "x{ipc}.npz"}


def test_a_pickled_object_in_a_pt_file_is_refused(tiny_data, tmp_path) -> None:
    images, labels = _coreset(tiny_data, 1)
    path = tmp_path / "set.pt"
    torch.save({"images": images, "labels": labels, "extra": Path("x")}, path)  # not weights-only
    with pytest.raises(
        DataFileError, match=r"set\.pt: cannot be loaded with torch\.load\(weights_only=True\)"
    ):
        load_external(path, tiny_data, 1)


# --- malformed sets: exact messages --------------------------------------------------------


def test_wrong_ipc_per_class_names_the_file_and_the_classes(tiny_data, tmp_path) -> None:
    images, labels = _coreset(tiny_data, 2)
    labels = labels.copy()
    labels[0] = 1  # class 'a' loses an image to class 'b'
    path = tmp_path / "ipc2.npz"
    np.savez(path, images=images, labels=labels)
    with pytest.raises(DataFileError) as err:
        load_external(path, tiny_data, 2)
    assert str(err.value) == (
        f"{path}: expected exactly IPC 2 images per class for 3 classes, "
        "but class 'a' has 1, 'b' has 3"
    )


def test_nan_pixels_are_counted(tiny_data, tmp_path) -> None:
    images, labels = _expected(tiny_data, 1)
    images[1, 0, 2, :3] = np.nan
    path = tmp_path / "ipc1.npz"
    np.savez(path, images=images, labels=labels)
    with pytest.raises(DataFileError) as err:
        load_external(path, tiny_data, 1)
    assert (
        str(err.value)
        == f"{path}: images contain 3 NaN and 0 infinite pixel values (in 1 of 3 images)"
    )


def test_wrong_resolution_states_both_resolutions(tiny_data, tmp_path) -> None:
    labels = _coreset(tiny_data, 1)[1]
    path = tmp_path / "ipc1.npz"
    np.savez(path, images=np.zeros((3, 12, 12, 1), np.uint8), labels=labels)
    with pytest.raises(DataFileError) as err:
        load_external(path, tiny_data, 1)
    assert str(err.value) == (
        f"{path}: images have shape (3, 12, 12, 1) (12x12 pixels, 1 channel(s)), but dataset "
        "'tiny' is 6x6 pixels, 1 channel(s): expected [n, 1, 6, 6] or [n, 6, 6, 1]"
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(images=a["images"] / 255.0 * 2.0), r"float pixel values range over \[0, 2\], expected \[0, 1\]"),
        (lambda a: a.update(images=a["images"].astype(np.float32)), r"0\.\.255 floats\? divide by 255"),
        (lambda a: a.update(images=a["images"].astype(np.int64)), r"dtype int64, expected uint8 \(0\.\.255\) or float"),
        (lambda a: a.update(labels=a["labels"] + 1), r"labels range over 1\.\.3, but dataset 'tiny' has 3 classes \(0\.\.2\)"),
        (lambda a: a.update(labels=np.eye(3)[a["labels"]]), r"give class indices \[n\] \(probability vectors go into soft_labels\)"),
        (lambda a: a.update(classes=np.array(["a", "c", "b"])), r"class names \['a', 'c', 'b'\] differ"),
        (lambda a: a.update(soft_labels=np.ones((3, 2), np.float32)), r"soft_labels are float32 \(3, 2\), expected float \[3, 3\]"),
        (lambda a: a.update(soft_label=np.ones((3, 3))), r"unexpected entries 'soft_label' \(allowed: images, labels, soft_labels, classes\)"),
        (lambda a: a.pop("labels"), r"missing labels"),
    ],
)  # fmt: skip
def test_other_malformed_arrays_fail_clearly(change, message, tiny_data, tmp_path) -> None:
    images, labels = _coreset(tiny_data, 1)
    arrays = {"images": images, "labels": labels}
    change(arrays)
    path = tmp_path / "ipc1.npz"
    np.savez(path, **arrays)
    with pytest.raises(DataFileError, match=re.escape(str(path)) + ": .*" + message):
        load_external(path, tiny_data, 1)


def test_folder_problems_name_the_folder_or_image(tiny_data, tmp_path) -> None:
    bad_name = tmp_path / "bad_name"
    _write_folder(bad_name, tiny_data, 1, ["a", "b", "zebra"])
    with pytest.raises(DataFileError, match=r"bad_name: sub-folder 'zebra' is not a class"):
        load_external(bad_name, tiny_data, 1)
    wrong_pair = tmp_path / "wrong_pair"
    _write_folder(wrong_pair, tiny_data, 1, ["000_a", "001_c", "002_c"])
    with pytest.raises(
        DataFileError, match=r"'001_c' names class 1 'c', but class 1 of the dataset is 'b'"
    ):
        load_external(wrong_pair, tiny_data, 1)
    missing = tmp_path / "missing"
    _write_folder(missing, tiny_data, 1, ["a", "b"])
    with pytest.raises(DataFileError, match=r"missing: no sub-folder for class\(es\) 2 \('c'\)"):
        load_external(missing, tiny_data, 1)
    rgb = tmp_path / "rgb"
    _write_folder(rgb, tiny_data, 1, ["a", "b", "c"])
    Image.new("RGB", (6, 6)).save(rgb / "b" / "0.png")
    with pytest.raises(DataFileError, match=r"rgb/b/0\.png: image mode RGB, expected L"):
        load_external(rgb, tiny_data, 1)
    big = tmp_path / "big"
    _write_folder(big, tiny_data, 1, ["a", "b", "c"])
    Image.new("L", (7, 6)).save(big / "c" / "0.png")
    with pytest.raises(
        DataFileError, match=r"big/c/0\.png: image is 7x6 pixels, but dataset 'tiny' is 6x6"
    ):
        load_external(big, tiny_data, 1)


def test_missing_source_and_unknown_suffix(tiny_data, tmp_path) -> None:
    with pytest.raises(DataFileError, match=r"nothing\.npz: external set does not exist"):
        load_external(tmp_path / "nothing.npz", tiny_data, 1)
    (tmp_path / "set.txt").write_text("x")
    with pytest.raises(
        DataFileError, match=r"set\.txt: cannot tell the format from the suffix '\.txt'"
    ):
        load_external(tmp_path / "set.txt", tiny_data, 1)


# --- configuration and workflow wiring ------------------------------------------------------


def _config(path: str) -> dict:
    return {
        "datasets": {"digits": {"kind": "digits"}},
        "ipcs": [1],
        "seeds": [0],
        "methods": {"mine": {"kind": "external", "path": path}},
        "protocols": {"hl": {"preset": "hl", "epochs": 1}},
        "students": {"convnet": {"model": "convnet-d2-w16-in"}},
    }


@pytest.mark.parametrize(
    "path, message",
    [
        ("sets/mine.npz", "path: 'sets/mine.npz' has no {ipc}: give one set per IPC"),
        ("sets/{name}/ipc{ipc}.npz", "path: 'sets/{name}/ipc{ipc}.npz' uses {name}; only {ipc} and {seed} are allowed"),
        ("sets/ipc{ipc", "path: 'sets/ipc{ipc' is not a valid pattern"),
    ],
)  # fmt: skip
def test_config_rejects_bad_path_patterns_naming_the_key(path, message) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(_config(path), check_sources=False)
    assert str(err.value).startswith(f"config error at methods.mine.{message}")


def test_config_accepts_ipc_and_seed_patterns() -> None:
    cfg = validate_config(_config("sets/s{seed}/ipc{ipc:03d}.pt"), check_sources=False)
    assert cfg["methods"]["mine"]["format"] == "auto"
    assert pattern_fields("sets/s{seed}/ipc{ipc:03d}.pt") == ["seed", "ipc"]


def test_workflow_inputs_are_the_resolved_file_or_every_folder_entry(tiny_data, tmp_path) -> None:
    assert external_inputs("sets/s{seed}/ipc{ipc:02d}.npz", "5", "1") == {
        "external": "sets/s1/ipc05.npz"
    }
    _write_folder(tmp_path / "ipc1", tiny_data, 1, ["a", "b", "c"])
    inputs = external_inputs(str(tmp_path / "ipc{ipc}"), "1", "0")
    assert inputs["external"] == str(tmp_path / "ipc1")
    # an edited image must rerun the set: every image (and sub-folder) is an input
    assert {Path(p).relative_to(tmp_path / "ipc1").as_posix() for p in inputs["external_files"]} == {
        "a", "b", "c", "a/0.png", "b/0.png", "c/0.png"
    }  # fmt: skip


def test_method_reads_the_file_the_workflow_resolved(tiny_data, tmp_path) -> None:
    path = _write("npz_nhwc_uint8", tmp_path, tiny_data, ipc=1)
    method = get_method_class("external")(path="not/used/ipc{ipc}.npz", format="auto")
    ctx = Context(data=tiny_data, dataset="tiny", extras={"external_path": str(path)})
    cset = method.condense(ctx, 1, 0)
    assert cset.extra_attrs["source_sha256"] == file_sha256(path)


# --- export -> import round trip, evaluated -------------------------------------------------


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("digits") / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path


def test_export_then_import_reproduces_the_set_and_its_accuracy(digits_file, tmp_path) -> None:
    from ddbench.training.evaluate import evaluate_set
    from ddbench.training.protocols import resolve_protocol

    data = load_dataset(digits_file)
    original = get_method_class("random")().condense(Context(data=data, dataset="digits"), 5, 0)
    original.method = "random"
    original.soft_labels = np.random.default_rng(0).dirichlet(np.ones(10), 50).astype(np.float32)
    first = tmp_path / "random_ipc5.h5"
    original.save(first, created_by="test", seed=0)
    info = export_set(first, tmp_path / "exported", dataset=digits_file)
    assert info["max_quantisation_error"] == 0.0  # a coreset of a uint8 dataset lies on k/255
    assert sorted(p.name for p in (tmp_path / "exported").iterdir())[:3] == [
        "000_0",
        "001_1",
        "002_2",
    ]
    back = load_external(tmp_path / "exported", data, 5, method="random")
    np.testing.assert_array_equal(back.images, original.images)
    np.testing.assert_array_equal(back.labels, original.labels)  # same order: labels.csv
    np.testing.assert_array_equal(back.soft_labels, original.soft_labels)
    second = tmp_path / "imported_ipc5.h5"
    back.save(second, created_by="test", seed=0)

    protocol = resolve_protocol("hl", {"preset": "hl", "epochs": 100, "batch_size": 64})
    student = {"model": "convnet-d2-w16-in"}
    results = [
        evaluate_set(
            digits_file,
            h5,
            protocol,
            "convnet",
            student,
            0,
            [],
            tmp_path / f"{h5.stem}.json",
            device="cpu",
            threads=1,
        )  # fmt: skip
        for h5 in (first, second)
    ]
    print(f"\nround trip accuracy: {results[0]['accuracy']!r} -> {results[1]['accuracy']!r}")
    assert results[0]["accuracy"] == results[1]["accuracy"]
    assert results[0]["final_train_loss"] == results[1]["final_train_loss"]


def test_export_of_off_grid_pixels_quantises_to_8_bit(digits_file, tmp_path) -> None:
    data = load_dataset(digits_file)
    means = np.stack([data.train_float()[data.train_labels == c].mean(0) for c in range(10)])
    cset = CondensedSet(means, np.arange(10), "means", "external", {}, 1, "digits")
    cset.save(tmp_path / "means.h5", created_by="test", seed=0)
    info = export_set(tmp_path / "means.h5", tmp_path / "out", dataset=digits_file)
    back = load_external(tmp_path / "out", data, 1)
    err = np.abs(back.images - means).max()
    assert 0 < err <= 0.5 / 255 + 1e-7 and info["max_quantisation_error"] == pytest.approx(
        err, abs=1e-6
    )


# --- the README example, run as written ------------------------------------------------------


def readme_block(section: str, lang: str, index: int = 0) -> str:
    """The `index`-th fenced `lang` block of the README section `## {section}`."""
    text = (ROOT / "README.md").read_text()
    body = text.split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"```{lang}\n(.*?)```", body, flags=re.S)[index]


def checkout(tmp_path: Path) -> Path:
    """A working folder that looks like the project root (links to the workflow and the venv)."""
    work = tmp_path / "project"
    work.mkdir()
    for name in ("Snakefile", "rules", "scripts", "src", "envs", "profiles", "config"):
        (work / name).symlink_to(ROOT / name)
    (work / ".venv").symlink_to(Path(sys.executable).parents[1])
    return work


def planned(work: Path) -> subprocess.CompletedProcess:
    """A dry run of the example config, as the README runs it."""
    cmd = [".venv/bin/snakemake", "-n", "--configfile", "config/examples/external.yaml",
           "--replace-workflow-config"]  # fmt: skip
    return subprocess.run(cmd, cwd=work, capture_output=True, text=True)


def jobs_of(proc: subprocess.CompletedProcess, rules: set[str]) -> set[tuple[str, str]]:
    """(rule, wildcards) of the planned jobs of `rules` in a dry run's output."""
    out = set()
    for block in re.split(r"\n(?=(?:local)?rule \w+:)", proc.stdout + proc.stderr):
        m = re.match(r"(?:local)?rule (\w+):", block.strip())
        wc = re.search(r"wildcards: (.*)", block)
        if m and m.group(1) in rules:
            out.add((m.group(1), wc.group(1) if wc else ""))
    return out


@pytest.mark.workflow
def test_readme_example_evaluates_an_external_set_and_reruns_when_it_changes(tmp_path) -> None:
    work = checkout(tmp_path)
    # a set that must be built from a missing file stops the run before any job, naming it
    out = planned(work)
    assert out.returncode != 0
    err = out.stdout + out.stderr
    assert "Missing input files for rule condense" in err and "sets/mine/ipc1.npz" in err

    script = readme_block("Evaluate your own condensed set", "bash")
    proc = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=work,
                          capture_output=True, text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((work / "results/digits/eval/hl/convnet/mine/ipc1/s0.json").read_text())
    assert metrics["method"] == "mine" and 0 <= metrics["accuracy"] <= 100
    print(f"\nREADME example: class-mean set {metrics['accuracy']:.2f} %")
    assert "mine" in proc.stdout  # the printed table has its row
    assert read_attrs(work / "results/digits/condensed/mine/ipc1/s0.h5", "condensed")[
        "source_sha256"
    ] == file_sha256(work / "sets/mine/ipc1.npz")
    again = planned(work)
    assert "Nothing to be done" in again.stdout + again.stderr

    # a changed file reruns exactly its set and evaluations
    with np.load(work / "sets/mine/ipc1.npz") as z:
        arrays = dict(z)
    np.savez(work / "sets/mine/ipc1.npz", images=255 - arrays["images"], labels=arrays["labels"])
    out = planned(work)
    assert jobs_of(out, {"condense", "evaluate"}) == {
        ("condense", "dataset=digits, method=mine, ipc=1, seed=0"),
        ("evaluate", "dataset=digits, protocol=hl, student=convnet, method=mine, ipc=1, seed=0"),
    }, out.stdout + out.stderr


# --- formats of other tools: MTT/DATM pairs, extra scalar entries, SRe2L/RDED folders ------


def _float_set(data: ImageData, ipc: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = _expected(data, ipc)
    return torch.from_numpy(images), torch.from_numpy(labels)


def test_pt_dict_keeps_syn_lr_and_other_scalars_as_attributes(tiny_data, tmp_path) -> None:
    images, labels = _float_set(tiny_data, 1)
    path = tmp_path / "set.pt"
    torch.save({"images": images, "labels": labels, "syn_lr": torch.tensor(0.0123),
                "temperature": 4.0, "iteration": 5000, "method": "datm"}, path)  # fmt: skip
    cset = load_external(path, tiny_data, 1)
    out = tmp_path / "set.h5"
    cset.save(out, created_by="test", seed=0)
    attrs = read_attrs(out, "condensed")
    assert attrs["syn_lr"] == pytest.approx(0.0123, rel=1e-6)
    assert attrs["soft_label_temperature"] == 4.0 and attrs["iteration"] == 5000
    assert attrs["set_method"] == "datm" and attrs["method"] == "external"  # no clobbering
    torch.save({"images": images, "labels": labels, "syn_lr": -1.0}, path)
    with pytest.raises(DataFileError, match=r"set\.pt: syn_lr is -1\.0; it must be a positive"):
        load_external(path, tiny_data, 1)


@pytest.mark.parametrize("given", ["folder", "images_file"])
def test_mtt_pair_with_hard_labels_and_learned_lr(given, tiny_data, tmp_path) -> None:
    images, labels = _float_set(tiny_data, 2)
    run = tmp_path / "logged_files" / "run1"
    run.mkdir(parents=True)
    torch.save(images, run / "images_best.pt")
    torch.save(labels, run / "labels_best.pt")
    torch.save(torch.tensor(0.02), run / "lr_best.pt")
    path = run if given == "folder" else run / "images_best.pt"
    cset = load_external(path, tiny_data, 2)
    np.testing.assert_array_equal(cset.labels, labels.numpy())
    np.testing.assert_allclose(cset.images, images.numpy())
    assert cset.extra_attrs["source_format"] == "mtt"
    assert cset.extra_attrs["syn_lr"] == pytest.approx(0.02)


def test_datm_soft_label_logits_become_probabilities_and_classes_follow_the_blocks(
    tiny_data, tmp_path
) -> None:
    images, labels = _float_set(tiny_data, 2)
    logits = torch.randn(6, 3, generator=torch.Generator().manual_seed(0)) * 3
    torch.save(images, tmp_path / "images_best.pt")
    torch.save(logits, tmp_path / "labels_best.pt")
    cset = load_external(tmp_path / "images_best.pt", tiny_data, 2)
    np.testing.assert_allclose(cset.soft_labels, torch.softmax(logits, 1).numpy(), atol=1e-6)
    assert cset.extra_attrs["soft_labels_from"] == "logits"
    arg = logits.argmax(1).numpy()
    balanced = (np.bincount(arg, minlength=3) == 2).all()
    expected = arg if balanced else np.repeat(np.arange(3), 2)  # MTT/DATM store class blocks
    np.testing.assert_array_equal(cset.labels, expected)
    assert "syn_lr" not in cset.extra_attrs  # no lr_best.pt


def test_mtt_images_without_labels_are_refused_saying_what_to_pass(tiny_data, tmp_path) -> None:
    images, _ = _float_set(tiny_data, 1)
    torch.save(images, tmp_path / "images_best.pt")
    with pytest.raises(
        DataFileError, match=r"images_best\.pt: holds one tensor; .* needs labels_best\.pt beside"
    ):
        load_external(tmp_path / "images_best.pt", tiny_data, 1)
    with pytest.raises(DataFileError, match=r"images_best\.pt: no labels_best\.pt beside it"):
        load_external(tmp_path / "images_best.pt", tiny_data, 1, fmt="mtt")


def test_sre2l_rded_new_folders_map_to_classes_by_index(tiny_data, tmp_path) -> None:
    path = tmp_path / "syn_data"
    _write_folder(path, tiny_data, 2, [f"new{c:03d}" for c in range(3)])
    cset = load_external(path, tiny_data, 2)
    images, labels = _expected(tiny_data, 2)
    np.testing.assert_array_equal(cset.labels, labels)
    np.testing.assert_allclose(cset.images, images, atol=1e-7)


def test_class_map_json_maps_any_folder_names(tiny_data, tmp_path) -> None:
    path = tmp_path / "set"
    _write_folder(path, tiny_data, 1, ["n0003", "n0001", "n0002"])  # class 0, 1, 2 in this order
    (path / "class_map.json").write_text(json.dumps({"n0003": 0, "n0001": "b", "n0002": 2}))
    cset = load_external(path, tiny_data, 1)
    np.testing.assert_allclose(cset.images, _expected(tiny_data, 1)[0], atol=1e-7)
    (path / "class_map.json").write_text(json.dumps({"n0003": 0, "n0001": "zebra", "n0002": 2}))
    with pytest.raises(DataFileError, match=r"class_map\.json: 'n0001' maps to 'zebra'"):
        load_external(path, tiny_data, 1)
    (path / "class_map.json").unlink()
    with pytest.raises(DataFileError, match=r"set/class_map\.json"):
        load_external(path, tiny_data, 1)
