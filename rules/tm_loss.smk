# TM-loss analysis (`tm_loss` in the config): the trajectory-matching loss of every condensed
# set against the expert trajectories of each named architecture, collected per dataset, one
# table over datasets and one "TM loss vs accuracy" figure per dataset (report category Studies).
# Without `tm_loss` no target names these rules.


rule tm_loss:
    input:
        unpack(W.tm_loss_inputs),
    output:
        pattern("tm_loss"),
    log:
        "logs/{dataset}/tm_loss/{method}/ipc{ipc}/s{seed}.log",
    benchmark:
        "benchmarks/{dataset}/tm_loss/{method}/ipc{ipc}/s{seed}.tsv"
    conda:
        "../envs/torch.yaml"
    threads: 1
    resources:
        mem_mb=dataset_mem_mb(config, "condense"),
        runtime=scaled(60),
        gpu=GPU,
    params:
        spec=W.tm_loss_spec(),
        device=config["device"],
    script:
        "../scripts/tm_loss.py"


rule collect_tm_loss:
    input:
        W.dataset_tm_loss_targets,
    output:
        pattern("collected_tm_loss"),
    log:
        "logs/{dataset}/collect/tm_loss.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect.py"


rule tm_loss_table:
    input:
        tm_loss=W.collected("tm_loss"),
        metrics=W.collected("eval"),
    output:
        csv=target_path("table", name="tm_loss", ext="csv"),
        md=target_path("table", name="tm_loss", ext="md"),
        tex=target_path("table", name="tm_loss", ext="tex"),
        html=report(
            target_path("table", name="tm_loss", ext="html"),
            caption="../reports/tm_loss_table.rst",
            category="Studies",
            subcategory="all datasets",
            labels={"item": "TM loss table", "method": "all", "IPC": "all"},
        ),
    log:
        "logs/tables/tm_loss.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        accuracy=W.tm_loss_accuracy(),
    script:
        "../scripts/tm_loss.py"


rule figure_tm_loss_vs_accuracy:
    input:
        tm_loss=W.dataset_collected("tm_loss"),
        metrics=W.dataset_collected("eval"),
    output:
        svg=target_path("figure", name="tm_loss_vs_accuracy", ext="svg"),
        png=report(
            target_path("figure", name="tm_loss_vs_accuracy", ext="png"),
            caption="../reports/tm_loss_vs_accuracy.rst",
            category="Studies",
            subcategory="{dataset}",
            labels={"item": "TM loss vs accuracy", "method": "all", "IPC": "all"},
        ),
    log:
        "logs/figures/{dataset}/tm_loss_vs_accuracy.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        accuracy=W.tm_loss_accuracy(),
    script:
        "../scripts/tm_loss.py"
