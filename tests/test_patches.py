"""Crop machinery, RDED and CA2D: layout of mosaics, labels, and which crops are chosen."""

import numpy as np
import pytest
import torch
from conftest import make_dynamics, make_image_data

from ddbench.data.h5io import write_h5
from ddbench.methods import Context, get_method_class
from ddbench.stages.crops import assemble_mosaics, crop_resize, load_crop_scores, sample_boxes


def test_boxes_lie_inside_the_image():
    rng = np.random.default_rng(0)
    boxes = sample_boxes(rng, 16, 200, (0.08, 1.0))
    y, x, h, w = boxes.T
    assert (h > 0).all() and (w > 0).all() and (y + h <= 16).all() and (x + w <= 16).all()


def test_mosaic_tiles_are_the_resized_crops_in_row_major_order():
    rng = np.random.default_rng(1)
    images = rng.random((4, 1, 8, 8)).astype(np.float32)
    boxes = [
        np.array([0, 0, 8, 8]),
        np.array([2, 2, 4, 4]),
        np.array([0, 4, 8, 4]),
        np.array([4, 0, 4, 8]),
    ]
    out = assemble_mosaics(images, list(enumerate(boxes)), factor=2, size=8)
    assert out.shape == (1, 1, 8, 8)
    for t, box in enumerate(boxes):
        r, c = divmod(t, 2)
        tile = crop_resize(torch.from_numpy(images[t : t + 1]), box[None], 4)[0].numpy()
        np.testing.assert_allclose(out[0, :, r * 4 : r * 4 + 4, c * 4 : c * 4 + 4], tile, atol=1e-6)
    single = assemble_mosaics(images, [(0, boxes[0])], factor=1, size=8)
    np.testing.assert_allclose(single[0], images[0], atol=1e-6)  # the full-image crop is the image


def _crop_file(tmp_path, data, scores):
    n = len(data.train_labels)
    boxes = np.tile(np.array([0, 0, data.image_size, data.image_size]), (n, scores.shape[1], 1))
    path = tmp_path / "crops.h5"
    write_h5(
        path,
        "scores",
        {
            "patch_scores": scores.astype(np.float32),
            "patch_boxes": boxes,
            "image_indices": np.arange(n),
            "labels": data.train_labels,
        },
        created_by="test",
    )
    return path


@pytest.mark.parametrize("factor", [1, 2])
def test_rded_takes_the_lowest_loss_crops_and_is_class_balanced(tmp_path, factor):
    data = make_image_data((8, 8, 8))
    n = len(data.train_labels)
    scores = np.random.default_rng(0).random((n, 3))
    path = _crop_file(tmp_path, data, scores)
    cs = get_method_class("rded")(crops="c", factor=factor).condense(
        Context(data=data, dataset="t", extras={"crops_path": str(path)}), ipc=2, seed=0
    )
    cs.validate(3, (1, data.image_size, data.image_size))
    assert np.bincount(cs.labels).tolist() == [2, 2, 2]
    if factor == 1:  # full-image boxes: each image is the source image of a best-ranked crop
        for c in range(3):
            rows = np.flatnonzero(data.train_labels == c)
            best = rows[np.argsort(scores[rows].min(1))[:2]]
            expected = data.train_float_subset(best)
            np.testing.assert_allclose(cs.images[cs.labels == c], expected, atol=1e-6)


def test_ca2d_orders_source_images_by_cad(tmp_path):
    data = make_image_data((6, 6, 6))
    n = len(data.train_labels)
    path = _crop_file(tmp_path, data, np.zeros((n, 2)))
    dyn = make_dynamics(data.train_labels, runs=1, epochs=8, num_classes=3)
    from ddbench.stages.scores import cad

    difficulty = cad(dyn["probs"], dyn["labels"], 8, 3, 3)
    ctx = Context(data=data, dataset="t", scores=dyn, extras={"crops_path": str(path)})
    cs = get_method_class("ca2d")(crops="c", scorer="d", factor=1).condense(ctx, ipc=1, seed=0)
    for c in range(3):
        rows = np.flatnonzero(data.train_labels == c)
        hardest = rows[np.argmax(difficulty[rows])]
        np.testing.assert_allclose(
            cs.images[cs.labels == c][0], data.train_float_subset([hardest])[0], atol=1e-6
        )


def test_crop_file_shape_mismatch_is_named(tmp_path):
    path = tmp_path / "bad.h5"
    write_h5(
        path,
        "scores",
        {
            "patch_scores": np.zeros((3, 2), np.float32),
            "patch_boxes": np.zeros((3, 5, 4), np.int64),
            "image_indices": np.arange(3),
        },
        created_by="test",
    )
    with pytest.raises(ValueError, match=str(path)):
        load_crop_scores(path, 10)
