# Adapters between the rule files and the workflow layer (ddbench.workflow): every target list,
# input and parameter comes from `W`, a Plan of the validated config that is unit-tested
# without Snakemake. No torch here: every job re-parses this file.
from ddbench.config import ConfigError, check_config_files, validate_config
from ddbench.stages.priors import prior_spec_param
from ddbench.workflow import Plan, pattern, scaled, target_path
from ddbench.workflow.resources import dataset_mem_mb

# Every parse (jobs re-parse too): no data file is read. The main process also refuses
# duplicate keys in the config files and `device: cuda` without a GPU (jobs may run elsewhere).
try:
    if workflow.is_main_process:
        check_config_files(workflow.configfiles)
    validate_config(config, read_sources=False, check_device=workflow.is_main_process)
except ConfigError as exc:
    raise WorkflowError(str(exc)) from None

# The config is fixed for the run: one plan, its lists computed once.
W = Plan(config, basedir=workflow.basedir)
GPU = 1 if config["device"] != "cpu" else 0


wildcard_constraints:
    dataset="[A-Za-z0-9_]+",
    teacher="[A-Za-z0-9_]+",
    scorer="[A-Za-z0-9_]+",
    method="[A-Za-z0-9_]+",
    protocol="[A-Za-z0-9_]+",
    student="[A-Za-z0-9_]+",
    prior="[A-Za-z0-9_]+",
    ipc=r"\d+",
    seed=r"\d+",
    extractor="[A-Za-z0-9_]+",
    k=r"\d+",
    pool="[A-Za-z0-9_]+",
