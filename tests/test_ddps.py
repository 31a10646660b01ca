"""DDPS: patch scores from a diffusion prior, per-class clusters, ranking, mosaics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddbench.data.h5io import write_h5
from ddbench.methods import Context, get_method_class
from ddbench.stages.ddps import (
    box_means,
    compute_patch_scores,
    kept_patches,
    kmeans_per_class,
    rank_patches,
)
from ddbench.stages.teachers import make_model
from ddbench.testing import check_method, tiny_dataset, tiny_unet_prior

SPEC = {"max_images_per_class": 4, "crops_per_image": 3, "keep_per_image": 2, "scale": [0.2, 1.0]}


def _teacher(data):
    torch.manual_seed(0)
    return make_model({"model": "convnet-d1-w8-in"}, data).eval()


def test_prior_ignoring_the_class_gives_zero_scores():
    data = tiny_dataset(num_classes=3, per_class=6, image_size=8)
    prior = tiny_unet_prior(data)
    arr, _ = compute_patch_scores(data, prior, _teacher(data), "t", SPEC)
    assert np.abs(arr["patch_scores"]).max() > 0  # a class-aware prior scores patches
    with torch.no_grad():  # tie every class row, the null class included, to one embedding
        w = prior.unet.class_embedding.weight
        w.copy_(w[:1].expand_as(w))
    arr, _ = compute_patch_scores(data, prior, _teacher(data), "t", SPEC)
    assert arr["patch_scores"].shape == (12, 3)
    assert np.all(arr["patch_scores"] == 0.0)
    assert arr["dift_features"].shape[:2] == (12, 3)
    # kept = each image's best-scoring patches
    top = np.take_along_axis(arr["patch_scores"], arr["kept"], 1)
    assert (top[:, :1] >= arr["patch_scores"].max(1, keepdims=True)).all()


def test_box_means_equal_direct_means():
    rng = np.random.default_rng(0)
    maps = torch.from_numpy(rng.normal(size=(2, 3, 7, 7)).astype(np.float32))
    boxes = np.array([[[0, 0, 7, 7], [2, 3, 4, 2]], [[1, 1, 1, 1], [5, 0, 2, 7]]])
    got = box_means(maps, boxes).numpy()
    for n in range(2):
        for p, (y, x, h, w) in enumerate(boxes[n]):
            want = maps[n, :, y : y + h, x : x + w].mean((1, 2)).numpy()
            np.testing.assert_allclose(got[n, p], want, rtol=1e-5, atol=1e-6)


def test_rank_patches_by_cluster_median_then_nearest_round_robin():
    # cluster 0: median 1.0; cluster 1: median 5.0; cluster 2: median 3.0
    scores = np.array([1.0, 0.0, 9.0, 5.0, 4.0, 6.0, 3.0, 3.0, 8.0, 0.5])
    assign = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 0])
    dist = np.array([0.1, 0.2, 0.9, 0.5, 0.1, 0.3, 0.2, 0.1, 0.4, 0.05])
    order = rank_patches(scores, assign, dist, top_clusters=2)
    # clusters 1 then 2; nearest first, round-robin: 4, 7, 5, 6, 3, 8; then by score: 2, 0, 9, 1
    assert order.tolist() == [4, 7, 5, 6, 3, 8, 2, 0, 9, 1]
    assert rank_patches(scores, None, None, 2).tolist() == [2, 8, 5, 3, 4, 6, 7, 0, 9, 1]


def _patch_file(tmp_path, data, per_image=2):
    """A ddps scorer file over every training image: whole-image boxes, known scores."""
    n = len(data.train_labels)
    boxes = np.tile([0, 0, data.image_size, data.image_size], (n, per_image, 1))
    scores = np.tile(np.arange(n, dtype=np.float32)[:, None], (1, per_image))
    scores -= np.arange(per_image, dtype=np.float32) * 0.5
    rng = np.random.default_rng(1)
    path = tmp_path / "ddps.h5"
    write_h5(
        path,
        "scores",
        {
            "patch_scores": scores,
            "patch_boxes": boxes,
            "image_indices": np.arange(n),
            "labels": data.train_labels,
            "kept": np.tile(np.arange(per_image), (n, 1)),
            "dift_features": rng.normal(size=(n, per_image, 4)).astype(np.float32),
            "teacher_features": rng.normal(size=(n, per_image, 5)).astype(np.float32),
        },
        created_by="test",
    )
    return path


def _clusters_file(tmp_path, data, ps_path, k=3):
    from ddbench.stages.ddps import load_patch_scores

    ps = load_patch_scores(ps_path, len(data.train_labels))
    rows, patches = kept_patches(ps)
    labels = ps["labels"][rows]
    res = kmeans_per_class(ps["dift_features"][rows, patches], labels, data.num_classes, k, 0)
    path = tmp_path / "clusters.h5"
    write_h5(
        path,
        "clusters",
        {"rows": rows, "patches": patches, "labels": labels, **res},
        created_by="test",
    )
    return path


def test_mosaic_layout_labels_and_sources(tmp_path):
    data = tiny_dataset(num_classes=2, per_class=5, image_size=8)
    # every training image a constant grey level = its index, so tiles reveal their source
    n = len(data.train_labels)
    data.train_images[:] = (np.arange(n) * 20).astype(np.uint8)[:, None, None, None]
    path = _patch_file(tmp_path, data, per_image=1)
    m = get_method_class("ddps")(scorer="s", clustering="none", factor=2, mosaic_max_ipc=1)
    ctx = Context(data=data, dataset=data.name, extras={"patches_path": str(path)})
    cset = m.condense(ctx, 1, 0)
    assert cset.labels.tolist() == [0, 1]
    assert cset.extra_attrs["tiles_per_image"] == 4
    for c in range(2):
        # no clustering: the class's images by score (= index), highest first, row-major tiles
        want = np.flatnonzero(data.train_labels == c)[::-1][:4]
        assert cset.source_indices[4 * c : 4 * c + 4].tolist() == want.tolist()
        quads = [cset.images[c, 0, :4, :4], cset.images[c, 0, :4, 4:],
                 cset.images[c, 0, 4:, :4], cset.images[c, 0, 4:, 4:]]  # fmt: skip
        for q, src in zip(quads, want, strict=True):
            np.testing.assert_allclose(q, src * 20 / 255.0, atol=1e-5)
    single = m.condense(ctx, 2, 0)  # IPC above mosaic_max_ipc: one patch per image
    assert single.images.shape[0] == 4 and single.extra_attrs["tiles_per_image"] == 1


def test_exact_ipc_and_contract_with_clusters(tmp_path):
    data = tiny_dataset()
    ps_path = _patch_file(tmp_path, data)
    cl_path = _clusters_file(tmp_path, data, ps_path)

    def make(d, ipc, seed):
        extras = {"patches_path": str(ps_path), "clusters_path": str(cl_path)}
        return Context(data=d, dataset=d.name, extras=extras)

    passed = check_method(
        "ddps", {"scorer": "s", "k": 3, "top_clusters": 2}, ipcs=(1, 3), make_context=make
    )
    assert "exact class-balanced IPC" in passed
    m = get_method_class("ddps")(scorer="s", k=3)
    assert m.input_names() == {"patches": "s", "clusters": "s_dift-k3"}
    assert get_method_class("ddps")(scorer="s", clustering="none").input_names() == {"patches": "s"}


def test_clusters_from_another_scorer_file_are_refused(tmp_path):
    data = tiny_dataset()
    ps_path = _patch_file(tmp_path, data, per_image=2)
    other = tmp_path / "other"
    other.mkdir()
    cl_path = _clusters_file(other, data, _patch_file(other, data, per_image=1))
    ctx = Context(
        data=data,
        dataset=data.name,
        extras={"patches_path": str(ps_path), "clusters_path": str(cl_path)},
    )
    with pytest.raises(ValueError, match="another scorer file"):
        get_method_class("ddps")(scorer="s", k=3).condense(ctx, 1, 0)
