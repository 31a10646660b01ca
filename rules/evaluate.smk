# Grouped evaluation (`group_seeds: true`): one job per cell trains every seed in turn and
# writes the same per-seed metrics files as the per-seed rule below.
if config["group_seeds"]:

    rule evaluate_seeds:
        input:
            unpack(evaluate_seeds_inputs),
        output:
            metrics=seed_files(
                "results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.json"
            ),
        log:
            "logs/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/seeds.log",
        benchmark:
            "benchmarks/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/seeds.tsv"
        conda:
            "../envs/torch.yaml"
        threads: config["eval_threads"]
        resources:
            mem_mb=scaled(4000),
            runtime=scaled(120 * len(config["seeds"])),
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            protocol=protocol_spec,
            student=student_spec,
            seeds=config["seeds"],
            checkpoint=checkpoint_path,
            device=config["device"],
        script:
            "../scripts/evaluate.py"

else:

    rule evaluate:
        input:
            unpack(evaluate_inputs),
        output:
            metrics="results/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.json",
        log:
            "logs/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.log",
        benchmark:
            "benchmarks/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.tsv"
        conda:
            "../envs/torch.yaml"
        threads: config["eval_threads"]
        resources:
            mem_mb=scaled(4000),
            runtime=scaled(120),
            gpu=1 if config["device"] != "cpu" else 0,
        params:
            protocol=protocol_spec,
            student=student_spec,
            checkpoint=checkpoint_path,
            device=config["device"],
        script:
            "../scripts/evaluate.py"


rule evaluate_full_train:
    input:
        unpack(reference_inputs),
    output:
        metrics="results/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.json",
    log:
        "logs/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["eval_threads"]
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        protocol=protocol_spec,
        student=student_spec,
        reference_epochs=reference_epochs,
        checkpoint=checkpoint_path,
        device=config["device"],
    script:
        "../scripts/evaluate.py"
