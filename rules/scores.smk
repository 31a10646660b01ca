rule record_dynamics:
    input:
        dataset=dataset_file,
    output:
        "results/{dataset}/scores/{scorer}.h5",
    params:
        spec=scorer_spec,
        device=config["device"],
    log:
        "logs/{dataset}/scores/{scorer}.log",
    benchmark:
        "benchmarks/{dataset}/scores/{scorer}.tsv"
    threads: config["threads"]
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=1 if config["device"] != "cpu" else 0,
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/record_dynamics.py"
