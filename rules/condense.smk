rule condense:
    input:
        unpack(method_inputs),
    output:
        "results/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.h5",
    params:
        spec=method_spec,
        device=config["device"],
    log:
        "logs/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/condensed/{method}/ipc{ipc}/s{seed}.tsv"
    threads: 1
    resources:
        mem_mb=scaled(4000),
        runtime=scaled(60),
    conda:
        "../envs/torch.yaml"
    script:
        "../scripts/condense.py"
