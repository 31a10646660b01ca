# One job per set, or with `group_seeds: true` the sets of every seed of a cell in one job
# (same per-seed files).


rule quality:
    input:
        unpack(W.quality_inputs),
    output:
        metrics=W.per_seed(pattern("quality")),
        features=W.per_seed(pattern("quality_features")),
    log:
        W.seed_log("logs/{dataset}/quality/{method}/ipc{ipc}/s{seed}.log"),
    benchmark:
        W.seed_log("benchmarks/{dataset}/quality/{method}/ipc{ipc}/s{seed}.tsv")
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=dataset_mem_mb(config, "quality"),
        runtime=W.seed_runtime(30),
        gpu=GPU,
    params:
        **W.grouped_params(),
        teacher=W.quality_teacher,
        k=config["quality"]["k"],
        max_real_per_class=config["quality"]["max_real_per_class"],
        device=config["device"],
    script:
        "../scripts/quality.py"
