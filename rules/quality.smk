# `group_seeds: true`: the sets of every seed of a cell in one job (same per-seed files).
if config["group_seeds"]:

    rule quality_seeds:
        input:
            unpack(quality_seeds_inputs),
        output:
            metrics=seed_files(
                "results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.json"
            ),
            features=seed_files(
                "results/{dataset}/quality/{method}/ipc{ipc}/s{seed}.h5"
            ),
        log:
            "logs/{dataset}/quality/{method}/ipc{ipc}/seeds.log",
        benchmark:
            "benchmarks/{dataset}/quality/{method}/ipc{ipc}/seeds.tsv"
        conda:
            "../envs/torch.yaml"
        threads: 1
        resources:
            mem_mb=scaled(4000),
            runtime=scaled(30 * len(config["seeds"])),
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            teacher=quality_teacher,
            k=config["quality"]["k"],
            max_real_per_class=config["quality"]["max_real_per_class"],
            seeds=config["seeds"],
            device=config["device"],
        script:
            "../scripts/quality.py"

else:

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
