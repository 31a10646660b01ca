"""ddps and psr through a Stable Diffusion prior (VAE latent space), on a tiny local pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ddbench.stages.ddps import compute_patch_scores
from ddbench.stages.diffusion import build_prior, load_prior
from ddbench.stages.psr import refine_latents, sample_pool
from ddbench.stages.teachers import make_model
from ddbench.testing import tiny_dataset


@pytest.fixture(scope="module")
def sd_setup(tmp_path_factory):
    """A tiny random Stable Diffusion folder built here, its prior, 3 classes of 8x8 images."""
    from ddbench.stages.tiny_sd import build_tiny_stable_diffusion

    torch.set_num_threads(1)
    data = tiny_dataset(num_classes=3, per_class=4, image_size=8)
    folder = build_tiny_stable_diffusion(tmp_path_factory.mktemp("sd") / "tiny_sd", seed=0)
    out = tmp_path_factory.mktemp("sdprior") / "sd"
    build_prior(
        data,
        {
            "kind": "stable_diffusion",
            "path": str(folder),
            "sample_steps": 2,
            "samples_per_class": 1,
        },
        out,
        progress=False,
    )
    torch.manual_seed(0)
    teacher = make_model({"model": "convnet-d1-w8-in"}, data).eval()
    return data, load_prior(out), teacher


def test_stable_diffusion_ddps_scores_patches_in_latent_space(sd_setup):
    data, prior, teacher = sd_setup
    assert prior.kind == "stable_diffusion"
    assert tuple(prior.latent_shape) != tuple(prior.image_shape)  # VAE latents, not pixels
    spec = {"max_images_per_class": 2, "crops_per_image": 3, "keep_per_image": 1, "timesteps": 2}
    arr, _ = compute_patch_scores(data, prior, teacher, "sd", spec)
    scores = arr["patch_scores"]
    assert scores.shape == (6, 3) and np.isfinite(scores).all()
    # the text condition changes the noise prediction of a random pipeline: scores are not all 0
    assert np.abs(scores).max() > 0
    assert arr["dift_features"].shape[:2] == (6, 3)


def test_stable_diffusion_psr_pool_and_refinement_use_vae_latents(sd_setup):
    data, prior, teacher = sd_setup
    pool = sample_pool(
        prior,
        data.num_classes,
        {"prior": "sd", "m": 1, "max_ipc": 1, "guidance_scale": 2.0, "steps": 2, "pool_seed": 0},
    )
    assert pool["images"].shape == (3, 1, 8, 8)
    assert pool["latents"].shape == (3, *prior.latent_shape)  # refined in VAE latent space
    z0 = torch.from_numpy(pool["latents"])
    y = torch.from_numpy(pool["labels"])
    z, x, hist = refine_latents(
        prior,
        teacher,
        z0,
        y,
        steps=3,
        lr=0.1,
        lam=0.0,
        temperature=4.0,
        label_mix=1.0,
        sampler_steps=2,
        guidance_scale=2.0,
        num_classes=3,
    )
    assert hist[-1][1] < hist[0][1]  # the teacher's KL to the target falls
    assert not torch.equal(z, z0)
    assert x.shape == (3, 1, 8, 8) and float(x.min()) >= 0 and float(x.max()) <= 1
