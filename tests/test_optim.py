"""ddbench.training.optim applies torch.optim's update rules exactly (CPU, single-tensor path)."""

import sys

import pytest
import torch

from ddbench.training import optim


def _run(make_opt, steps=12, lr_schedule=None):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 3))
    opt = make_opt(model.parameters())
    base = [g["lr"] for g in opt.param_groups]
    gen = torch.Generator().manual_seed(1)
    for step in range(steps):
        x = torch.randn(8, 5, generator=gen)
        y = torch.randint(0, 3, (8,), generator=gen)
        for g, lr in zip(opt.param_groups, base, strict=True):
            g["lr"] = lr * (lr_schedule(step) if lr_schedule else 1.0)
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return [p.detach().clone() for p in model.parameters()]


CASES = {
    "sgd": (
        lambda p: optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4),
        lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4, foreach=False),
    ),
    "sgd-plain": (
        lambda p: optim.SGD(p, lr=0.05),
        lambda p: torch.optim.SGD(p, lr=0.05, foreach=False),
    ),
    "adam": (
        lambda p: optim.Adam(p, lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3),
        lambda p: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3, foreach=False),
    ),
    "adamw": (
        lambda p: optim.AdamW(p, lr=0.01, weight_decay=0.01),
        lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01, foreach=False),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_torch_optim_bit_for_bit(name):
    ours, theirs = CASES[name]
    schedule = lambda s: 0.5 * (1 + torch.cos(torch.tensor(s / 12 * 3.14159)).item())  # noqa: E731
    a = _run(ours, lr_schedule=schedule)
    b = _run(theirs, lr_schedule=schedule)
    for pa, pb in zip(a, b, strict=True):
        assert torch.equal(pa, pb)
    # and the parameters did move: the comparison is not between two untouched models
    c = _run(ours, steps=0)
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a, c, strict=True))


def test_unused_parameters_are_left_alone():
    w = torch.nn.Parameter(torch.ones(3))
    frozen = torch.nn.Parameter(torch.ones(3))
    opt = optim.AdamW([w, frozen], lr=0.1)
    (w * 2).sum().backward()
    opt.step()
    assert torch.equal(frozen, torch.ones(3)) and not torch.equal(w, torch.ones(3))


def test_empty_parameter_list_is_an_error():
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)


def test_training_step_does_not_import_dynamo():
    code = (
        "import sys, torch\n"
        "from ddbench.training import optim\n"
        "m = torch.nn.Linear(3, 2)\n"
        "o = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)\n"
        "m(torch.randn(4, 3)).sum().backward(); o.step(); o.zero_grad()\n"
        "print('torch._dynamo' in sys.modules)\n"
    )
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _multi_tensor_supported(kind: str, flag: str) -> bool:
    try:
        getattr(torch.optim, kind)([torch.nn.Parameter(torch.ones(2))], lr=0.1, **{flag: True})
    except (RuntimeError, ValueError, TypeError):
        return False
    return True


MULTI = {
    "sgd": lambda p, **kw: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=5e-4, **kw),
    "sgd-plain": lambda p, **kw: torch.optim.SGD(p, lr=0.05, **kw),
    "adam": lambda p, **kw: torch.optim.Adam(p, lr=0.01, betas=(0.5, 0.9), weight_decay=1e-3, **kw),
    "adamw": lambda p, **kw: torch.optim.AdamW(p, lr=0.01, weight_decay=0.01, **kw),
}


@pytest.mark.parametrize("flag", ["foreach", "fused"])
@pytest.mark.parametrize("name", sorted(MULTI))
def test_cuda_path_multi_tensor_optimisers_match_ours_to_float_tolerance(name, flag):
    """The engine's CUDA path uses torch.optim's foreach/fused kernels; on CPU they agree."""
    kind = {"sgd": "SGD", "sgd-plain": "SGD", "adam": "Adam", "adamw": "AdamW"}[name]
    if not _multi_tensor_supported(kind, flag):
        pytest.skip(f"torch.optim.{kind}({flag}=True) is not available on CPU here")
    schedule = lambda s: 0.5 * (1 + torch.cos(torch.tensor(s / 12 * 3.14159)).item())  # noqa: E731
    a = _run(CASES[name][0], lr_schedule=schedule)
    b = _run(lambda p: MULTI[name](p, **{flag: True}), lr_schedule=schedule)
    for pa, pb in zip(a, b, strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
