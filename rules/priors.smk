# Diffusion priors: trained (unet) or recorded (stable_diffusion) once per dataset, reused by
# every IPC and seed of the methods that name them (`gen`, `ddps`, `psr`).


rule train_prior:
    input:
        dataset=W.dataset_file,
    output:
        directory(pattern("prior")),
    log:
        "logs/{dataset}/priors/{prior}.log",
    benchmark:
        "benchmarks/{dataset}/priors/{prior}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "train_prior"),
        runtime=scaled(240),
        gpu=GPU,
    params:
        spec=prior_spec_param(config),
        device=config["device"],
    script:
        "../scripts/train_prior.py"
