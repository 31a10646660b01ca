"""Tests for ddbench.workflow.resources: job memory sized from the dataset."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from ddbench.data.datasets import prepare_dataset
from ddbench.workflow import resources as R

RULES = ["prepare_dataset", *R.RULES]


def test_known_sources_are_sized_without_reading_them():
    assert R.estimate_size({"kind": "cifar100"}) == R.DatasetSize(50000, 10000, 32, 32, 3, 100)
    digits = R.estimate_size({"kind": "digits"})
    assert (digits.n_train + digits.n_test, digits.image_bytes) == (1797, 64)
    capped = R.estimate_size({"kind": "fashion_mnist", "max_train_per_class": 100})
    assert capped.n_train == 1000 and capped.n_test == 10000


def test_image_folder_estimate_is_imagenet_sized_unless_the_config_says_less():
    full = R.estimate_size({"kind": "imagefolder", "image_size": 64})
    assert (full.n_train, full.classes, full.image_bytes) == (1_300_000, 1000, 64 * 64 * 3)
    small = R.estimate_size(
        {
            "kind": "imagefolder",
            "image_size": 32,
            "channels": 1,
            "classes": ["a", "b"],
            "max_train_per_class": 5,
        }
    )
    assert (small.n_train, small.n_test, small.image_bytes, small.classes) == (10, 100, 1024, 2)


def test_memory_grows_with_pixels_classes_and_batch():
    small = R.DatasetSize(1000, 100, 32, 32, 3, 10)
    for rule in RULES:
        base = R.memory_mb(rule, small, 64)
        assert base % 100 == 0 and base >= 500, rule
        assert R.memory_mb(rule, small, 64, attempt=3) == 3 * base
        more = R.DatasetSize(100_000, 10_000, 32, 32, 3, 10)
        assert R.memory_mb(rule, more, 64) >= base, rule
    wide = R.DatasetSize(100_000, 100, 32, 32, 3, 1000)
    narrow = R.DatasetSize(100_000, 100, 32, 32, 3, 10)
    assert R.memory_mb("compute_scores", wide) > R.memory_mb("compute_scores", narrow)
    assert R.memory_mb("train_teacher", small, 1024) > R.memory_mb("train_teacher", small, 32)


def test_held_splits_count_until_the_in_memory_switch(monkeypatch):
    size = R.DatasetSize(50_000, 10_000, 32, 32, 3, 10)  # 146 MiB of training pixels
    held = R.memory_mb("train_teacher", size, cap=1 << 30)
    streamed = R.memory_mb("train_teacher", size, cap=1 << 20)
    # split_r and test_r (6 each) x the held uint8 bytes, with the margin; rounded to 100 MB
    expected = 6 * (50_000 + 10_000) * 3072 / R.MIB * R.MARGIN
    assert held - streamed == pytest.approx(expected, abs=100)
    monkeypatch.setenv(R.IN_MEMORY_ENV, str(1 << 20))
    assert R.memory_mb("train_teacher", size) == streamed


def test_formula_value_by_hand():
    size = R.DatasetSize(2000, 500, 32, 32, 3, 100)
    px = 3072
    grows = 6 * 2000 * px + 6 * 500 * px + 64 * 2000 + 64 * 256 * px * 4
    assert R.memory_mb("train_teacher", size, 256) == -(-1.25 * (1000 + grows / R.MIB) // 100) * 100


def test_prepare_dataset_by_source_kind():
    size = R.DatasetSize(1_300_000, 50_000, 64, 64, 3, 1000)
    folder = R.memory_mb("prepare_dataset", size, spec={"kind": "imagefolder"}, workers=8)
    in_memory = R.memory_mb("prepare_dataset", size, spec={"kind": "cifar10"}, cap=1 << 40)
    assert folder < 3000 < in_memory  # chunked decoding does not hold the split


def test_config_batch_is_the_largest_batch_size():
    config = {
        "teachers": {"t": {"batch_size": 128}},
        "protocols": {"hl": {"batch_size": 512}, "sl": {}},
        "priors": {},
    }
    assert R.config_batch(config) == 512
    assert R.config_batch({}) == R.DEFAULT_BATCH


def test_snakemake_callable_reads_the_prepared_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = {"datasets": {"digits": {"kind": "digits"}}, "teachers": {"t": {"batch_size": 64}}}
    value = R.dataset_mem_mb(config, "train_teacher")
    wildcards = SimpleNamespace(dataset="digits")
    estimated = value(wildcards, threads=1, attempt=1)
    prepare_dataset("digits", {"kind": "digits"}, "resources/datasets/digits.h5")
    size = R.dataset_size({"kind": "digits"}, "resources/datasets/digits.h5")
    assert (size.n_train, size.n_test, size.image_bytes, size.classes) == (1347, 450, 64, 10)
    assert value(wildcards, threads=1, attempt=2) == 2 * R.memory_mb("train_teacher", size, 64)
    assert estimated == R.memory_mb("train_teacher", R.estimate_size({"kind": "digits"}), 64)
    prep = R.dataset_mem_mb(config, "prepare_dataset")
    assert prep(wildcards, threads=4, attempt=1) > 0  # never reads its own output


def test_memory_formula_and_reader_share_the_in_memory_switch(monkeypatch):
    """The formula counts a split as held exactly when the reader holds it."""
    from ddbench.data import datasets
    from ddbench.workflow import resources

    assert resources.IN_MEMORY_ENV == datasets.IN_MEMORY_ENV
    for text, expected in (("", 512 << 20), ("0", 0), ("1e9", 10**9)):
        monkeypatch.setenv(datasets.IN_MEMORY_ENV, text)
        assert resources.in_memory_max_bytes() == datasets.in_memory_max_bytes() == expected
    monkeypatch.setenv(datasets.IN_MEMORY_ENV, "lots")
    for read in (resources.in_memory_max_bytes, datasets.in_memory_max_bytes):
        with pytest.raises(ValueError, match="DDBENCH_IN_MEMORY_MAX_BYTES='lots'"):
            read()
