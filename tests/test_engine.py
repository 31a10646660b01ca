"""The training engine: protocol losses, budgets, determinism, teacher checkpoints."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ddbench.errors import TrainingDivergedError
from ddbench.training.engine import build_classifier, soft_kl, teacher_probs, train
from ddbench.training.protocols import PRESETS, resolve_protocol, teacher_protocol


def _data(n=40, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, 8, 8, generator=g)
    y = torch.arange(n) % k
    x[:, :, :2, :2] = (y.view(-1, 1, 1, 1).float() + 1) / k  # learnable signal
    return x, y


def _model(k=4, seed=0, name="convnet-d2-w8-in"):
    torch.manual_seed(seed)
    return build_classifier(name, k, 1, 8, [0.5], [0.25])


def test_presets_match_design():
    hl, sl, slkd = PRESETS["hl"], PRESETS["sl"], PRESETS["slkd"]
    assert (hl["optimizer"], hl["lr"], hl["momentum"], hl["weight_decay"], hl["batch_size"]) == (
        "sgd",
        0.01,
        0.9,
        5e-4,
        256,
    )
    assert hl["schedule"] == "step_half" and hl["augment"] == "dsa" and hl["labels"] == "hard"
    assert (sl["labels"], sl["optimizer"], sl["lr"], sl["schedule"]) == (
        "soft",
        "adamw",
        1e-3,
        "cosine",
    )
    assert (slkd["labels"], slkd["temperature"], slkd["augment"], slkd["schedule"]) == (
        "kd",
        20.0,
        "rrc_flip",
        "cosine",
    )
    assert slkd["cutmix"] > 0 and PRESETS["mt"]["labels"] == "kd"


def test_overrides_win_over_preset():
    p = resolve_protocol("x", {"preset": "hl", "epochs": 3, "lr": 0.5})
    assert p.lr == 0.5 and p.momentum == 0.9 and p.epochs == 3


def test_full_epochs_budget_equals_full_set_steps():
    p = resolve_protocol("x", {"preset": "hl", "full_epochs": 2})
    n_full = 60000
    assert p.total_steps(n_train=100, n_full=n_full) == math.ceil(2 * n_full / 256)
    assert p.total_steps(n_train=5000, n_full=n_full) == math.ceil(2 * n_full / 256)
    q = resolve_protocol("y", {"preset": "hl", "epochs": 3})
    assert q.total_steps(n_train=1000, n_full=n_full) == 3 * math.ceil(1000 / 256)
    assert q.total_steps(n_train=10, n_full=n_full) == 3  # batch never exceeds the set


def test_engine_runs_exactly_the_budgeted_steps():
    x, y = _data()
    p = resolve_protocol(
        "b", {"preset": "hl", "full_epochs": 1, "batch_size": 16, "augment": "none"}
    )
    r = train(_model(), x, y, p, 0, n_full=100)
    assert r.steps == math.ceil(100 / 16)


def test_hard_label_loss_is_cross_entropy():
    """With lr=0 the reported loss is the plain CE of the initial model on the batch."""
    x, y = _data(n=16)
    p = resolve_protocol(
        "h",
        {
            "preset": "hl",
            "epochs": 1,
            "batch_size": 16,
            "augment": "none",
            "lr": 1e-12,
            "weight_decay": 0,
        },
    )
    m = _model()
    with torch.no_grad():
        m.train()
        expected = F.cross_entropy(m(x), y).item()
    r = train(m, x, y, p, 0, n_full=16)
    assert r.final_train_loss == pytest.approx(expected, rel=1e-4)


def test_soft_kl_is_zero_for_matching_and_positive_otherwise():
    logits = torch.randn(5, 4)
    T = 4.0
    target = F.softmax(logits / T, dim=1)
    assert soft_kl(logits, target, T).item() == pytest.approx(0.0, abs=1e-6)
    assert soft_kl(logits, F.softmax(-logits / T, dim=1), T).item() > 0
    # T² scaling keeps gradient magnitudes comparable across temperatures
    manual = (target * (target.log() - F.log_softmax(torch.zeros(5, 4), 1))).sum(1).mean() * T**2
    assert soft_kl(torch.zeros(5, 4), target, T).item() == pytest.approx(manual.item(), rel=1e-5)


def test_multi_teacher_label_is_mean_of_teacher_softmaxes():
    x, _ = _data(n=8)
    t1, t2 = _model(seed=1).eval(), _model(seed=2).eval()
    T = 20.0
    with torch.no_grad():
        expected = (F.softmax(t1(x) / T, 1) + F.softmax(t2(x) / T, 1)) / 2
    assert torch.allclose(teacher_probs([t1, t2], x, T), expected)


@pytest.mark.parametrize("preset", ["hl", "sl", "slkd", "mt"])
def test_same_seed_gives_identical_training(preset):
    x, y = _data()
    teachers = [_model(seed=5).eval(), _model(seed=6).eval()]
    p = resolve_protocol(
        preset, {"preset": preset, "epochs": 3, "batch_size": 16, "teachers": ["a", "b"]}
    )
    runs = []
    for _ in range(2):
        m = _model(seed=3)
        r = train(m, x, y, p, seed=7, n_full=40, teachers=teachers)
        runs.append((r.history, [v.clone() for v in m.state_dict().values()]))
    assert runs[0][0] == runs[1][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1], strict=True))
    m = _model(seed=3)
    other = train(m, x, y, p, seed=8, n_full=40, teachers=teachers)
    assert other.history != runs[0][0]


def test_training_learns_a_separable_task():
    x, y = _data(n=64)
    p = resolve_protocol(
        "h", {"preset": "hl", "epochs": 40, "batch_size": 16, "augment": "none", "lr": 0.05}
    )
    m = _model()
    r = train(m, x, y, p, 0, n_full=64)
    assert r.history[-1] < r.history[0]
    with torch.no_grad():
        acc = (m.eval()(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9


def test_kd_without_teacher_is_refused():
    x, y = _data()
    p = resolve_protocol("k", {"preset": "slkd", "epochs": 1})
    with pytest.raises(ValueError, match="teacher"):
        train(_model(), x, y, p, 0, n_full=40)


def test_teacher_checkpoint_round_trip_and_wrong_architecture(tmp_path):
    from ddbench.data.datasets import ImageData
    from ddbench.data.h5io import DataFileError
    from ddbench.stages.teachers import load_teacher, make_model, save_checkpoint

    rng = np.random.default_rng(0)
    data = ImageData(
        "d",
        rng.integers(0, 255, (8, 8, 8, 1), dtype=np.uint8),
        np.arange(8) % 4,
        rng.integers(0, 255, (4, 8, 8, 1), dtype=np.uint8),
        np.arange(4),
        list("abcd"),
        [0.5],
        [0.25],
    )
    spec = {"model": "convnet-d2-w8-in"}
    m = make_model(spec, data)
    path = tmp_path / "t.pt"
    save_checkpoint(m, spec, data, path)
    loaded = load_teacher(path, data)
    x = torch.rand(2, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(m.eval()(x), loaded(x))
    # a checkpoint whose weights belong to another architecture
    payload = torch.load(path, weights_only=True)
    payload["state_dict"] = make_model({"model": "convnet-d2-w16-in"}, data).state_dict()
    torch.save(payload, path)
    with pytest.raises(DataFileError, match=str(path)):
        load_teacher(path, data)
    # a checkpoint for another dataset shape
    other = ImageData(
        "e",
        data.train_images,
        data.train_labels,
        data.test_images,
        data.test_labels,
        list("abcdef"),
        [0.5],
        [0.25],
    )
    save_checkpoint(make_model(spec, other), spec, other, path)
    with pytest.raises(DataFileError, match="classes"):
        load_teacher(path, data)
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(DataFileError, match="not a readable"):
        load_teacher(path, data)


def test_diverging_training_raises_naming_step_protocol_and_lr():
    """lr 1e6 turns the weights into inf/nan within a few steps: an error, not a NaN result."""
    x, y = _data()
    p = resolve_protocol(
        "hl", {"preset": "hl", "epochs": 5, "batch_size": 8, "augment": "none", "lr": 1e6}
    )
    with pytest.raises(TrainingDivergedError) as info:
        train(_model(), x, y, p, 0, n_full=40, desc="hl/convnet/random")
    msg = str(info.value)
    step = int(re.search(r"at step (\d+) of 25 \(epoch (\d+)\)", msg).group(1))
    assert 1 <= step <= 25, msg
    assert "loss is nan" in msg or "loss is inf" in msg, msg
    assert "protocol hl" in msg and "hl/convnet/random" in msg, msg
    assert "lr 1e+06 × 1 schedule" in msg and "lower protocols.hl.lr" in msg, msg


def test_teacher_divergence_names_the_teacher_or_scorer_lr():
    x, y = _data()
    p = teacher_protocol("convnet", {"epochs": 2, "batch_size": 8, "lr": 1e6})
    with pytest.raises(TrainingDivergedError, match=r"teachers\.convnet or scorers\.convnet"):
        train(_model(), x, y, p, 0, n_full=40)


def test_finite_training_is_unchanged_by_the_divergence_check():
    x, y = _data()
    p = resolve_protocol("hl", {"preset": "hl", "epochs": 3, "batch_size": 8, "augment": "none"})
    r = train(_model(), x, y, p, 0, n_full=40)
    assert len(r.history) == 3 and all(math.isfinite(v) for v in r.history)


@pytest.mark.parametrize(
    "spec",
    [
        {"preset": "hl", "augment": "dsa", "cutmix": 1.0},
        {"preset": "hl", "augment": "rrc_flip", "optimizer": "adamw", "lr": 1e-3},
        {"preset": "teacher", "augment": "none", "optimizer": "adam", "lr": 1e-3},
    ],
    ids=["sgd_dsa_cutmix", "adamw_rrc", "adam_none"],
)
@pytest.mark.parametrize("fused", [False, True], ids=["foreach", "fused"])
def test_cuda_plan_run_on_cpu_matches_todays_path_to_float_tolerance(spec, fused):
    """The device branch (set moved to the device and augmented there, torch.optim's
    foreach/fused optimisers, channels_last) gives today's results up to float tolerance."""
    from ddbench.training.engine import DevicePlan, predict

    x, y = _data(n=64)
    p = resolve_protocol("t", {**spec, "epochs": 2, "batch_size": 16})
    cuda_like = DevicePlan(data_on_device=True, torch_optim=True, fused=fused, channels_last=True)
    runs = []
    for plan in (None, cuda_like):
        m = _model()
        res = train(m, x.clone(), y, p, seed=5, n_full=64, plan=plan)
        assert all(t.is_contiguous() for t in m.state_dict().values())  # left as it came
        runs.append((res.history, predict(m, x)))
    # compared through the trained function: Adam turns the float noise in the gradient of a
    # conv bias before instance norm (exactly 0 in theory) into lr-sized moves it never feels
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-4, abs=1e-5)
    torch.testing.assert_close(runs[1][1], runs[0][1], rtol=1e-4, atol=1e-4)


def test_device_plan_is_todays_path_on_cpu_and_the_fast_path_on_cuda():
    from ddbench.training.engine import DevicePlan, device_plan

    hl = resolve_protocol("t", {"preset": "hl", "epochs": 1})
    assert device_plan(torch.device("cpu"), hl) == DevicePlan()
    cuda = device_plan(torch.device("cuda"), hl)  # a plan only: no GPU needed to decide it
    assert cuda.data_on_device and cuda.torch_optim and cuda.fused
    assert cuda.amp == cuda.channels_last == bool(hl.amp)
