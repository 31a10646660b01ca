"""Streaming data: the in-memory switch, batch reads from the dataset file, and stages that
never hold a large split as float."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench.data.datasets import (
    IN_MEMORY_ENV,
    H5Images,
    load_dataset,
    prepare_dataset,
    to_float_chw,
)
from ddbench.data.h5io import write_h5
from ddbench.training.engine import (
    ImageSource,
    accuracy,
    build_classifier,
    data_source,
    embed,
    predict,
    train,
)
from ddbench.training.protocols import resolve_protocol


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("digits") / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path


def _write_big(path: Path, n: int, side: int = 16, chans: int = 3, n_test: int = 50) -> None:
    rng = np.random.default_rng(0)
    write_h5(
        path,
        "dataset",
        {
            "train/images": rng.integers(0, 256, (n, side, side, chans), dtype=np.uint8),
            "train/labels": (np.arange(n) % 5).astype(np.int64),
            "test/images": rng.integers(0, 256, (n_test, side, side, chans), dtype=np.uint8),
            "test/labels": (np.arange(n_test) % 5).astype(np.int64),
        },
        created_by="tests.test_streaming",
        compress=False,
        attrs={
            "name": path.stem,
            "classes": json.dumps(list("abcde")),
            "mean": [0.5] * chans,
            "std": [0.25] * chans,
        },
    )


# --------------------------------------------------------------------------- the reader


def test_switch_keeps_small_data_in_memory_and_streams_above_it(digits, monkeypatch) -> None:
    data = load_dataset(digits)
    assert isinstance(data.train_images, np.ndarray) and data.in_memory("train")
    streamed = load_dataset(digits, in_memory_max_bytes=0)
    assert isinstance(streamed.train_images, H5Images) and not streamed.in_memory("test")
    assert streamed.train_images.shape == data.train_images.shape
    assert (streamed.num_classes, streamed.in_chans, streamed.image_size) == (10, 1, 8)
    monkeypatch.setenv(IN_MEMORY_ENV, "1000")  # the one switch, also from the environment
    assert not load_dataset(digits).in_memory("train")
    monkeypatch.setenv(IN_MEMORY_ENV, "lots")
    with pytest.raises(ValueError, match=IN_MEMORY_ENV):
        load_dataset(digits)


def test_streamed_reads_equal_memory_in_the_order_asked(digits) -> None:
    data = load_dataset(digits)
    lazy = load_dataset(digits, in_memory_max_bytes=0).train_images
    rng = np.random.default_rng(1)
    idx = rng.choice(len(lazy), 300, replace=False)
    idx[:3] = [7, 7, -1]  # repeats and a negative index, as NumPy allows
    np.testing.assert_array_equal(lazy[idx], data.train_images[idx])
    np.testing.assert_array_equal(lazy[10:50], data.train_images[10:50])
    np.testing.assert_array_equal(lazy[5], data.train_images[5])
    np.testing.assert_array_equal(np.asarray(lazy), data.train_images)
    with pytest.raises(IndexError):
        lazy[[len(lazy)]]


def test_sorted_blocks_make_a_batch_a_few_contiguous_reads(digits) -> None:
    lazy = load_dataset(digits, in_memory_max_bytes=0).train_images
    lazy.take(np.arange(100, 164)[::-1])  # one dense block, asked backwards
    assert lazy.reads == 1 and lazy.rows_read == 64
    lazy.reads = 0
    lazy.take([0, 1000, 2, 1001, 500])  # rows 8x8 = 64 bytes: gaps up to 512 rows coalesce
    assert lazy.reads == 1
    far = H5Images(lazy.path, lazy.name, lazy.shape, gap_bytes=0)
    far.take([0, 1, 2, 900, 901, 1300])
    assert far.reads == 3 and far.rows_read == 6


def test_iter_batches_equal_the_float_split_in_both_modes(digits) -> None:
    ref = load_dataset(digits)
    full = ref.train_float()
    idx = np.random.default_rng(2).permutation(len(full))[:200]
    for data in (ref, load_dataset(digits, in_memory_max_bytes=0)):
        got = list(data.iter_batches("train", 128))
        assert [len(x) for x, _ in got] == [128] * 10 + [len(full) - 1280]
        np.testing.assert_array_equal(np.concatenate([x for x, _ in got]), full)
        np.testing.assert_array_equal(np.concatenate([y for _, y in got]), ref.train_labels)
        sub = list(data.iter_batches("train", 64, indices=idx))
        np.testing.assert_array_equal(np.concatenate([x for x, _ in sub]), full[idx])
        np.testing.assert_array_equal(data.train_float(), full)
        np.testing.assert_array_equal(data.train_float_subset(idx), full[idx])
        np.testing.assert_array_equal(data.test_float(), ref.test_float())


def test_image_source_batches_equal_to_float_chw_bit_for_bit(digits) -> None:
    data = load_dataset(digits)
    src = data_source(data)
    idx = torch.tensor([5, 3, 900, 3])
    want = torch.from_numpy(to_float_chw(data.train_images[idx.numpy()]))
    got = src.batch(idx, torch.device("cpu"))
    assert torch.equal(got, want) and got.stride() == want.stride()
    sub = ImageSource(data.train_images, indices=[10, 20, 30])
    assert len(sub) == 3
    assert torch.equal(
        sub.batch(torch.tensor([2, 0]), torch.device("cpu")),
        torch.from_numpy(data.train_float_subset([30, 10])),
    )


def test_image_source_transform_is_applied_per_batch_on_the_float_images(digits) -> None:
    data = load_dataset(digits, in_memory_max_bytes=0)
    src = data_source(data, "test", transform=lambda x: x * 2 - 1)
    got = torch.cat([src.rows(i, i + 100, torch.device("cpu")) for i in range(0, len(src), 100)])
    assert torch.equal(got, torch.from_numpy(data.test_float() * 2 - 1))


# --------------------------------------------------------------------------- the engine


def _model(seed: int = 0):
    torch.manual_seed(seed)
    return build_classifier("convnet-d2-w8-in", 10, 1, 8, [0.5], [0.25])


@pytest.mark.parametrize(
    "spec",
    [
        {"preset": "teacher", "epochs": 1, "batch_size": 128},
        {"preset": "hl", "epochs": 1, "batch_size": 200, "augment": "dsa", "cutmix": 1.0},
        {"preset": "hl", "epochs": 1, "batch_size": 200, "augment": "rrc_flip"},
    ],
    ids=["teacher", "dsa_cutmix", "rrc"],
)
def test_training_from_a_source_is_bit_identical_to_float_tensors(digits, spec) -> None:
    """Same seed, same permutation and augmentation draws: the switch changes no result."""
    data = load_dataset(digits)
    labels = torch.from_numpy(data.train_labels)
    protocol = resolve_protocol("t", spec)
    runs = {}
    for how, images in (
        ("tensor", torch.from_numpy(data.train_float())),  # today's path
        ("memory", data_source(data)),
        ("stream", data_source(load_dataset(digits, in_memory_max_bytes=0))),
    ):
        model = _model()
        res = train(model, images, labels, protocol, seed=3, n_full=len(labels), desc=how)
        runs[how] = (res.history, model.state_dict())
    for how in ("memory", "stream"):
        assert runs[how][0] == runs["tensor"][0]
        for key, value in runs["tensor"][1].items():
            assert torch.equal(runs[how][1][key], value), (how, key)


def test_predict_embed_accuracy_over_a_source_equal_the_tensor_path(digits) -> None:
    data = load_dataset(digits)
    streamed = load_dataset(digits, in_memory_max_bytes=0)
    model = _model()
    x = torch.from_numpy(data.train_float())
    y = torch.from_numpy(data.train_labels)
    assert torch.equal(predict(model, data_source(streamed), 100), predict(model, x, 100))
    assert torch.equal(embed(model, data_source(streamed), 100), embed(model, x, 100))
    assert accuracy(model, data_source(streamed), y) == accuracy(model, x, y)


# --------------------------------------------------------------------------- memory


def test_streaming_pass_never_holds_the_split_as_float(tmp_path: Path) -> None:
    """predict over a train split larger than the switch reads batch-sized blocks only."""
    path = tmp_path / "big.h5"
    n, side, chans = 12000, 16, 3
    _write_big(path, n, side, chans)
    split_float_bytes = n * side * side * chans * 4  # 36.9 MB
    data = load_dataset(path, in_memory_max_bytes=1 << 20)
    assert not data.in_memory("train")
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(side * side * chans, 5))
    src = data_source(data)
    tracemalloc.start()
    try:
        logits = predict(model, src, batch_size=256)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    lazy = data.train_images
    assert logits.shape == (n, 5)
    assert lazy.rows_read == n and lazy.max_rows_per_read <= 256
    assert peak < split_float_bytes / 8, peak
    # the result is the one an in-memory pass gives
    ref = predict(model, torch.from_numpy(load_dataset(path).train_float()), batch_size=256)
    assert torch.equal(logits, ref)


def test_streamed_features_stage_equals_in_memory(digits, tmp_path, monkeypatch) -> None:
    """extract_features streams the split (switch at 0) and writes the same arrays."""
    from ddbench.data.h5io import open_h5
    from ddbench.stages.features import extract_features
    from ddbench.stages.teachers import make_model, save_checkpoint

    data = load_dataset(digits)
    spec = {"model": "convnet-d2-w8-in"}
    torch.manual_seed(0)
    ckpt = tmp_path / "teacher.pt"
    save_checkpoint(make_model(spec, data), spec, data, ckpt)
    outs = {}
    for how, limit in (("memory", None), ("stream", "0")):
        if limit is not None:
            monkeypatch.setenv(IN_MEMORY_ENV, limit)
        out = tmp_path / f"{how}.h5"
        extract_features(digits, ckpt, "convnet", out, device="cpu")
        with open_h5(out, "features") as f:
            outs[how] = (f["features"][()], f["logits"][()])
    np.testing.assert_array_equal(outs["stream"][0], outs["memory"][0])
    np.testing.assert_array_equal(outs["stream"][1], outs["memory"][1])


def test_streamed_teacher_equals_in_memory(digits, tmp_path, monkeypatch) -> None:
    """train_teacher reads the split per batch; streaming it changes no weight or accuracy."""
    from ddbench.stages.teachers import train_teacher

    spec = {"model": "convnet-d2-w8-in", "epochs": 1, "batch_size": 128, "lr": 0.05}
    runs = []
    for how, limit in (("memory", None), ("stream", "0")):
        if limit is not None:
            monkeypatch.setenv(IN_MEMORY_ENV, limit)
        pt, info = tmp_path / f"{how}.pt", tmp_path / f"{how}.json"
        runs.append(train_teacher(digits, "t", spec, pt, info, device="cpu", threads=1))
    assert runs[0]["weights_sha256"] == runs[1]["weights_sha256"]
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"]
