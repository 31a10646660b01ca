"""IDM (`idm`): partition-and-expansion, the model queue, the class loss and the method."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddbench.config import ConfigError, validate_schema
from ddbench.methods import Context, get_method_class, list_methods
from ddbench.methods.idm import ModelQueue, class_idm_loss, partition_expand, queue_model
from ddbench.methods.synthesis import _real_init
from ddbench.testing import check_method, tiny_dataset
from ddbench.training.augment import DSA

MODEL = "convnet-d1-w8-in"
TINY = {  # a run of a second or two on 3 classes of 12 8x8 images
    "model": MODEL,
    "iterations": 12,
    "batch_real": 8,
    "net_batch": 16,
    "num_models": 2,
    "net_max_steps": 5,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one intra-op thread is fastest, and robust on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _data(image_size=8):
    return tiny_dataset(num_classes=3, per_class=12, image_size=image_size)


def _run(data, ipc=2, seed=0, **params):
    method = get_method_class("idm")(**params)
    return method, method.condense(Context(data=data, dataset=data.name), ipc, seed)


# ------------------------------------------------------------------ registration and schema


def test_idm_is_registered_and_its_schema_checks_parameters():
    assert "idm" in list_methods()
    cls = get_method_class("idm")
    filled = validate_schema({}, copy.deepcopy(cls.param_schema), prefix="methods.idm")
    assert filled["factor"] == 2 and filled["ce_weight"] == 0.5 and filled["num_models"] == 5
    for bad, where in (
        ({"bogus": 1}, "bogus"),
        ({"factor": 0}, "factor"),
        ({"factor": -2}, "factor"),
        ({"num_models": 0}, "num_models"),
        ({"ce_weight": -0.1}, "ce_weight"),
        ({"net_train_steps": -1}, "net_train_steps"),
    ):
        with pytest.raises(ConfigError, match=where):
            validate_schema(bad, copy.deepcopy(cls.param_schema), prefix="methods.idm")
    cls(model=MODEL).check_params()
    with pytest.raises(ValueError, match="model: .*nonsense"):
        cls(model="nonsense-d3").check_params()


def test_builtin_contract_holds():
    passed = check_method("idm", dict(TINY, iterations=2), ipcs=(1,), seeds=(0,))
    assert {"same seed, same set", "save/load round trip", "valid set"} <= set(passed)


# ------------------------------------------------------------------ partition and expansion


def test_partition_expand_upsamples_each_quadrant():
    img = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4) / 16
    img[:, :, :2, :2] = 0.3  # a constant top-left quadrant
    out = partition_expand(img, 2)
    assert out.shape == (4, 1, 4, 4)
    quadrants = [img[:, :, :2, :2], img[:, :, :2, 2:], img[:, :, 2:, :2], img[:, :, 2:, 2:]]
    for part, q in zip(out, quadrants, strict=True):
        want = F.interpolate(q, size=(4, 4), mode="bilinear", align_corners=False)[0]
        torch.testing.assert_close(part, want, rtol=0, atol=0)
    torch.testing.assert_close(out[0], torch.full((1, 4, 4), 0.3), rtol=0, atol=1e-7)
    # by hand: bottom-right quadrant [[a, b], [c, d]]; output pixel (1, 1) samples (0.25, 0.25)
    (a, b), (c, d) = img[0, 0, 2:, 2:].tolist()
    want = 0.75 * 0.75 * a + 0.75 * 0.25 * b + 0.25 * 0.75 * c + 0.25 * 0.25 * d
    assert float(out[3, 0, 1, 1]) == pytest.approx(want, abs=1e-6)
    assert float(out[3, 0, 0, 0]) == pytest.approx(a, abs=1e-6)  # the border clamps


def test_partition_expand_factor_one_odd_sizes_and_errors():
    x = torch.rand(3, 2, 5, 5, requires_grad=True)
    assert partition_expand(x, 1) is x
    out = partition_expand(x, 2)  # 5 = 2 + 3: parts of 2 and 3 pixels
    assert out.shape == (12, 2, 5, 5)
    want = F.interpolate(x[1:2, :, 2:, :2], size=(5, 5), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out[4 + 2 : 4 + 3], want)  # image 1, bottom-left part
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and (x.grad != 0).any()
    with pytest.raises(ValueError, match="factor 6 .*5x5"):
        partition_expand(x, 6)
    with pytest.raises(ValueError, match="factor 7 .*6x6"):
        _run(_data(6), model=MODEL, iterations=1, factor=7)


# ------------------------------------------------------------------ the model queue


def _queue(num_models=2, max_steps=2, seed=0):
    data = _data()
    return ModelQueue(
        lambda slot, gen: queue_model(MODEL, data, seed, slot, gen),
        num_models,
        lr=0.05,
        momentum=0.9,
        max_steps=max_steps,
    ), data


def _flat(net):
    return torch.cat([q.detach().flatten() for q in net.parameters()])


def test_model_queue_retires_a_network_after_max_steps():
    queue, data = _queue(max_steps=2)
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(6, 1, 8, 8, generator=g), torch.tensor([0, 1, 2, 0, 1, 2])
    fresh = [_flat(m) for m in queue.models]
    assert not torch.equal(fresh[0], fresh[1])  # slots are initialised differently
    for _ in range(2):  # max_steps steps: trained, kept
        assert queue.advance(lambda: (x, y), 1) == []
    assert queue.steps == [2, 2] and queue.generations == [0, 0]
    trained = [_flat(m) for m in queue.models]
    assert not torch.equal(trained[0], fresh[0])
    assert queue.advance(lambda: (x, y), 1) == [0, 1]  # max_steps + 1: re-initialised
    assert queue.steps == [0, 0] and queue.generations == [1, 1]
    for k, m in enumerate(queue.models):
        new = _flat(m)
        assert not torch.equal(new, trained[k]) and not torch.equal(new, fresh[k])
        assert torch.equal(new, _flat(queue_model(MODEL, data, 0, k, 1)))  # seeded
    assert torch.equal(_flat(queue_model(MODEL, data, 0, 1, 0)), fresh[1])


def test_model_queue_stagger_spreads_training_stages():
    queue, _ = _queue(num_models=5, max_steps=9)
    assert [queue.head_start(k) for k in range(5)] == [0, 2, 4, 6, 8]
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    queue.stagger(lambda: (x, y))
    assert queue.steps == [0, 2, 4, 6, 8]
    retired = [queue.advance(lambda: (x, y), 1) for _ in range(4)]
    assert retired == [[], [4], [], [3]]  # one at a time, every 2 steps, the oldest first
    assert queue.steps == [4, 6, 8, 0, 2] and queue.generations == [0, 0, 0, 1, 1]


# ------------------------------------------------------------------ the loss and the method


def test_class_loss_reduces_to_dm_for_a_fixed_network():
    torch.manual_seed(0)
    net = queue_model(MODEL, _data(), 0, 0, 0)
    for q in net.parameters():
        q.requires_grad_(False)
    x_real = torch.rand(10, 1, 8, 8)
    x_syn = torch.rand(3, 1, 8, 8, requires_grad=True)
    dsa = DSA()
    shared = dsa.sample_params(1, torch.Generator().manual_seed(3))
    match, ce = class_idm_loss(
        net, x_real, x_syn, 1, factor=1, ce_weight=0.0, dsa=dsa, dsa_params=shared
    )
    (g_idm,) = torch.autograd.grad(match, x_syn)
    # DM by hand: the same siamese draw on both batches, mean embeddings, squared distance
    e_real = net.features(dsa.apply(x_real, shared)).mean(0)
    e_syn = net.features(dsa.apply(x_syn, shared)).mean(0)
    dm = ((e_real - e_syn) ** 2).sum()
    (g_dm,) = torch.autograd.grad(dm, x_syn)
    assert float(ce) == 0.0
    torch.testing.assert_close(match, dm)
    torch.testing.assert_close(g_idm, g_dm)
    # factor 2 and the CE term: the expanded images, labelled with the class
    match2, ce2 = class_idm_loss(net, x_real, x_syn, 1, factor=2, ce_weight=0.5)
    expanded = partition_expand(x_syn, 2)
    want_ce = F.cross_entropy(net(expanded), torch.full((12,), 1))
    want_match = ((net.features(x_real).mean(0) - net.features(expanded).mean(0)) ** 2).sum()
    torch.testing.assert_close(ce2, want_ce)
    torch.testing.assert_close(match2, want_match)


def test_idm_without_its_additions_is_dm_on_a_fixed_network():
    data = _data()
    params = dict(TINY, iterations=2, num_models=1, net_train_steps=0, factor=1, ce_weight=0.0)
    params.update(dsa=False, batch_real=12)  # the whole class: the real mean is order-free
    method, _ = _run(data, ipc=2, seed=4, **params)
    net = queue_model(MODEL, data, 4, 0, 0)  # slot 0, never trained nor replaced
    init, labels = _real_init(Context(data=data, dataset=data.name), 2, np.random.default_rng(4))
    x_all = torch.from_numpy(data.train_float())
    dm = 0.0
    with torch.no_grad():
        for c, idx in enumerate(data.class_indices()):
            e_real = net.features(x_all[idx]).mean(0)
            e_syn = net.features(torch.from_numpy(init[labels == c])).mean(0)
            dm += float(((e_real - e_syn) ** 2).sum())
    assert method.losses_[0] == pytest.approx(dm, rel=1e-5)
    assert method.ce_losses_ == [0.0, 0.0] and method.retired_ == 0


def test_idm_condenses_a_valid_set_lowering_its_loss_deterministically():
    data = _data()
    method, cs = _run(data, ipc=2, seed=0, **TINY)
    assert cs.images.shape == (6, 1, 8, 8) and cs.images.dtype == np.float32
    np.testing.assert_array_equal(cs.labels, np.repeat(np.arange(3), 2))
    assert np.isfinite(cs.images).all() and cs.images.min() >= 0 and cs.images.max() <= 1
    cs.validate(3, (1, 8, 8))
    assert cs.kind == "idm" and cs.soft_labels is None and cs.source_indices is None
    losses = np.asarray(method.losses_)
    assert len(losses) == TINY["iterations"] and np.isfinite(losses).all()
    np.testing.assert_allclose(
        losses, np.asarray(method.match_losses_) + 0.5 * np.asarray(method.ce_losses_), rtol=1e-5
    )
    assert np.mean(method.match_losses_[-3:]) < 0.8 * np.mean(method.match_losses_[:3])
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    assert method.retired_ > 0  # networks were replaced during the run
    assert cs.extra_attrs == {"decode_factor": 2}  # evaluation decodes the 2x2 parts
    _, again = _run(data, ipc=2, seed=0, **TINY)
    np.testing.assert_array_equal(again.images, cs.images)
    _, other = _run(data, ipc=2, seed=1, **TINY)
    assert not np.array_equal(other.images, cs.images)


def test_decode_set_expands_images_labels_and_soft_labels():
    from ddbench.data.h5io import DataFileError
    from ddbench.training.evaluate import decode_set

    images = torch.rand(3, 1, 4, 4)
    labels = torch.tensor([0, 2, 1])
    soft = torch.softmax(torch.rand(3, 3), 1)
    same = decode_set(images, labels, soft, {}, "x")
    assert same[0] is images and same[1] is labels and same[2] is soft and same[3] == {}
    x, y, q, notes = decode_set(images, labels, soft, {"decode_factor": 2}, "x")
    assert x.shape == (12, 1, 4, 4) and notes == {"decode_factor": 2, "stored_images": 3}
    torch.testing.assert_close(x, partition_expand(images, 2))
    # image 1's four parts are rows 4..7 and keep its label and soft label
    torch.testing.assert_close(
        x[5], F.interpolate(images[1:2, :, 0:2, 2:4], size=(4, 4), mode="bilinear")[0]
    )
    assert y.tolist() == [0] * 4 + [2] * 4 + [1] * 4
    torch.testing.assert_close(q[4:8], soft[1].expand(4, 3))
    for bad in (0, 1.5, "two"):
        with pytest.raises(DataFileError, match="decode_factor"):
            decode_set(images, labels, None, {"decode_factor": bad}, "set.h5")


def test_evaluation_trains_on_the_decoded_images(tmp_path):
    """A set recording decode_factor 2 is trained on 4x its stored images, labels kept."""
    from ddbench.data.datasets import load_dataset, prepare_dataset
    from ddbench.training.evaluate import evaluate_set
    from ddbench.training.protocols import resolve_protocol

    path = tmp_path / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    data = load_dataset(path)
    base = get_method_class("random")().condense(Context(data=data, dataset="digits"), 2, 0)
    base.method = "random"
    plain, decoded = tmp_path / "plain.h5", tmp_path / "decoded.h5"
    base.save(plain, created_by="test", seed=0)
    base.extra_attrs = {"decode_factor": 2}
    base.save(decoded, created_by="test", seed=0)
    protocol = resolve_protocol("hl", {"preset": "hl", "epochs": 2, "batch_size": 8})
    out = [
        evaluate_set(
            path,
            h5,
            protocol,
            "convnet",
            {"model": "convnet-d1-w8-in"},
            0,
            [],
            tmp_path / f"{h5.stem}.json",
            device="cpu",
            threads=1,
        )  # fmt: skip
        for h5 in (plain, decoded)
    ]
    assert out[0]["n_train"] == 20 and "decode_factor" not in out[0]
    assert out[1]["n_train"] == 80 and out[1]["decode_factor"] == 2
    assert out[1]["stored_images"] == 20
    assert (out[0]["steps"], out[1]["steps"]) == (6, 20)  # 2 epochs: ceil(20 / 8), 80 / 8


def _decoded_pair(tmp_path, data_path, data):
    """(set recording decode_factor 2, the same set stored already decoded) on digits, saved
    at their workflow paths (the TM-loss target checks its cell against them)."""
    from ddbench.methods.base import CondensedSet
    from ddbench.workflow import target_path

    base = get_method_class("random")().condense(Context(data=data, dataset="digits"), 2, 0)
    base.method = "random"
    decoded_path = tmp_path / target_path("condensed", dataset="digits", method="m", ipc=2, seed=0)
    plain_path = tmp_path / target_path("condensed", dataset="digits", method="m", ipc=8, seed=0)
    images = partition_expand(torch.from_numpy(base.images), 2).numpy()
    plain = CondensedSet(
        images=np.ascontiguousarray(images),
        labels=np.repeat(base.labels, 4),
        method="m",
        kind="random",
        params={},
        ipc=8,
        dataset="digits",
    )
    base.method = "m"
    base.extra_attrs = {"decode_factor": 2}
    for cs, path in ((base, decoded_path), (plain, plain_path)):
        path.parent.mkdir(parents=True, exist_ok=True)
        cs.save(path, created_by="test", seed=0)
    return decoded_path, plain_path


@pytest.fixture(scope="module")
def digits_file(tmp_path_factory):
    from ddbench.data.datasets import load_dataset, prepare_dataset

    path = tmp_path_factory.mktemp("digits") / "digits.h5"
    prepare_dataset("digits", {"kind": "digits"}, path)
    return path, load_dataset(path)


def test_tm_loss_matches_the_decoded_images(tmp_path, digits_file):
    """The TM loss of a set recording decode_factor 2 is that of its decoded images stored
    plainly (the images its students train on), not of the stored mosaics."""
    from ddbench.analysis import tm_loss as tm
    from ddbench.stages.experts import build_experts
    from ddbench.workflow import target_path

    path, data = digits_file
    experts = {"conv": tmp_path / "experts" / "conv"}
    spec = {"model": "convnet-d1-w4-none", "n_experts": 1, "epochs": 2, "batch_size": 64}
    build_experts(data, "conv", {**spec, "lr": 0.05, "dsa": False}, experts["conv"])
    decoded, plain = _decoded_pair(tmp_path, path, data)
    run = {"start_epochs": [0], "syn_steps": 3, "expert_epochs": 1, "batch": 16}
    out = {
        ipc: tmp_path / target_path("tm_loss", dataset="digits", method="m", ipc=ipc, seed=0)
        for ipc in (2, 8)
    }
    got = tm.compute_tm_loss(data, decoded, experts, out[2], spec=run, seed=0)
    want = tm.compute_tm_loss(data, plain, experts, out[8], spec=run, seed=0)
    assert got["decode_factor"] == 2 and got["n_matched_images"] == 80 == want["n_matched_images"]
    assert got["n_condensed"] == 20
    assert [r["loss"] for r in got["losses"]] == [r["loss"] for r in want["losses"]]


def test_quality_judges_the_decoded_images(tmp_path, digits_file):
    from ddbench.analysis.quality import compute_quality
    from ddbench.stages.features import extract_features
    from ddbench.stages.teachers import train_teacher

    path, data = digits_file
    teacher = tmp_path / "teacher.pt"
    spec = {"model": "convnet-d1-w8-in", "epochs": 1}
    train_teacher(path, "t", spec, teacher, tmp_path / "teacher.json", device="cpu", threads=1)
    feats = tmp_path / "features.h5"
    extract_features(path, teacher, "t", feats, device="cpu", threads=1)
    decoded, plain = _decoded_pair(tmp_path, path, data)
    got, want = (
        compute_quality(path, feats, teacher, cs, "t", tmp_path / f"{n}.json", tmp_path / f"{n}.h5")
        for n, cs in (("decoded", decoded), ("plain", plain))
    )
    assert got["decode_factor"] == 2 and got["n_judged_images"] == 80 and got["n_condensed"] == 20
    for key in ("precision", "recall", "density", "coverage", "mmd2"):
        assert got[key] == pytest.approx(want[key], abs=1e-6), key
