rule quality:
    input:
        unpack(quality_inputs),
    output:
        metrics="results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.json",
        features="results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.h5",
    log:
        "logs/{dataset}/quality/{method}/ipc{ipc}/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/quality/{method}/ipc{ipc}/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        teacher=quality_teacher,
        k=config["quality"]["k"],
        max_real_per_class=config["quality"]["max_real_per_class"],
        device=config["device"],
    script:
        "../scripts/quality.py"
