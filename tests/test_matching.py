"""Matching-based distillation (dc, dsa, mtt, datm) and the expert-trajectories stage."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ddbench.config import ConfigError, load_config, validate_config
from ddbench.data.h5io import DataFileError
from ddbench.methods import Context, get_method_class
from ddbench.methods.matching import (
    class_gradient_loss,
    gradient_distance,
    paper_loops,
    trajectory_matching_loss,
)
from ddbench.stages.experts import build_experts, expert_file, load_experts
from ddbench.testing import check_method, tiny_dataset
from ddbench.training import optim
from ddbench.training.engine import build_classifier
from ddbench.workflow import Plan, target_path

ROOT = Path(__file__).resolve().parents[1]
EXPERT_SPEC = {
    "model": "convnet-d2-w8-in",
    "n_experts": 2,
    "epochs": 3,
    "batch_size": 12,
    "lr": 0.05,
    "dsa": False,
}
TM = {"experts": "ex", "iterations": 3, "syn_steps": 3, "expert_epochs": 1, "lr_img": 10.0}


def _data():
    return tiny_dataset(num_classes=3, per_class=12, image_size=8)


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("experts") / "ex"
    build_experts(_data(), "ex", EXPERT_SPEC, folder)
    return folder


def _ctx(data, folder):
    ctx = Context(data=data, dataset=data.name)
    ctx.extras["experts_path"] = str(folder)
    return ctx


# ------------------------------------------------------------------ gradient matching


def _net(seed=0):
    torch.manual_seed(seed)
    return build_classifier("convnet-d2-w8-in", 3, 1, 8, [0.5], [0.25])


def test_gradient_distance_is_zero_for_identical_batches():
    net = _net()
    x = torch.rand(6, 1, 8, 8)
    same = float(class_gradient_loss(net, x, x.clone(), 1).detach())
    other = float(class_gradient_loss(net, x, torch.rand(6, 1, 8, 8), 1).detach())
    # zero up to the 1e-6 added to each norm product (rows with tiny gradients feel it)
    assert same < 1e-2 and same < other / 100
    g = [torch.randn(4, 3, 3, 3), torch.randn(4), torch.randn(3, 5)]
    assert float(gradient_distance(g, g)) < 1e-5
    # rank-1 tensors (biases, norm scales) are not compared
    h = [g[0], torch.randn(4), g[2]]
    assert float(gradient_distance(g, h)) < 1e-5
    # opposite gradients: 2 per output unit
    neg = [-t for t in g]
    assert float(gradient_distance(g, neg)) == pytest.approx(2 * (4 + 3), rel=1e-4)


def test_gradient_matching_loss_decreases_over_image_steps():
    net = _net(1)
    gen = torch.Generator().manual_seed(0)
    x_real = torch.rand(16, 1, 8, 8, generator=gen)
    syn = torch.rand(2, 1, 8, 8, generator=gen).requires_grad_(True)
    opt = optim.SGD([syn], lr=0.1, momentum=0.5)
    losses = []
    for _ in range(8):
        loss = class_gradient_loss(net, x_real, syn, 0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("kind", ["dc", "dsa"])
def test_dc_dsa_condense_valid_and_deterministic(kind):
    data = _data()
    params = {
        "model": "convnet-d2-w8-in",
        "iterations": 1,
        "outer_loop": 2,
        "inner_loop": 1,
        "batch_real": 8,
    }
    a = get_method_class(kind)(**params).condense(Context(data=data, dataset="tiny"), 2, 0)
    b = get_method_class(kind)(**params).condense(Context(data=data, dataset="tiny"), 2, 0)
    a.validate(3, (1, 8, 8))
    assert np.array_equal(a.images, b.images)
    assert a.soft_labels is None and a.source_indices is None


def test_paper_loops():
    assert paper_loops(1) == (1, 1)
    assert paper_loops(10) == (10, 50)
    assert paper_loops(5) == (10, 50)
    assert paper_loops(50) == (50, 10) == paper_loops(100)


# ------------------------------------------------------------------ trajectory matching


def test_one_step_trajectory_loss_matches_hand_computation():
    """Linear model logits = W x (3 classes, 4 features), one SGD step of CE."""
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4))
    w_star = rng.normal(size=(3, 4))
    x = rng.normal(size=(5, 4))
    y = np.array([0, 1, 2, 1, 0])
    lr = 0.3
    # by hand: grad of mean CE w.r.t. W is (softmax(XWᵀ) − onehot)ᵀ X / B
    z = x @ w0.T
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    grad = (p - np.eye(3)[y]).T @ x / len(x)
    w1 = w0 - lr * grad
    expected = ((w1 - w_star) ** 2).sum() / ((w0 - w_star) ** 2).sum()
    # d loss / d lr = −2 <w1 − w*, grad> / ||w0 − w*||²
    expected_dlr = -2 * ((w1 - w_star) * grad).sum() / ((w0 - w_star) ** 2).sum()

    def forward(flat, xb):
        return xb @ flat.view(3, 4).T

    t = lambda a: torch.tensor(a, dtype=torch.float64)  # noqa: E731
    syn_lr = torch.tensor(lr, dtype=torch.float64, requires_grad=True)
    loss = trajectory_matching_loss(
        forward, t(w0).reshape(-1), t(w_star).reshape(-1), [(t(x), torch.tensor(y))], syn_lr
    )
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-10)
    loss.backward()
    assert float(syn_lr.grad) == pytest.approx(expected_dlr, rel=1e-8)


def test_experts_folder_layout_and_init(experts):
    ex = load_experts(experts, dataset="tiny")
    assert ex.n_experts == 2 and ex.epochs == 3
    info = json.loads((experts / "experts.json").read_text())
    assert info["format"] == "ddbench.experts/1" and info["dataset"] == "tiny"
    assert ex.trajectory(0).shape == (4, info["n_params"])
    assert ex.trajectory(0).dtype == np.float32
    np.testing.assert_array_equal(ex.trajectory(0)[2], ex.params(0, 2))
    assert not np.array_equal(ex.params(0, 0), ex.params(1, 0))  # own seeds
    assert not np.array_equal(ex.params(0, 0), ex.params(0, 3))  # trained
    model = ex.make_model(_data())
    ex.load_into(model, ex.params(0, 2))
    flat = torch.cat([q.detach().reshape(-1) for q in model.parameters()]).numpy()
    np.testing.assert_array_equal(flat, ex.params(0, 2))
    assert not list(experts.parent.glob(".*.tmp")), "temporary folder left behind"


def test_unflatten_views_keep_the_gradient_of_every_parameter(experts):
    """The functional forward of the TM loss runs on unflatten's views of one flat vector:
    the gradient w.r.t. the flat vector must equal the model's own per-parameter gradients,
    concatenated in parameter order."""
    ex = load_experts(experts, dataset="tiny")
    data = _data()
    model = ex.make_model(data)
    ex.load_into(model, ex.params(0, 1))
    from ddbench.data.datasets import to_float_chw

    x = torch.as_tensor(to_float_chw(np.asarray(data.train_images[:6])))
    y = torch.as_tensor(data.train_labels[:6]).long()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    want = torch.cat([q.grad.reshape(-1) for q in model.parameters()])

    flat = torch.from_numpy(ex.params(0, 1)).requires_grad_(True)
    views = ex.unflatten(flat)
    assert list(views) == [n for n, _ in model.named_parameters()]
    out = torch.func.functional_call(model, views, (x,))
    (got,) = torch.autograd.grad(torch.nn.functional.cross_entropy(out, y), flat)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="flat vector has"):
        ex.unflatten(flat[:-1])


def test_experts_are_reproducible(experts, tmp_path):
    again = tmp_path / "ex"
    build_experts(_data(), "ex", EXPERT_SPEC, again)
    a, b = load_experts(experts), load_experts(again)
    for i in range(a.n_experts):
        np.testing.assert_array_equal(a.trajectory(i), b.trajectory(i))


def test_corrupt_or_missing_expert_files_give_clear_errors(experts, tmp_path):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(experts, bad)
    (bad / expert_file(1)).write_bytes(b"not an hdf5 file")
    with pytest.raises(DataFileError, match="expert_1.h5"):
        load_experts(bad)
    (bad / expert_file(1)).unlink()
    with pytest.raises(DataFileError, match="expert_1.h5.*does not exist"):
        load_experts(bad)
    (bad / "experts.json").write_text("{trunc")
    with pytest.raises(DataFileError, match="experts.json is not valid JSON"):
        load_experts(bad)
    with pytest.raises(DataFileError, match="does not exist"):
        load_experts(tmp_path / "nowhere")
    with pytest.raises(DataFileError, match="trained on dataset 'tiny'"):
        load_experts(experts, dataset="other")


def test_zca_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="zca"):
        build_experts(_data(), "ex", {**EXPERT_SPEC, "zca": True}, tmp_path / "ex")


@pytest.mark.parametrize("kind", ["mtt", "datm"])
def test_tm_condense_gives_valid_sets(kind, experts):
    data = _data()
    method = get_method_class(kind)(**TM)
    cset = method.condense(_ctx(data, experts), 2, 0)
    cset.validate(3, (1, 8, 8))
    assert cset.extra_attrs["syn_lr"] > 0
    assert len(method.losses_) == 3 and all(np.isfinite(method.losses_))
    if kind == "datm":
        assert cset.soft_labels.shape == (6, 3)
        np.testing.assert_allclose(cset.soft_labels.sum(1), 1, atol=1e-5)
    else:
        assert cset.soft_labels is None


@pytest.mark.parametrize("kind", ["mtt", "datm"])
def test_tm_method_contract(kind, experts):
    """ddbench.testing's conformance checks (determinism, save/load round trip, ...)."""
    passed = check_method(
        kind,
        {**TM, "iterations": 1, "syn_steps": 2},
        data=_data(),
        ipcs=(1, 2),
        seeds=(0,),
        make_context=lambda data, ipc, seed: _ctx(data, experts),
    )
    assert "save/load round trip" in passed


def test_synthetic_lr_stays_positive(experts):
    # a huge step on the learning rate drives it down: the clamp keeps it at the floor
    method = get_method_class("mtt")(**{**TM, "iterations": 4, "lr_lr": 10.0, "min_syn_lr": 1e-4})
    cset = method.condense(_ctx(_data(), experts), 1, 0)
    floor = float(np.float32(1e-4))  # the learning rate is a float32 tensor
    assert min(method.syn_lrs_) >= floor > 0
    assert cset.extra_attrs["syn_lr"] >= floor


def test_syn_lr_is_saved_with_the_set(experts, tmp_path):
    from ddbench.data.h5io import read_attrs

    cset = get_method_class("mtt")(**TM).condense(_ctx(_data(), experts), 1, 0)
    cset.save(tmp_path / "s.h5", created_by="test", seed=0)
    assert read_attrs(tmp_path / "s.h5", "condensed")["syn_lr"] == pytest.approx(
        cset.extra_attrs["syn_lr"]
    )


def test_unrolled_memory_guard_names_the_keys(experts):
    with pytest.raises(ConfigError, match="syn_steps.*max_unrolled_images"):
        get_method_class("mtt")(**{**TM, "max_unrolled_images": 5}).condense(
            _ctx(_data(), experts), 2, 0
        )
    with pytest.raises(ValueError, match="^syn_steps: "):
        get_method_class("mtt")(**{**TM, "batch_syn": 100, "syn_steps": 300}).check_params()


def test_expert_epochs_beyond_the_trajectories_is_refused(experts):
    with pytest.raises(ConfigError, match="expert_epochs"):
        get_method_class("mtt")(**{**TM, "expert_epochs": 5}).condense(_ctx(_data(), experts), 1, 0)


def test_datm_start_window_moves_with_ipc():
    m = get_method_class("datm")(experts="ex")
    p = {
        "expert_epochs": 2,
        "start_epochs": m.param_schema["properties"]["start_epochs"]["default"],
    }
    assert m.start_range(p, 1, 50) == (0, 4)
    assert m.start_range(p, 10, 50) == (0, 20)
    assert m.start_range(p, 50, 50) == (10, 30)
    assert m.start_range(p, 1000, 50) == (20, 40)
    assert m.start_range(p, 50, 12) == (10, 10)  # capped at epochs − expert_epochs
    with pytest.raises(ValueError, match="start_epochs"):
        get_method_class("datm")(
            experts="ex",
            start_epochs=[{"ipc": 10, "min": 0, "max": 4}, {"ipc": 1, "min": 0, "max": 2}],
        ).check_params()


def test_tm_without_experts_input_is_a_clear_error():
    with pytest.raises(ConfigError, match="experts_path"):
        get_method_class("mtt")(**TM).condense(Context(data=_data(), dataset="tiny"), 1, 0)


# ------------------------------------------------------------------ workflow


def test_experts_are_shared_by_every_ipc_and_seed():
    config = validate_config(load_config(ROOT / "config/smoke.yaml"), check_sources=False)
    plan = Plan(config)
    Wc = type("W", (), {})
    paths = {}
    for dataset, method, ipc, seed in plan.condensed_cells():
        if method not in ("mtt", "datm"):
            continue
        w = Wc()
        w.dataset, w.method, w.ipc, w.seed = dataset, method, str(ipc), str(seed)
        paths.setdefault(plan.method_inputs(w)["experts"], set()).add(ipc)
    want = target_path("experts", dataset="digits", name="convnet")
    assert paths == {want: set(config["ipcs"])} and len(config["ipcs"]) > 1
    assert "{" not in want and "ipc" not in want
    # the recorded dry run: one train_experts job however many IPCs read it
    lines = gzip.decompress((ROOT / "tests/golden/dag/smoke.txt.gz").read_bytes()).decode()
    jobs = [line for line in lines.splitlines() if line.startswith("train_experts")]
    assert len(jobs) == 1 and want in jobs[0]


def test_experts_config_references_are_checked():
    config = load_config(ROOT / "config/smoke.yaml")
    config["methods"]["mtt"]["experts"] = "missing"
    with pytest.raises(ConfigError, match="methods.mtt.experts"):
        validate_config(config, check_sources=False)
    config = load_config(ROOT / "config/smoke.yaml")
    config["experts"]["convnet"]["zca"] = True
    with pytest.raises(ConfigError, match="experts.convnet.zca"):
        validate_config(config, check_sources=False)
