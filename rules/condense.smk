rule condense:
    input:
        unpack(method_inputs),
    output:
        "results/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.h5",
    log:
        "logs/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
    params:
        spec=method_spec,
        device=config["device"],
    script:
        "../scripts/condense.py"
