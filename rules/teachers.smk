rule train_teacher:
    input:
        dataset=W.dataset_file,
    output:
        checkpoint=pattern("teacher"),
        summary=pattern("teacher_info"),
    log:
        "logs/{dataset}/teachers/{teacher}.log",
    benchmark:
        "benchmarks/{dataset}/teachers/{teacher}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "train_teacher"),
        runtime=scaled(120),
        gpu=GPU,
    params:
        spec=W.teacher_spec,
        device=config["device"],
    script:
        "../scripts/train_teacher.py"


rule extract_features:
    input:
        dataset=W.dataset_file,
        teacher=W.teacher_file,
    output:
        pattern("features"),
    log:
        "logs/{dataset}/features/{teacher}.log",
    benchmark:
        "benchmarks/{dataset}/features/{teacher}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "extract_features"),
        runtime=scaled(30),
    params:
        device=config["device"],
    script:
        "../scripts/extract_features.py"
