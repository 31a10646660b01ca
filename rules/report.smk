rule accuracy_table:
    input:
        metrics=eval_targets(),
        reference=reference_targets(),
    output:
        csv="results/tables/accuracy.csv",
        md="results/tables/accuracy.md",
    log:
        "logs/tables/accuracy.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/accuracy_table.py"
