# ddbench: dataset distillation and coreset selection, every cell of the grid a file target.
# Run:    snakemake --cores all                 (config/config.yaml)
# Report: snakemake --report results/report.html
import sys

from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


# the workflow's own package plans the DAG (rules/common.smk imports it); every script puts
# the same src/ first on its path, and ddbench.runinfo.start_job checks it ran that copy
sys.path.insert(0, str(Path(workflow.basedir) / "src"))


include: "rules/common.smk"


validate(config, "config/schemas/config.schema.yaml")


report: "reports/workflow.rst"


containerized: config["container"]


include: "rules/data.smk"
include: "rules/teachers.smk"
include: "rules/priors.smk"
include: "rules/experts.smk"
include: "rules/scores.smk"
include: "rules/diffsel.smk"
include: "rules/condense.smk"
include: "rules/evaluate.smk"
include: "rules/quality.smk"
include: "rules/tm_loss.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        W.all_targets(),
