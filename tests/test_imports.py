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
        "ddbench.training.evaluate",
        "ddbench.stages.teachers",
        "ddbench.stages.dynamics",
        "ddbench.stages.features",
        "ddbench.methods.condense, ddbench.methods",
    ],
)
def test_stage_modules_do_not_import_timm_or_diffusers(modules):
    loaded = loaded_after(modules)
    assert not loaded & set(HEAVY), f"{modules} loads {loaded & set(HEAVY)}"


def test_unet_prior_jobs_do_not_import_transformers():
    # only a Stable Diffusion prior needs the text encoder
    loaded = loaded_after(
        "ddbench.stages.diffusion, ddbench.stages.ddps, ddbench.stages.psr, ddbench.methods"
    )
    assert "transformers" not in loaded


def test_workflow_parse_and_coreset_selection_do_not_import_torch():
    # rules/common.smk imports these on every parse; coreset selection needs no torch either
    loaded = loaded_after(
        "ddbench.config, ddbench.methods, ddbench.training.protocols, ddbench.methods.condense, ddbench.analysis.tables,"
        " ddbench.stages.priors"
    )
    assert "torch" not in loaded


def test_moved_modules_still_import_under_their_old_names():
    code = (
        "import ddbench.quality, ddbench.analysis.quality as q, ddbench.engine as e\n"
        "from ddbench.sources import load_source\n"
        "from ddbench.data.sources import load_source as ls\n"
        "assert ddbench.quality is q and e.__name__ == 'ddbench.training.engine' and ls is load_source\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
