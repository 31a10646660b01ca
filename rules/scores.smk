rule record_dynamics:
    input:
        dataset=dataset_file,
    output:
        "results/{dataset}/scores/{scorer}.h5",
    log:
        "logs/{dataset}/scores/{scorer}.log",
    benchmark:
        "benchmarks/{dataset}/scores/{scorer}.tsv"
    conda:
        "../envs/torch.yaml"
    priority: 50
    threads: config["threads"]
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        spec=scorer_spec,
        device=config["device"],
    script:
        "../scripts/record_dynamics.py"
