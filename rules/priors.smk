# Diffusion priors: trained (unet) or recorded (stable_diffusion) once per dataset, reused by
# every IPC and seed of the methods that name them (`gen`, `ddps`, `psr`).
from ddbench.priors import prior_spec_param


wildcard_constraints:
    prior="[A-Za-z0-9_]+",


rule train_prior:
    input:
        dataset=dataset_file,
    output:
        directory("results/{dataset}/priors/{prior}"),
    log:
        "logs/{dataset}/priors/{prior}.log",
    benchmark:
        "benchmarks/{dataset}/priors/{prior}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(240),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        spec=prior_spec_param(config),
        device=config["device"],
    script:
        "../scripts/train_prior.py"
