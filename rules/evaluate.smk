# One job per seed, or with `group_seeds: true` one job per cell that trains every seed in turn
# and writes the same per-seed metrics files (outputs, log and params from the workflow plan).


rule evaluate:
    input:
        unpack(W.evaluate_inputs),
    output:
        metrics=W.per_seed(pattern("eval")),
    log:
        W.seed_log(
            "logs/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.log"
        ),
    benchmark:
        W.seed_log(
            "benchmarks/{dataset}/eval/{protocol}/{student}/{method}/ipc{ipc}/s{seed}.tsv"
        )
    conda:
        "../envs/torch.yaml"
    threads: config["eval_threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "evaluate"),
        runtime=W.seed_runtime(120),
        gpu=GPU,
    params:
        **W.grouped_params(),
        protocol=W.protocol_spec,
        student=W.student_spec,
        checkpoint=W.checkpoint_path,
        device=config["device"],
    script:
        "../scripts/evaluate.py"


rule evaluate_full_train:
    input:
        unpack(W.reference_inputs),
    output:
        metrics=pattern("reference"),
    log:
        "logs/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/eval/{protocol}/{student}/full_train/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: config["eval_threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "evaluate_full_train"),
        runtime=scaled(240),
        gpu=GPU,
    params:
        protocol=W.protocol_spec,
        student=W.student_spec,
        reference_epochs=W.reference_epochs,
        checkpoint=W.checkpoint_path,
        device=config["device"],
    script:
        "../scripts/evaluate.py"
