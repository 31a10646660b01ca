# Diffusion priors: trained (unet) or recorded (stable_diffusion) once per dataset, reused by
# every IPC and seed of the methods that name them (`gen`, `ddps`, `psr`).


wildcard_constraints:
    prior="[A-Za-z0-9_]+",


def prior_spec(wildcards):
    """The prior's spec; a Stable Diffusion source's fingerprint joins it, so a changed folder reruns."""
    from ddbench.priors import sd_fingerprint

    spec = dict(config["priors"][wildcards.prior])
    if spec["kind"] == "stable_diffusion":
        spec["source_fingerprint"] = sd_fingerprint(spec["path"])
    return as_json(spec)


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
        spec=prior_spec,
        device=config["device"],
    script:
        "../scripts/train_prior.py"
