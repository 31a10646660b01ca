rule train_teacher:
    input:
        dataset=dataset_file,
    output:
        checkpoint="results/{dataset}/teachers/{teacher}.pt",
        summary="results/{dataset}/teachers/{teacher}.json",
    log:
        "logs/{dataset}/teachers/{teacher}.log",
    benchmark:
        "benchmarks/{dataset}/teachers/{teacher}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(120),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        spec=teacher_spec,
        device=config["device"],
    script:
        "../scripts/train_teacher.py"


rule extract_features:
    input:
        dataset=dataset_file,
        teacher="results/{dataset}/teachers/{teacher}.pt",
    output:
        "results/{dataset}/features/{teacher}.h5",
    log:
        "logs/{dataset}/features/{teacher}.log",
    benchmark:
        "benchmarks/{dataset}/features/{teacher}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    params:
        device=config["device"],
    script:
        "../scripts/extract_features.py"
