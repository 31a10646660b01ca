"""Jobs pay for their imports: stages that need neither timm nor diffusers must not load them."""

import subprocess
import sys

import pytest

HEAVY = ("timm", "diffusers", "transformers")


def loaded_after(modules: str) -> set[str]:
    code = f"import sys, {modules}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "modules",
    [
        "ddbench.evaluate",
        "ddbench.teachers",
        "ddbench.dynamics",
        "ddbench.features",
        "ddbench.condense, ddbench.methods",
    ],
)
def test_stage_modules_do_not_import_timm_or_diffusers(modules):
    loaded = loaded_after(modules)
    assert not loaded & set(HEAVY), f"{modules} loads {loaded & set(HEAVY)}"


def test_unet_prior_jobs_do_not_import_transformers():
    # only a Stable Diffusion prior needs the text encoder
    loaded = loaded_after("ddbench.diffusion, ddbench.ddps, ddbench.psr, ddbench.methods")
    assert "transformers" not in loaded


def test_workflow_parse_and_coreset_selection_do_not_import_torch():
    # rules/common.smk imports these on every parse; coreset selection needs no torch either
    loaded = loaded_after(
        "ddbench.config, ddbench.methods, ddbench.protocols, ddbench.condense, ddbench.tables,"
        " ddbench.priors"
    )
    assert "torch" not in loaded
