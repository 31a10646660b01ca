rule compute_scores:
    input:
        unpack(scorer_inputs),
    output:
        "results/{dataset}/scores/{scorer}.h5",
    log:
        "logs/{dataset}/scores/{scorer}.log",
    benchmark:
        "benchmarks/{dataset}/scores/{scorer}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=scaled(6000),
        runtime=scaled(240),
        gpu=1 if config["device"] != "cpu" else 0,
    params:
        spec=scorer_spec,
        device=config["device"],
    script:
        "../scripts/compute_scores.py"
