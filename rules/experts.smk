# Expert trajectories: trained once per dataset and name (no IPC, no seed of the grid), read by
# every IPC and seed of the trajectory-matching methods that name them (`mtt`, `datm`).


rule train_experts:
    input:
        dataset=W.dataset_file,
    output:
        directory(pattern("experts")),
    log:
        "logs/{dataset}/experts/{experts}.log",
    benchmark:
        "benchmarks/{dataset}/experts/{experts}.tsv"
    wildcard_constraints:
        experts="[A-Za-z0-9_]+",
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "train_experts"),
        runtime=scaled(240),
        gpu=GPU,
    params:
        spec=W.experts_spec,
        device=config["device"],
    script:
        "../scripts/train_experts.py"
