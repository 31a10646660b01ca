"""Tests for generator-driven augmentations: determinism, gradients, siamese use, CutMix."""

from __future__ import annotations

import pytest
import torch

from ddbench.training.augment import DSA, SoftAugment, cutmix, make_augment


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _batch(b: int = 8, c: int = 3, s: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, s, s, generator=_gen(seed))


AUGS = {
    "dsa_single": lambda: DSA(),
    "dsa_multiple": lambda: DSA(mode="multiple"),
    "rrc_flip": lambda: SoftAugment(),
}


@pytest.mark.parametrize("name", sorted(AUGS))
def test_same_seed_same_output_different_seed_different(name: str) -> None:
    aug, x = AUGS[name](), _batch()
    assert torch.equal(aug(x, _gen(1)), aug(x, _gen(1)))
    assert not torch.equal(aug(x, _gen(1)), aug(x, _gen(2)))


def test_global_rng_is_not_used() -> None:
    x = _batch()
    torch.manual_seed(0)
    a = DSA(mode="multiple")(x, _gen(3))
    torch.manual_seed(99)
    b = DSA(mode="multiple")(x, _gen(3))
    assert torch.equal(a, b)


def test_generator_required() -> None:
    with pytest.raises(TypeError, match="Generator"):
        DSA()(_batch(), 0)  # type: ignore[arg-type]


@pytest.mark.parametrize("strategy", ["color", "crop", "cutout", "flip", "scale", "rotate"])
def test_gradient_flows_through_each_dsa_family(strategy: str) -> None:
    x = _batch(4).requires_grad_(True)
    out = DSA(strategy=strategy, flip_prob=1.0)(x, _gen(0))
    (out * torch.rand(out.shape, generator=_gen(9))).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_gradient_flows_through_full_dsa_and_soft_augment() -> None:
    for aug in (DSA(mode="multiple"), SoftAugment()):
        x = _batch(4).requires_grad_(True)
        aug(x, _gen(5)).square().sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_dsa_siamese_params_reapply_identically() -> None:
    dsa, x = DSA(mode="multiple"), _batch()
    params = dsa.sample_params(x.shape[0], _gen(4))
    assert torch.equal(dsa.apply(x, params), dsa.apply(x, params))
    assert torch.equal(dsa.apply(x, params), dsa(x, _gen(4)))


def test_dsa_shared_params_act_per_sample_on_any_batch_size() -> None:
    dsa, x = DSA(mode="multiple"), _batch(6)
    shared = dsa.sample_params(1, _gen(7))
    full = dsa.apply(x, shared)
    small = dsa.apply(x[:2], shared)
    torch.testing.assert_close(full[:2], small)
    with pytest.raises(ValueError, match="batch size"):
        dsa.apply(x, dsa.sample_params(3, _gen(7)))


def test_flip_only_gives_x_or_mirrored_x_per_sample() -> None:
    x = _batch(16)
    out = DSA(strategy="flip")(x, _gen(11))
    flipped = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x, strict=True)]
    kept = [torch.equal(o, xi) for o, xi in zip(out, x, strict=True)]
    assert all(f or k for f, k in zip(flipped, kept, strict=True))
    assert any(flipped) and any(kept)


def test_grey_images_saturation_is_noop() -> None:
    x = _batch(4, c=1)
    dsa = DSA(strategy="color")
    params = dsa.sample_params(4, _gen(0))
    only_sat = type(params)(batch_size=4, ops=("saturation",), draws=params.draws)
    assert torch.equal(dsa.apply(x, only_sat), x)
    assert dsa(x, _gen(0)).shape == x.shape


def test_bad_dsa_strategy_rejected() -> None:
    with pytest.raises(ValueError, match="blur"):
        DSA(strategy="color_blur")


@pytest.mark.parametrize("seed", range(5))
def test_cutmix_lam_is_exact_kept_area_and_pixels_come_from_x_or_perm(seed: int) -> None:
    x = _batch(6, s=12, seed=seed + 100)
    mixed, perm, lam = cutmix(x, _gen(seed), alpha=1.0)
    assert mixed.shape == x.shape and 0.0 <= lam <= 1.0
    from_x = (mixed == x).all(dim=1)
    from_perm = (mixed == x[perm]).all(dim=1)
    assert bool((from_x | from_perm).all())
    moved = [i for i in range(6) if int(perm[i]) != i]
    for i in moved:
        pasted = (~from_x[i]).sum().item()
        assert lam == pytest.approx(1.0 - pasted / (12 * 12))
    a = cutmix(x, _gen(seed))
    assert torch.equal(a[0], mixed) and torch.equal(a[1], perm) and a[2] == lam


def test_cutmix_box_is_nonempty_for_some_seed() -> None:
    lams = [cutmix(_batch(4), _gen(s))[2] for s in range(10)]
    assert any(lam < 1.0 for lam in lams)


def test_soft_augment_shape_and_size_option() -> None:
    x = _batch(5, c=1, s=20)
    assert SoftAugment()(x, _gen(0)).shape == x.shape
    assert SoftAugment(size=8)(x, _gen(0)).shape == (5, 1, 8, 8)


def test_soft_augment_full_box_without_flip_is_identity() -> None:
    x = _batch(3)
    aug = SoftAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=0.0)
    torch.testing.assert_close(aug(x, _gen(0)), x)
    mirror = SoftAugment(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_prob=1.0)
    torch.testing.assert_close(mirror(x, _gen(0)), x.flip(-1))


def test_make_augment() -> None:
    x = _batch(2)
    assert make_augment("none")(x, _gen(0)) is x
    assert isinstance(make_augment("dsa", strategy="flip"), DSA)
    assert isinstance(make_augment("rrc_flip", scale=(0.5, 1.0)), SoftAugment)
    with pytest.raises(ValueError, match="unknown augmentation"):
        make_augment("mixup")
    with pytest.raises(ValueError, match="bad parameters"):
        make_augment("dsa", nonsense=1)


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("name", ["dsa_single", "dsa_multiple", "rrc_flip", "cutmix"])
def test_augmenting_on_the_device_matches_the_host_with_cpu_generator_draws(name, device):
    """The GPU path augments device batches; draws stay on the CPU generator, so the
    parameters, the generator's state afterwards and (to float tolerance) the images match."""
    x = _batch(b=16)
    outs, states = [], []
    for where in ("cpu", device):
        g = _gen(7)
        for _ in range(3):  # a few calls: every family of DSA single mode gets a turn
            if name == "cutmix":
                out, perm, lam = cutmix(x.to(where), g, alpha=1.0)
                assert perm.device.type == torch.device(where).type
            else:
                out = AUGS[name]()(x.to(where), g)
            assert out.device.type == torch.device(where).type
            outs.append(out.cpu())
        states.append(g.get_state())
    assert torch.equal(states[0], states[1])
    for host, dev in zip(outs[:3], outs[3:], strict=True):
        torch.testing.assert_close(dev, host, rtol=1e-5, atol=1e-5)
