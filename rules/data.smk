rule prepare_dataset:
    output:
        "resources/datasets/{dataset}.h5",
    params:
        spec=dataset_spec,
    log:
        "logs/{dataset}/prepare_dataset.log",
    benchmark:
        "benchmarks/{dataset}/prepare_dataset.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(30),
    conda:
        "../envs/data.yaml"
    script:
        "../scripts/prepare_dataset.py"
