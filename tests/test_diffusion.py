"""Diffusion priors: UNet training and round trip, DDIM + guidance, `gen`, offline Stable Diffusion, workflow."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_snakemake

from ddbench.config import ConfigError, validate_config
from ddbench.data.datasets import ImageData
from ddbench.data.h5io import DataFileError
from ddbench.data.sources import _load_digits
from ddbench.methods import Context, get_method_class
from ddbench.stages.diffusion import build_prior, drop_labels, load_prior, train_unet_prior

ROOT = Path(__file__).resolve().parents[1]
TINY_UNET = {
    "kind": "unet",
    "block_out_channels": [16, 32],
    "epochs": 4,
    "max_images_per_class": 30,
    "batch_size": 64,
    "lr": 0.002,
    "sample_steps": 4,
    "samples_per_class": 2,
}


@pytest.fixture(scope="module")
def digits() -> ImageData:
    raw = _load_digits({})
    return ImageData(
        name="digits",
        train_images=raw.train_images,
        train_labels=raw.train_labels,
        test_images=raw.test_images,
        test_labels=raw.test_labels,
        classes=raw.classes,
        mean=[0.3],
        std=[0.4],
    )


@pytest.fixture(scope="module")
def unet_prior(digits, tmp_path_factory) -> tuple[Path, dict]:
    """A tiny class-conditional UNet trained for a few steps on 30 digits per class."""
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("prior") / "tiny"
    info = train_unet_prior(digits, TINY_UNET, out, seed=0, progress=False)
    return out, info


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory) -> Path:
    from ddbench.stages.tiny_sd import build_tiny_stable_diffusion

    return build_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny_sd", seed=0)


@pytest.fixture(scope="module")
def sd_prior_dir(digits, sd_folder, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sdprior") / "sd"
    spec = {"kind": "stable_diffusion", "path": str(sd_folder), "sample_steps": 2}
    spec["samples_per_class"] = 1
    build_prior(digits, spec, out)
    return out


def condense_gen(data, prior_dir, ipc, seed, **params):
    method = get_method_class("gen")(prior=prior_dir.name, steps=4, **params)
    ctx = Context(data=data, dataset=data.name, extras={"prior_path": str(prior_dir)})
    cset = method.condense(ctx, ipc, seed)
    cset.validate(data.num_classes, (data.in_chans, data.image_size, data.image_size))
    return cset


# --------------------------------------------------------------------------- unet prior
def test_unet_prior_training_lowers_the_loss(unet_prior):
    _, info = unet_prior
    curve = info["loss"]["epoch_mean"]
    assert len(curve) == TINY_UNET["epochs"]
    assert curve[-1] < 0.8 * curve[0]
    assert info["n_train_images"] == 300  # max_images_per_class x 10 classes


def test_unet_prior_folder_round_trips(unet_prior, digits):
    out, info = unet_prior
    assert {"prior.json", "samples.png", "unet", "scheduler"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "prior.json").read_text()) == json.loads(json.dumps(info))
    prior = load_prior(out)
    assert prior.kind == "unet" and prior.num_classes == 10
    assert prior.latent_shape == prior.image_shape == (1, 8, 8)
    assert sum(p.numel() for p in prior.unet.parameters()) == info["n_params"]
    x0 = prior.encode(torch.from_numpy(digits.train_float_subset(range(4))))
    assert torch.allclose(prior.decode(x0), torch.from_numpy(digits.train_float_subset(range(4))))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    t = torch.full((4,), 300)
    a = load_prior(out).predict_noise(prior.add_noise(x0, noise, t), t, torch.arange(4))
    b = prior.predict_noise(prior.add_noise(x0, noise, t), t, torch.arange(4))
    assert torch.equal(a, b)  # two loads, identical weights


def test_incomplete_prior_folder_names_the_file(unet_prior, tmp_path):
    out, _ = unet_prior
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(DataFileError, match="weights"):
        load_prior(broken)
    (broken / "prior.json").write_text("{not json")
    with pytest.raises(DataFileError, match=r"prior\.json"):
        load_prior(broken)
    (broken / "prior.json").unlink()
    with pytest.raises(DataFileError, match=r"prior\.json is missing"):
        load_prior(broken)


def test_label_dropout_uses_the_null_class(unet_prior):
    labels = torch.arange(10).repeat(100)
    dropped = drop_labels(labels, 0.3, 10, torch.Generator().manual_seed(0))
    null = dropped == 10
    assert 0.25 < null.float().mean() < 0.35
    assert torch.equal(dropped[~null], labels[~null])  # kept labels unchanged
    assert not (drop_labels(labels, 0.0, 10, torch.Generator()) == 10).any()
    _, info = unet_prior
    assert 0.0 < info["label_dropout_fraction"] < 0.3  # training saw null labels (p = 0.1)


def test_guidance_scale_changes_samples(unet_prior):
    prior = load_prior(unet_prior[0])
    labels = torch.arange(10)
    noise = torch.randn((10, *prior.latent_shape), generator=torch.Generator().manual_seed(1))
    runs = {
        s: prior.sample(labels, steps=4, guidance_scale=s, noise=noise) for s in (0.0, 1.0, 3.0)
    }
    assert not torch.allclose(runs[0.0], runs[3.0])
    assert not torch.allclose(runs[1.0], runs[3.0])
    again = prior.sample(labels, steps=4, guidance_scale=3.0, noise=noise)
    assert torch.equal(again, runs[3.0])  # eta = 0: deterministic given the noise
    # s = 0 ignores the labels entirely
    other = prior.sample(labels.flip(0), steps=4, guidance_scale=0.0, noise=noise)
    assert torch.equal(other, runs[0.0])


def test_sample_keeps_the_graph_to_the_noise(unet_prior):
    prior = load_prior(unet_prior[0])
    noise = torch.randn((2, *prior.latent_shape), requires_grad=True)
    z = prior.sample(torch.tensor([0, 1]), steps=2, guidance_scale=2.0, noise=noise, grad=True)
    prior.decode(z).sum().backward()
    assert noise.grad is not None and noise.grad.abs().sum() > 0


def test_dift_features_of_up_blocks(unet_prior):
    prior = load_prior(unet_prior[0])
    x = torch.randn(3, *prior.latent_shape)
    t = torch.full((3,), 160)
    names = prior.dift_blocks()
    coarse = prior.features(x, t, torch.arange(3), names[0])
    fine = prior.features(x, t, torch.arange(3), 1)
    # up_blocks.0 ends with an upsampler: 32 channels at 8x8; the last block keeps 16 at 8x8
    assert coarse.shape == (3, 32, 8, 8) and fine.shape == (3, 16, 8, 8)
    assert not torch.allclose(coarse[:, :16], fine)
    with pytest.raises(ValueError, match="unknown DIFT block"):
        prior.features(x, t, None, "mid")


# --------------------------------------------------------------------------- gen
def test_gen_exact_ipc_per_class_and_seeding(unet_prior, digits):
    out, _ = unet_prior
    a = condense_gen(digits, out, ipc=3, seed=0)
    assert np.bincount(a.labels, minlength=10).tolist() == [3] * 10
    assert a.images.shape == (30, 1, 8, 8) and a.images.dtype == np.float32
    assert 0.0 <= a.images.min() and a.images.max() <= 1.0
    b = condense_gen(digits, out, ipc=3, seed=0)
    c = condense_gen(digits, out, ipc=3, seed=1)
    assert np.array_equal(a.images, b.images)
    assert not np.allclose(a.images, c.images)


# --------------------------------------------------------------------------- Stable Diffusion
def test_stable_diffusion_loads_offline(sd_prior_dir, sd_folder, monkeypatch):
    info = json.loads((sd_prior_dir / "prior.json").read_text())
    assert info["kind"] == "stable_diffusion" and info["source_path"] == str(sd_folder.resolve())
    assert info["prompts"][3] == "an image of 3"
    assert (sd_prior_dir / "samples.png").stat().st_size > 0
    size = sum(p.stat().st_size for p in sd_prior_dir.rglob("*") if p.is_file())
    assert size < 100_000  # the prior records the source folder, it does not copy it

    def no_network(*args, **kwargs):
        raise AssertionError("a Stable Diffusion prior tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    prior = load_prior(sd_prior_dir)
    assert prior.kind == "stable_diffusion"
    assert prior.latent_shape == (4, 8, 8) and prior.resolution == 16


def test_stable_diffusion_encode_decode_and_conditioning(sd_prior_dir, digits):
    prior = load_prior(sd_prior_dir)
    images = torch.from_numpy(digits.train_float_subset(range(3)))
    z = prior.encode(images)
    assert z.shape == (3, 4, 8, 8)
    back = prior.decode(z)
    assert back.shape == (3, 1, 8, 8) and 0 <= back.min() and back.max() <= 1
    t = torch.full((3,), 500)
    cond = prior.predict_noise(z, t, torch.tensor([0, 1, 2]))
    uncond = prior.predict_noise(z, t, None)
    assert cond.shape == z.shape
    assert not torch.allclose(cond, uncond)
    other = prior.predict_noise(z, t, torch.tensor([5, 5, 5]))
    assert not torch.allclose(cond, other)  # different class prompts condition differently


def test_stable_diffusion_gen_ipc1(sd_prior_dir, digits):
    cset = condense_gen(digits, sd_prior_dir, ipc=1, seed=0, guidance_scale=3.0)
    assert cset.labels.tolist() == list(range(10))
    assert cset.images.shape == (10, 1, 8, 8)


def test_stable_diffusion_source_checks(sd_folder, sd_prior_dir, digits, tmp_path):
    config = base_config()
    config["priors"] = {"sd": {"kind": "stable_diffusion", "path": str(tmp_path / "nowhere")}}
    with pytest.raises(ConfigError, match=r"priors\.sd\.path: .*does not exist"):
        validate_config(config)
    partial = tmp_path / "partial"
    shutil.copytree(sd_folder, partial)
    shutil.rmtree(partial / "vae")
    config["priors"]["sd"]["path"] = str(partial)
    with pytest.raises(ConfigError, match=r"priors\.sd\.path: .*vae"):
        validate_config(config)
    config["priors"]["sd"] = {"kind": "stable_diffusion", "path": str(sd_folder)}
    config["priors"]["sd"]["prompt_template"] = "a photo"
    with pytest.raises(ConfigError, match=r"priors\.sd\.prompt_template"):
        validate_config(config)
    # the recorded source changed after the prior was built: a clear error, not other weights
    moved = tmp_path / "prior_copy"
    shutil.copytree(sd_prior_dir, moved)
    info = json.loads((moved / "prior.json").read_text())
    info["source_path"] = str(partial)
    (moved / "prior.json").write_text(json.dumps(info))
    with pytest.raises(DataFileError, match="unusable"):
        load_prior(moved)


def test_stable_diffusion_example_config_validates(sd_folder):
    config = yaml.safe_load((ROOT / "config/examples/stable_diffusion.yaml").read_text())
    config["priors"]["sd"]["path"] = str(sd_folder)
    validate_config(config, check_sources=True)
    assert config["priors"]["sd"]["resolution"] is None  # schema default filled in
    assert {m["prior"] for m in config["methods"].values() if m["kind"] == "gen"} == {
        "unet_small",
        "sd",
    }


# --------------------------------------------------------------------------- config
def base_config() -> dict:
    return {
        "datasets": {"digits": {"kind": "digits"}},
        "ipcs": [1, 2],
        "seeds": [0],
        "device": "cpu",
        "threads": 1,
        "priors": {
            "tiny": {
                **{k: v for k, v in TINY_UNET.items() if k != "max_images_per_class"},
                "epochs": 1,
                "max_images_per_class": 10,
            }
        },
        "methods": {"gen": {"kind": "gen", "prior": "tiny", "steps": 4}},
        "protocols": {"hl": {"preset": "hl", "epochs": 2, "batch_size": 64}},
        "students": {"convnet": {"model": "convnet-d2-w16-in"}},
        "reference": {"enabled": False},
    }


def test_priors_config_defaults_and_errors():
    config = validate_config(base_config())
    assert config["priors"]["tiny"]["label_dropout"] == 0.1
    assert config["methods"]["gen"]["guidance_scale"] == 2.0
    bad = base_config()
    bad["priors"]["tiny"]["dropout"] = 0.2
    with pytest.raises(ConfigError, match=r"priors\.tiny: unknown key\(s\) 'dropout'"):
        validate_config(bad)
    bad = base_config()
    bad["priors"]["tiny"]["kind"] = "gan"
    with pytest.raises(ConfigError, match=r"priors\.tiny\.kind"):
        validate_config(bad)
    bad = base_config()
    bad["methods"]["gen"]["prior"] = "missing"
    with pytest.raises(
        ConfigError, match=r"methods\.gen\.prior: 'missing' is not a configured prior"
    ):
        validate_config(bad)
    bad = base_config()
    bad["priors"]["tiny"]["norm_groups"] = 5
    with pytest.raises(ConfigError, match=r"priors\.tiny\.block_out_channels"):
        validate_config(bad)


# --------------------------------------------------------------------------- workflow
@pytest.mark.workflow
def test_workflow_builds_the_prior_once(tmp_path):
    config = base_config()
    config["ipcs"] = [1]
    cfg = tmp_path / "config.yaml"
    cfg.write_text(yaml.safe_dump(config))
    run_snakemake(tmp_path, cfg, "--cores", "1", "results/digits/condensed/gen/ipc1/s0.h5")
    prior_dir = tmp_path / "results/digits/priors/tiny"
    info = json.loads((prior_dir / "prior.json").read_text())
    assert info["kind"] == "unet" and info["dataset"] == "digits"
    assert (prior_dir / "samples.png").stat().st_size > 0
    assert (tmp_path / "benchmarks/digits/priors/tiny.tsv").exists()
    assert (tmp_path / "results/digits/condensed/gen/ipc1/s0.h5").exists()

    more = copy.deepcopy(config)
    more["ipcs"] = [1, 2]
    cfg.write_text(yaml.safe_dump(more))
    dry = run_snakemake(tmp_path, cfg, "-n", "--cores", "1")
    rules = re.findall(r"^(?:local)?rule (\w+):", dry.stdout, flags=re.M)
    assert "condense" in rules and "train_prior" not in rules
    changed = copy.deepcopy(more)
    changed["priors"]["tiny"]["lr"] = 0.001
    cfg.write_text(yaml.safe_dump(changed))
    dry = run_snakemake(tmp_path, cfg, "-n", "--cores", "1")
    assert "train_prior" in re.findall(r"^(?:local)?rule (\w+):", dry.stdout, flags=re.M)


def test_prior_folder_records_a_manifest_that_verify_checks(unet_prior, tmp_path):
    import shutil

    from ddbench.analysis.verify import _check_prior

    out, info = unet_prior
    assert "samples.png" in info["files"] and any(k.startswith("unet/") for k in info["files"])
    folder = tmp_path / "results/digits/priors/tiny"
    shutil.copytree(out, folder)
    assert _check_prior(folder) == ("", "")
    weights = next(p for p in (folder / "unet").iterdir() if p.suffix != ".json")
    weights.write_bytes(weights.read_bytes()[:-16])
    status, reason = _check_prior(folder)
    assert status == "corrupt" and weights.name in reason
    weights.unlink()
    status, reason = _check_prior(folder)
    assert status == "corrupt" and "missing" in reason


def test_prior_training_that_diverges_is_an_error_and_writes_nothing(digits, tmp_path):
    from ddbench.errors import TrainingDivergedError

    spec = {**TINY_UNET, "epochs": 2, "max_images_per_class": 10, "lr": 1e12}
    out = tmp_path / "prior"
    with pytest.raises(TrainingDivergedError, match=r"prior training diverged: loss is .* at step"):
        train_unet_prior(digits, spec, out, seed=0, progress=False)
    assert not out.exists()
