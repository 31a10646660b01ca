# Diffusion-driven selection: IPC-independent targets of ddps (patch clusters) and psr (pool).
# The ddps patch scores themselves are a scorer target (rules/scores.smk, kind ddps).


rule cluster_patches:
    input:
        unpack(W.clusters_inputs),
    output:
        pattern("clusters"),
    log:
        "logs/{dataset}/clusters/{extractor}-k{k}.log",
    benchmark:
        "benchmarks/{dataset}/clusters/{extractor}-k{k}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=dataset_mem_mb(config, "cluster_patches"),
        runtime=scaled(60),
    params:
        spec=W.clusters_spec,
    script:
        "../scripts/cluster_patches.py"


rule generate_pool:
    input:
        unpack(W.pool_inputs),
    output:
        pattern("pool"),
    log:
        "logs/{dataset}/pools/{pool}.log",
    benchmark:
        "benchmarks/{dataset}/pools/{pool}.tsv"
    priority: 40
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "generate_pool"),
        runtime=scaled(240),
        gpu=GPU,
    params:
        spec=W.pool_spec,
        device=config["device"],
    script:
        "../scripts/generate_pool.py"
