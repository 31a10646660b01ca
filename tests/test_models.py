"""Tests for the model registry: names, shapes, parameter counts, stems, checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ddbench.training import models
from ddbench.training.models import (
    create_model,
    load_state_checked,
    model_fingerprint,
    parse_model_name,
)

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _modules_of(model: nn.Module, cls: type) -> list[nn.Module]:
    return [m for m in model.modules() if isinstance(m, cls)]


@pytest.mark.parametrize(("chans", "size"), [(1, 28), (3, 32)])
def test_convnet_output_and_feature_shapes(chans: int, size: int) -> None:
    model = create_model("convnet-d3-w128-in", num_classes=10, in_chans=chans, image_size=size)
    x = torch.randn(2, chans, size, size)
    assert model(x).shape == (2, 10)
    feats = model.features(x)
    assert feats.shape == (2, model.num_features)
    side = size // 8
    assert model.num_features == 128 * side * side


def test_convnet_norm_layers() -> None:
    kw = {"num_classes": 3, "in_chans": 3, "image_size": 16}
    inorm = create_model("convnet-d2-w8-in", **kw)
    gns = _modules_of(inorm, nn.GroupNorm)
    assert len(gns) == 2 and all(g.num_groups == 8 and g.affine for g in gns)
    assert not _modules_of(inorm, nn.BatchNorm2d)
    bnorm = create_model("convnet-d2-w8-bn", **kw)
    assert len(_modules_of(bnorm, nn.BatchNorm2d)) == 2
    assert not _modules_of(bnorm, nn.GroupNorm)
    plain = create_model("convnet-d2-w8-none", **kw)
    assert not _modules_of(plain, nn.GroupNorm) and not _modules_of(plain, nn.BatchNorm2d)


def test_convnet_pool_variants() -> None:
    kw = {"num_classes": 3, "in_chans": 1, "image_size": 8}
    assert _modules_of(create_model("convnet-d2-w4-none-max", **kw), nn.MaxPool2d)
    flat = create_model("convnet-d2-w4-none-nopool", **kw)
    assert flat.num_features == 4 * 8 * 8
    assert flat(torch.randn(1, 1, 8, 8)).shape == (1, 3)


def test_convnet_d3_w128_in_param_count() -> None:
    width, chans, classes, side = 128, 3, 10, 32 // 8
    conv_first = chans * width * 9 + width
    conv_rest = width * width * 9 + width
    group_norm = 2 * width
    linear = width * side * side * classes + classes
    expected = conv_first + 2 * conv_rest + 3 * group_norm + linear
    model = create_model("convnet-d3-w128-in", num_classes=classes, in_chans=chans, image_size=32)
    assert model_fingerprint(model)["num_params"] == expected == 320010


def test_convnet_too_small_image_names_model_and_size() -> None:
    with pytest.raises(ValueError, match=r"convnet-d4-w8-in.*image_size=8"):
        create_model("convnet-d4-w8-in", num_classes=2, in_chans=1, image_size=8)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("convnet-d0-w128-in", "depth"),
        ("convnet-d3-w0-in", "width"),
        ("convnet-dx-w128-in", "depth"),
        ("convnet-d3-w128-ln", "norm"),
        ("convnet-d3-w128-in-median", "pool"),
        ("convnet-d3", "expected"),
        ("resnet18", "unknown model family"),
        ("timm:", "timm"),
        ("timm:res net", "architecture"),
        ("", "non-empty"),
    ],
)
def test_bad_names_raise_value_error(name: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        parse_model_name(name)


def test_parse_model_name_fields() -> None:
    spec = parse_model_name("convnet-d3-w128-in")
    assert spec == {
        "family": "convnet",
        "name": "convnet-d3-w128-in",
        "depth": 3,
        "width": 128,
        "norm": "in",
        "pool": "avg",
    }
    assert parse_model_name("timm:resnet18")["arch"] == "resnet18"
    assert models.list_model_families() == ["convnet", "timm"]


def test_import_does_not_load_torch() -> None:
    code = (
        "import sys, ddbench.training.models as m; m.parse_model_name('convnet-d3-w128-in'); "
        "m.parse_model_name('timm:resnet18'); "
        "print('torch' in sys.modules, 'timm' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.split() == ["False", "False"]


def test_convnet_pickles_via_module_name(tmp_path: Path) -> None:
    model = create_model("convnet-d1-w4-in", num_classes=2, in_chans=1, image_size=4)
    assert type(model) is models.ConvNet
    path = tmp_path / "whole.pt"
    torch.save(model, path)
    again = torch.load(path, weights_only=False)
    x = torch.randn(1, 1, 4, 4)
    assert torch.equal(model(x), again(x))


@pytest.mark.parametrize(("chans", "size"), [(3, 32), (1, 28)])
def test_timm_resnet18_small_stem(chans: int, size: int) -> None:
    model = create_model("timm:resnet18", num_classes=7, in_chans=chans, image_size=size)
    conv1 = model.conv1
    assert isinstance(conv1, nn.Conv2d)
    assert conv1.kernel_size == (3, 3) and conv1.stride == (1, 1) and conv1.padding == (1, 1)
    assert conv1.in_channels == chans and conv1.bias is None
    assert isinstance(model.maxpool, nn.Identity)
    model.eval()
    x = torch.randn(2, chans, size, size)
    with torch.no_grad():
        assert model(x).shape == (2, 7)
        assert model.features(x).shape == (2, model.num_features) == (2, 512)


def test_timm_resnet18_standard_stem() -> None:
    model = create_model(
        "timm:resnet18", num_classes=5, in_chans=3, image_size=32, small_stem=False
    )
    assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2)
    assert isinstance(model.maxpool, nn.MaxPool2d)
    auto_large = create_model("timm:resnet18", num_classes=5, in_chans=3, image_size=128)
    assert isinstance(auto_large.maxpool, nn.MaxPool2d)


def test_timm_small_stem_rejected_without_conv1() -> None:
    with pytest.raises(ValueError, match="small_stem"):
        create_model(
            "timm:vit_tiny_patch16_224",
            num_classes=2,
            in_chans=3,
            image_size=32,
            small_stem=True,
            img_size=32,
        )


def test_timm_unknown_architecture_and_pretrained_rejected() -> None:
    with pytest.raises(ValueError, match="no architecture"):
        create_model("timm:not_a_real_net", num_classes=2, in_chans=3, image_size=32)
    with pytest.raises(ValueError, match="pretrained"):
        create_model("timm:resnet18", num_classes=2, in_chans=3, image_size=32, pretrained=True)


def test_load_state_checked_names_path_for_other_architecture(tmp_path: Path) -> None:
    kw = {"num_classes": 3, "in_chans": 1, "image_size": 8}
    source = create_model("convnet-d2-w8-bn", **kw)
    target = create_model("convnet-d2-w8-in", **kw)
    path = tmp_path / "other_arch.pt"
    with pytest.raises(ValueError, match=r"other_arch\.pt.*(unexpected|missing) keys"):
        load_state_checked(target, source.state_dict(), path)
    wider = create_model("convnet-d2-w16-in", **kw)
    with pytest.raises(ValueError, match=r"other_arch\.pt.*shape mismatches"):
        load_state_checked(target, wider.state_dict(), path)
    assert model_fingerprint(source) != model_fingerprint(target)


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    kw = {"num_classes": 3, "in_chans": 1, "image_size": 8}
    model = create_model("convnet-d2-w8-in", **kw)
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    again = create_model("convnet-d2-w8-in", checkpoint=path, **kw)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(model(x), again(x))
    assert model_fingerprint(model) == model_fingerprint(again)
    with pytest.raises(ValueError, match="ckpt.pt"):
        create_model("convnet-d2-w8-bn", checkpoint=path, **kw)
