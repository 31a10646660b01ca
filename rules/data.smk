rule prepare_dataset:
    output:
        pattern("dataset"),
    log:
        "logs/{dataset}/prepare_dataset.log",
    benchmark:
        "benchmarks/{dataset}/prepare_dataset.tsv"
    priority: 50
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=dataset_mem_mb(config, "prepare_dataset"),
        runtime=scaled(30),
    params:
        spec=W.dataset_spec,
    script:
        "../scripts/prepare_dataset.py"
