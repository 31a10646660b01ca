"""A thousand classes: per-class work runs and every figure and table stays bounded.

Synthetic data with 1000 classes (2 images of 8×8 px per class). Galleries and t-SNE show at
most `figures.max_classes` classes (default 10), chosen as the evenly spaced indices ⌊i·K/m⌋;
with at most that many classes they are drawn exactly as before (every class, in order).
"""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import matplotlib
import numpy as np
import pytest

from ddbench.analysis import figures, tables
from ddbench.analysis.quality import QualityInputs, class_groups, quality_metrics
from ddbench.data.h5io import write_h5, write_json
from ddbench.methods import Context, get_method_class
from ddbench.testing import tiny_dataset

K = 1000
CAP = figures.FIGURE_MAX_CLASSES
RULE = [0, 100, 200, 300, 400, 500, 600, 700, 800, 900]  # ⌊i·1000/10⌋


@pytest.fixture(scope="module")
def data():
    return tiny_dataset(num_classes=K, per_class=2, image_size=8)


@pytest.fixture(scope="module")
def features(data):
    """Teacher-like features whose first column names the class (so a test can tell classes apart)."""
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(len(data.train_labels), 6)).astype(np.float32)
    feats[:, 0] = data.train_labels * 10.0
    return feats


@pytest.fixture
def svg_text(monkeypatch):
    """SVG text as <text> elements (not glyph paths), so a test can read titles and labels."""
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")


def _condense(kind: str, data, features, ipc: int = 1, seed: int = 0):
    method = get_method_class(kind)(features="t")
    return method.condense(Context(data=data, dataset=data.name, features=features), ipc, seed)


# ------------------------------------------------------------------ the class-choice rule
def test_shown_classes_are_evenly_spaced_indices_and_all_up_to_the_cap():
    assert figures.shown_classes(K).tolist() == RULE
    assert figures.shown_classes(15, 10).tolist() == [(i * 15) // 10 for i in range(10)]
    assert figures.shown_classes(10, 10).tolist() == list(range(10))
    assert figures.shown_classes(3).tolist() == [0, 1, 2]
    assert figures.shown_classes(K, None).tolist() == list(range(K))
    for k, m in [(11, 10), (999, 7), (1000, 1), (1001, 1000)]:
        shown = figures.shown_classes(k, m)
        assert len(shown) == m and shown[0] == 0 and (np.diff(shown) > 0).all() and shown[-1] < k
    text = figures.class_rule_text(K, figures.shown_classes(K))
    assert (
        "10 of 1000 classes" in text and "⌊i·1000/10⌋" in text and "(0, 100, 200, …, 900)" in text
    )
    assert figures.class_rule_text(10, figures.shown_classes(10)) == ""
    with pytest.raises(ValueError, match="at least 1"):
        figures.shown_classes(K, 0)


def test_config_has_the_cap_with_default_10():
    from ddbench.config import ConfigError, load_config, validate_config

    config = validate_config(
        load_config("config/smoke.yaml"), read_sources=False, check_device=False
    )
    assert config["figures"] == {"max_classes": CAP, "series": {}}
    config = load_config("config/smoke.yaml")
    config["figures"] = {"max_classes": 0}
    with pytest.raises(ConfigError, match="max_classes"):
        validate_config(config, read_sources=False, check_device=False)


# ------------------------------------------------------------------ galleries
def test_gallery_of_1000_classes_has_one_row_per_shown_class(
    tmp_path, data, features, svg_text, monkeypatch
):
    cset = _condense("herding", data, features)
    mosaics = []
    real_mosaic = figures.image_mosaic
    monkeypatch.setattr(
        figures, "image_mosaic", lambda *a, **k: mosaics.append(real_mosaic(*a, **k)) or mosaics[-1]
    )
    shown = figures.plot_gallery(
        cset.images, cset.labels, data.classes, "toy · herding", tmp_path / "g.svg"
    )
    assert shown.tolist() == RULE
    (mosaic,) = mosaics
    assert mosaic.shape[0] == CAP * 9 - 1  # ten rows of 8 px with 1 px gaps, not 1000
    for row, c in enumerate(RULE):  # row i holds the image of class RULE[i]
        expected = cset.images[np.flatnonzero(cset.labels == c)[0]].transpose(1, 2, 0)
        np.testing.assert_array_equal(mosaic[row * 9 : row * 9 + 8, :8], expected)
    svg = (tmp_path / "g.svg").read_text()
    assert all(f">{c} class{c}<" in svg for c in RULE)
    assert ">1 class1<" not in svg and ">class1<" not in svg
    assert "10 of 1000 classes, evenly spaced" in svg


def test_galleries_of_every_set_show_the_same_classes(tmp_path, data, features, monkeypatch):
    import ddbench.data.datasets

    monkeypatch.setattr(ddbench.data.datasets, "load_dataset", lambda *a, **k: data)
    cells, paths = [("herding", 1, 0), ("kcenter", 1, 0), ("kcenter", 1, 1)], []
    for method, ipc, seed in cells:
        path = tmp_path / f"{method}-{seed}.h5"
        _condense(method, data, features, ipc, seed).save(path, created_by="test", seed=seed)
        paths.append(path)
    summary = figures.write_galleries("unused.h5", paths, cells, "toy", tmp_path / "galleries")
    assert summary["unreadable"] == {} and summary["classes"] == RULE
    assert summary["class_rule"].startswith("10 of 1000 classes")
    assert len(list((tmp_path / "galleries").glob("*.png"))) == len(cells)
    small = figures.write_galleries(
        "unused.h5", paths[:1], cells[:1], "toy", tmp_path / "g3", max_classes=3
    )
    assert small["classes"] == [0, 333, 666]


@pytest.mark.parametrize("k", [3, 10])
def test_gallery_with_at_most_cap_classes_is_unchanged(tmp_path, k, svg_text):
    rng = np.random.default_rng(k)
    images = rng.random((3 * k, 1, 8, 8)).astype(np.float32)
    labels = np.repeat(np.arange(k), 3)[rng.permutation(3 * k)]
    names = [f"name{c}" for c in range(k)]
    shown = figures.plot_gallery(images, labels, names, "t", tmp_path / "a.svg")
    figures.plot_gallery(images, labels, names, "t", tmp_path / "b.svg", max_classes=None)
    assert shown.tolist() == list(range(k))
    svg = (tmp_path / "a.svg").read_text()
    assert svg == (tmp_path / "b.svg").read_text()  # the cap changes nothing
    positions = [svg.index(f">{n}<") for n in names]  # every class, labelled by name, in order
    assert positions == sorted(positions) and "evenly spaced" not in svg


# ------------------------------------------------------------------ t-SNE
def _spy_layout(monkeypatch, fit: bool = True):
    """Record what each joint t-SNE is given; `fit=False` places points by their first two
    features instead of fitting (the drawing is what a test compares, t-SNE is slow)."""
    calls = []
    real_layout = figures.tsne_layout

    def spy(real, real_labels, sets, **kw):
        calls.append((real, real_labels, sets))
        if fit:
            return real_layout(real, real_labels, sets, **kw)
        return real[:, :2], real_labels, {n: (f[:, :2], lab) for n, (f, lab) in sets.items()}

    monkeypatch.setattr(figures, "tsne_layout", spy)
    return calls


def test_tsne_of_1000_classes_embeds_only_the_shown_classes(
    tmp_path, data, features, svg_text, monkeypatch, capsys
):
    calls = _spy_layout(monkeypatch)
    attrs = {"extractor": "t"}
    write_h5(
        tmp_path / "real.h5",
        "features",
        {"features": features, "labels": data.train_labels},
        created_by="test",
        attrs=attrs,
    )
    sets, paths = [("herding", 1), ("kcenter", 1)], []
    for method, ipc in sets:
        cset = _condense(method, data, features, ipc)
        feats = features[cset.source_indices]
        path = tmp_path / f"{method}.h5"
        write_h5(
            path,
            "features",
            {"features": feats, "labels": cset.labels},
            created_by="test",
            attrs={**attrs, "method": method, "ipc": ipc},
        )
        paths.append(path)
    out = tmp_path / "tsne"
    summary = figures.write_tsne(
        tmp_path / "real.h5", paths, sets, "toy", out, tmp_path / "o.svg", n_jobs=1
    )
    assert summary == {"sets": 2, "unreadable": 0}
    # only the shown classes' rows of the real features are read, never the whole [N, D] matrix
    feats, labels, k = figures._read_real_features(tmp_path / "real.h5", CAP)
    assert k == K and sorted(set(labels.tolist())) == RULE and len(feats) == 2 * CAP
    (call,) = calls  # one IPC, one joint fit
    real, real_labels, placed = call
    # the points are those of the shown classes (feature 0 = 10·class), relabelled 0..9 in order
    assert len(real) == 2 * CAP
    np.testing.assert_array_equal(real[:, 0], np.asarray(RULE)[real_labels] * 10.0)
    assert sorted(set(real_labels.tolist())) == list(range(CAP))
    for feats, labels in placed.values():
        assert len(feats) == CAP
        np.testing.assert_array_equal(feats[:, 0], np.asarray(RULE)[labels] * 10.0)
    assert sorted(p.name for p in out.glob("*.png")) == ["herding_ipc1.png", "kcenter_ipc1.png"]
    rule = "10 of 1000 classes, evenly spaced"
    assert rule in (tmp_path / "o.svg").read_text()
    assert rule in (out / "herding_ipc1.svg").read_text()
    assert f"t-SNE of toy: {rule}" in capsys.readouterr().err


@pytest.mark.parametrize("k", [3, 10])
def test_tsne_with_at_most_cap_classes_is_unchanged(tmp_path, k, svg_text, monkeypatch):
    calls = _spy_layout(monkeypatch, fit=False)
    rng = np.random.default_rng(k)
    real, real_labels = rng.normal(size=(6 * k, 5)), np.repeat(np.arange(k), 6)
    sets = {("a", 1): (rng.normal(size=(k, 5)), np.arange(k))}
    for cap, name in [(CAP, "capped"), (None, "uncapped")]:
        figures.plot_tsne(
            real, real_labels, sets, k, "toy", tmp_path / name, tmp_path / f"{name}.svg",
            n_jobs=1, max_classes=cap,
        )  # fmt: skip
    assert len(calls) == 2
    for got_real, got_labels, got_sets in calls:  # every point, labels as given
        assert got_real is real and got_labels is real_labels
        assert got_sets["a"] is sets[("a", 1)]
    capped, uncapped = (
        (tmp_path / "capped.svg").read_text(),
        (tmp_path / "uncapped.svg").read_text(),
    )
    assert capped == uncapped and "evenly spaced" not in capped


# ------------------------------------------------------------------ coresets and clusters
@pytest.mark.parametrize("kind", ["herding", "kcenter"])
def test_coresets_of_1000_classes_are_exact_and_hold_no_cross_class_matrix(kind, data, features):
    tracemalloc.start()
    try:
        cset = _condense(kind, data, features, ipc=1, seed=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert np.bincount(cset.labels, minlength=K).tolist() == [1] * K
    np.testing.assert_array_equal(data.train_labels[cset.source_indices], cset.labels)
    # a dense [N, N] or [K, N] float64 matrix would take 2000·2000·8 = 32 MB or 16 MB
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


def test_kmeans_per_class_of_1000_classes_clusters_each_class_alone(data, features):
    from threadpoolctl import threadpool_limits

    from ddbench.stages.ddps import kmeans_per_class

    with threadpool_limits(1):  # a thousand tiny fits: thread start-up would dominate
        res = kmeans_per_class(features, data.train_labels, K, k=4, seed=0, n_init=1)
    # two distinct points per class: each is its own cluster, at distance 0 from its centroid
    assert res["n_clusters"].tolist() == [2] * K
    np.testing.assert_allclose(res["distances"], 0.0, atol=1e-6)
    for c in (0, 1, 500, 999):
        rows = np.flatnonzero(data.train_labels == c)
        assert sorted(res["assignments"][rows].tolist()) == [0, 1]


# ------------------------------------------------------------------ quality and its table
def test_quality_of_1000_classes_is_per_class_and_the_table_shows_class_means(
    tmp_path, data, features
):
    assert [g.tolist() for g in class_groups(data.train_labels, K)] == [
        np.flatnonzero(data.train_labels == c).tolist() for c in range(K)
    ]
    paths = []
    for method in ("herding", "kcenter"):
        cset = _condense(method, data, features)
        inp = QualityInputs(
            real_features=features,
            real_labels=data.train_labels,
            real_pixels=data.train_images.transpose(0, 3, 1, 2),
            fake_features=features[cset.source_indices] + 0.5,
            fake_labels=cset.labels,
            fake_pixels=cset.images,
            num_classes=K,
        )
        tracemalloc.start()
        try:
            q = quality_metrics(inp, k=1, max_real_per_class=None)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        if method == "herding":  # the dataset's NHWC pixels, read class by class: same numbers
            nhwc = replace(inp, real_pixels=data.train_images, real_pixels_nhwc=True)
            assert quality_metrics(nhwc, k=1, max_real_per_class=None) == q
        assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # no [N, N] matrix (32 MB)
        assert [row["class"] for row in q["per_class"]] == list(range(K))
        assert q["precision"] == pytest.approx(np.mean([r["precision"] for r in q["per_class"]]))
        assert q["exact_copy_fraction"] == 1.0  # coresets are copies of training images
        path = tmp_path / f"{method}.json"
        write_json(path, {"dataset": "toy", "method": method, "ipc": 1, "seed": 0,
                          "teacher": "t", "k": 1, **q})  # fmt: skip
        paths.append(path)
    summary = tables.quality_summary(tables.read_quality(paths))
    assert len(summary) == 2 and "per_class" not in summary
    for block in tables.quality_blocks(summary):
        assert len(block.mean) == 2  # one row per method, never one per class
