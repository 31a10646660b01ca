rule condense:
    input:
        unpack(W.method_inputs),
    output:
        pattern("condensed"),
    log:
        "logs/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=dataset_mem_mb(config, "condense"),
        runtime=scaled(60),
    params:
        spec=W.method_spec,
        device=config["device"],
    script:
        "../scripts/condense.py"
