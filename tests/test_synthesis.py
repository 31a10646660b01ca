"""DM and SRe2L: their objectives go down and they return valid, class-balanced sets."""

import numpy as np
import torch
from conftest import make_image_data

from ddbench.methods import Context, get_method_class
from ddbench.methods.synthesis import bn_statistics_loss
from ddbench.training.engine import build_classifier, train
from ddbench.training.protocols import resolve_protocol


def _data():
    return make_image_data((10, 10, 10), seed=0)


def _resize(data, size=8):
    # the DD ConvNet of depth 2 needs at least 4x4; fixtures are 6x6 -> pad to 8x8
    pad = (size - data.image_size) // 2
    for name in ("train_images", "test_images"):
        arr = getattr(data, name)
        setattr(data, name, np.pad(arr, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode="edge"))
    return data


def test_dm_matching_loss_decreases_and_set_is_valid():
    data = _resize(_data())
    method = get_method_class("dm")(model="convnet-d2-w8-in", iterations=12, lr=1.0, batch_real=10)
    cs = method.condense(Context(data=data, dataset="t"), ipc=2, seed=0)
    cs.validate(data.num_classes, (1, 8, 8))
    losses = method.losses_
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    again = get_method_class("dm")(model="convnet-d2-w8-in", iterations=12, lr=1.0, batch_real=10)
    assert np.array_equal(
        again.condense(Context(data=data, dataset="t"), ipc=2, seed=0).images, cs.images
    )


def test_sre2l_bn_statistic_loss_decreases_and_relabels():
    data = _resize(_data())
    torch.manual_seed(0)
    teacher = build_classifier("convnet-d2-w8-bn", 3, 1, 8, data.mean, data.std)
    x = torch.from_numpy(data.train_float())
    p = resolve_protocol("t", {"preset": "teacher", "epochs": 5, "batch_size": 10, "lr": 0.05})
    train(teacher, x, torch.from_numpy(data.train_labels), p, 0, n_full=len(x))
    method = get_method_class("sre2l")(teacher="t", iterations=40, lr=0.1, bn_weight=1.0)
    cs = method.condense(Context(data=data, dataset="t", teacher=teacher), ipc=2, seed=0)
    cs.validate(3, (1, 8, 8))
    assert np.mean(method.bn_losses_[-10:]) < np.mean(method.bn_losses_[:10])
    assert cs.soft_labels.shape == (6, 3) and np.allclose(cs.soft_labels.sum(1), 1, atol=1e-5)


def test_bn_loss_needs_batchnorm():
    net = build_classifier("convnet-d2-w8-in", 3, 1, 8, [0.5], [0.25])
    try:
        bn_statistics_loss(net, torch.rand(2, 1, 8, 8))
    except ValueError as exc:
        assert "BatchNorm" in str(exc)
    else:
        raise AssertionError("no error for a teacher without BatchNorm")
