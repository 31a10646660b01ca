"""PSR: pool, selection criteria and ablations, latent refinement; workflow reuse of ddps/psr targets."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_snakemake

from ddbench.data.h5io import write_h5
from ddbench.methods import Context, get_method_class
from ddbench.stages.psr import (
    informativeness,
    pool_key,
    pool_spec,
    refine_latents,
    sample_pool,
    select_class,
)
from ddbench.stages.teachers import make_model
from ddbench.testing import check_method, tiny_dataset, tiny_unet_prior

ROOT = Path(__file__).resolve().parents[1]
POOL = {"prior": "p", "m": 2, "max_ipc": 2, "guidance_scale": 2.0, "steps": 2, "pool_seed": 0}


def _teacher(data):
    torch.manual_seed(0)
    return make_model({"model": "convnet-d1-w8-in"}, data).eval()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny real prior, its pool file (4 per class) and a random teacher."""
    data = tiny_dataset(num_classes=3, per_class=6, image_size=8)
    prior = tiny_unet_prior(data)
    arrays = sample_pool(prior, data.num_classes, POOL)
    path = tmp_path_factory.mktemp("pool") / "pool.h5"
    write_h5(path, "pool", arrays, created_by="test", params=POOL)
    return data, prior, _teacher(data), path, arrays


def _ctx(setup, prior_dir="unused"):
    data, prior, teacher, path, _ = setup
    return Context(
        data=data,
        dataset=data.name,
        teacher=teacher,
        extras={"pool_path": str(path), "prior_path": prior_dir},
    )


def test_pool_is_prefix_consistent_and_sized(setup):
    data, prior, _, _, arrays = setup
    assert np.bincount(arrays["labels"]).tolist() == [4, 4, 4]
    small = sample_pool(prior, data.num_classes, {**POOL, "max_ipc": 1})
    first = np.concatenate([np.flatnonzero(arrays["labels"] == c)[:2] for c in range(3)])
    np.testing.assert_array_equal(small["noise"], arrays["noise"][first])
    assert "latents" not in arrays  # pixel-space prior: the initial noise is the latent


def test_pool_name_ignores_selection_and_refinement_parameters():
    a = get_method_class("psr")(prior="p", teacher="t", selection="random", refine_steps=0)
    b = get_method_class("psr")(prior="p", teacher="t", proximity=3.0, informativeness="loss")
    assert a.pool_name(10) == b.pool_name(10)
    assert a.pool_name(10) != a.pool_name(20)  # max_ipc null follows the grid
    fixed = get_method_class("psr")(prior="p", teacher="t", max_ipc=20)
    assert fixed.pool_name(10) == fixed.pool_name(50) == a.pool_name(20)
    assert pool_key(pool_spec({**POOL}, 5)) != pool_key(pool_spec({**POOL, "m": 3}, 5))


def test_informativeness_definitions():
    logits = np.log(np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]))
    y = np.array([0, 1])
    np.testing.assert_allclose(informativeness(logits, y, "confidence"), [0.7, 1 / 3])
    np.testing.assert_allclose(informativeness(logits, y, "loss"), [-np.log(0.7), np.log(3)])
    ent = informativeness(logits, y, "entropy")
    assert ent[1] == pytest.approx(np.log(3)) and ent[0] < ent[1]


def test_kmeans_selection_takes_the_most_informative_of_each_cluster():
    feats = np.array([[1, 0], [1, 0.1], [1, -0.1], [0, 1], [0.1, 1], [-0.1, 1]], dtype=float)
    info = np.array([0.1, 0.9, 0.5, 0.3, 0.2, 0.8])
    assert select_class(feats, info, 2, "kmeans", seed=0).tolist() == [1, 5]
    # herding with no informativeness weight starts with the sample closest to the class mean
    feats = np.array([[1.0, 0], [0, 1.0], [0.7, 0.7], [1.0, 0.05]])
    first = select_class(feats, np.zeros(4), 1, "herding", seed=0, info_weight=0.0)
    assert first.tolist() == [2]
    boosted = select_class(feats, np.array([0, 0, 0, 10.0]), 1, "herding", 0, info_weight=5.0)
    assert boosted.tolist() == [3]


def test_ablations_behave_as_named(setup):
    data, _, _, _, arrays = setup
    ctx = _ctx(setup)
    base = {"prior": "p", "teacher": "t", "refine_steps": 0}
    rows = [np.flatnonzero(arrays["labels"] == c) for c in range(3)]
    first = get_method_class("psr")(**base, selection="first").condense(ctx, 2, 0)
    np.testing.assert_array_equal(
        first.images, arrays["images"][np.concatenate([r[:2] for r in rows])]
    )
    assert first.soft_labels.shape == (6, 3)
    np.testing.assert_allclose(first.soft_labels.sum(1), 1.0, rtol=1e-5)
    rnd = [
        get_method_class("psr")(**base, selection="random").condense(ctx, 2, s) for s in range(4)
    ]
    pool_rows = {arrays["images"][i].tobytes(): i for i in range(len(arrays["images"]))}
    picked = [sorted(pool_rows[im.tobytes()] for im in r.images) for r in rnd]
    assert all(np.bincount(arrays["labels"][p], minlength=3).tolist() == [2, 2, 2] for p in picked)
    assert len({tuple(p) for p in picked}) > 1  # the seed changes the random choice
    crit = get_method_class("psr")(**base).condense(ctx, 2, 0)
    assert all(im.tobytes() in pool_rows for im in crit.images)  # no refinement: pool images


def test_refinement_lowers_the_loss_and_proximity_keeps_latents_near(setup):
    data, prior, teacher, _, arrays = setup
    z0 = torch.from_numpy(arrays["noise"][:3])
    y = torch.from_numpy(arrays["labels"][:3])
    kw = {
        "steps": 6,
        "lr": 0.1,
        "temperature": 4.0,
        "label_mix": 1.0,
        "sampler_steps": 2,
        "guidance_scale": 2.0,
        "num_classes": 3,
    }
    z, x, hist = refine_latents(prior, teacher, z0, y, lam=0.0, **kw)
    assert hist[-1][0] < hist[0][0]
    assert x.shape == (3, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
    dist = []
    for lam in (0.0, 10.0, 1000.0):
        z, _, _ = refine_latents(prior, teacher, z0, y, lam=lam, **kw)
        dist.append(float((z - z0).pow(2).sum()))
    assert dist[0] > dist[1] > dist[2]


def test_exact_ipc_with_refinement(setup, tmp_path):
    data, prior, teacher, path, _ = setup
    folder = tmp_path / "prior"
    prior.unet.save_pretrained(folder / "unet")
    prior.scheduler().save_pretrained(folder / "scheduler")
    import json

    from ddbench.stages.priors import PRIOR_FORMAT, PRIOR_JSON

    info = {**prior.info, "format": PRIOR_FORMAT, "kind": "unet"}
    (folder / PRIOR_JSON).write_text(json.dumps(info))
    params = {"prior": "p", "teacher": "t", "refine_steps": 1, "diversity": "herding"}
    passed = check_method(
        "psr", params, data=data, ipcs=(1, 3), seeds=(0,),
        make_context=lambda d, ipc, seed: _ctx(setup, str(folder)),
    )  # fmt: skip
    assert "exact class-balanced IPC" in passed
    with pytest.raises(ValueError, match="fewer than IPC 5"):
        get_method_class("psr")(**params).condense(_ctx(setup, str(folder)), 5, 0)


# ---------------------------------------------------------------- workflow
def _snakemake(workdir: Path, config: Path, *targets: str, dry: bool = False, cores=1) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    args = ["--cores", str(cores), *(["-n"] if dry else []), *targets, "--quiet", "rules"]
    out = run_snakemake(workdir, config, *args, check=False, env=env, timeout=600, cwd=None)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def _config(ipcs):
    return {
        "datasets": {"digits": {"kind": "digits"}},
        "ipcs": ipcs,
        "seeds": [0],
        "device": "cpu",
        "threads": 1,
        "teachers": {"t": {"model": "convnet-d1-w8-in", "epochs": 1, "batch_size": 128}},
        "priors": {
            "p": {
                "kind": "unet",
                "block_out_channels": [8, 16],
                "norm_groups": 4,
                "epochs": 1,
                "max_images_per_class": 10,
                "num_train_timesteps": 50,
                "sample_steps": 2,
                "samples_per_class": 1,
            }
        },
        "scorers": {
            "dd": {
                "kind": "ddps",
                "prior": "p",
                "teacher": "t",
                "max_images_per_class": 6,
                "crops_per_image": 2,
                "timesteps": 2,
            },
        },  # fmt: skip
        "methods": {
            "ddps": {"kind": "ddps", "scorer": "dd", "k": 2, "top_clusters": 1},
            "psr": {
                "kind": "psr",
                "prior": "p",
                "teacher": "t",
                "m": 2,
                "max_ipc": 2,
                "steps": 2,
                "refine_steps": 1,
            },
        },  # fmt: skip
        "protocols": {"sl": {"preset": "sl", "epochs": 1, "teachers": ["t"]}},
        "students": {"s": {"model": "convnet-d1-w8-in"}},
        "reference": {"enabled": False},
    }


def test_adding_an_ipc_reuses_prior_pool_scores_and_clusters(tmp_path):
    c1, c2 = tmp_path / "c1.yaml", tmp_path / "c2.yaml"
    cfg = _config([1])
    c1.write_text(yaml.safe_dump(cfg))
    c2.write_text(yaml.safe_dump(_config([1, 2])))
    psr = get_method_class("psr")(**{k: v for k, v in cfg["methods"]["psr"].items() if k != "kind"})
    shared = [
        f"results/digits/pools/{psr.pool_name(1)}.h5",
        "results/digits/clusters/dd_dift-k2.h5",  # pulls the ddps scores, prior and teacher
    ]
    _snakemake(tmp_path, c1, *shared, cores=2)
    assert all((tmp_path / t).exists() for t in shared)
    sets = [f"results/digits/condensed/{m}/ipc{i}/s0.h5" for m in ("ddps", "psr") for i in (1, 2)]
    plan = _snakemake(tmp_path, c2, *sets, dry=True)
    table = plan.split("Job stats:")[1].split("Reasons")[0]
    counts = {
        ln.split()[0]: int(ln.split()[1])
        for ln in table.splitlines()
        if len(ln.split()) == 2 and ln.split()[1].isdigit()
    }
    # only the four cheap per-IPC selections: no prior, pool, scores, clusters or teacher job
    assert counts == {"condense": 4, "total": 4}, plan
