rule compute_scores:
    input:
        unpack(W.scorer_inputs),
    output:
        pattern("scores"),
    log:
        "logs/{dataset}/scores/{scorer}.log",
    benchmark:
        "benchmarks/{dataset}/scores/{scorer}.tsv"
    priority: 50
    conda:
        "../envs/torch.yaml"
    threads: config["threads"]
    resources:
        mem_mb=dataset_mem_mb(config, "compute_scores"),
        runtime=scaled(240),
        gpu=GPU,
    params:
        spec=W.scorer_spec,
        device=config["device"],
    script:
        "../scripts/compute_scores.py"
