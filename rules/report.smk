# Tables (CSV, Markdown, LaTeX, HTML) and figures (SVG, PNG), every one registered for
# `snakemake --report`. Categories: Accuracy, Cost, Quality, Galleries, Studies; subcategory =
# the dataset ("all datasets" for the tables that span datasets). Inputs are the per-dataset
# collected results (collect_* rules), so any changed result redraws what shows it.


rule collect_evaluations:
    input:
        metrics=dataset_eval_targets,
        reference=dataset_reference_targets,
    output:
        "results/{dataset}/eval/collected.jsonl",
    log:
        "logs/{dataset}/collect/evaluations.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect.py"


rule collect_quality:
    input:
        dataset_quality_targets,
    output:
        "results/{dataset}/quality/collected.jsonl",
    log:
        "logs/{dataset}/collect/quality.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect.py"


rule collect_benchmarks:
    input:
        dataset_benchmark_targets,
    output:
        "results/{dataset}/cost/condense_benchmarks.jsonl",
    log:
        "logs/{dataset}/collect/benchmarks.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/collect.py"


rule accuracy_table:
    input:
        metrics=collected("eval"),
    output:
        csv="results/tables/accuracy.csv",
        md="results/tables/accuracy.md",
        tex="results/tables/accuracy.tex",
        html=report(
            "results/tables/accuracy.html",
            caption="../reports/accuracy_table.rst",
            category="Accuracy",
            subcategory="all datasets",
            labels={"item": "accuracy table", "protocol": "all", "student": "all"},
        ),
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


rule study_tables:
    input:
        metrics=collected("eval"),
    output:
        gain="results/tables/gain.csv",
        gain_md="results/tables/gain.md",
        gain_tex="results/tables/gain.tex",
        gain_html=report(
            "results/tables/gain.html",
            caption="../reports/gain_table.rst",
            category="Accuracy",
            subcategory="all datasets",
            labels={"item": "gain over random", "protocol": "all", "student": "all"},
        ),
        dd_ranking="results/tables/dd_ranking.csv",
        dd_ranking_md="results/tables/dd_ranking.md",
        dd_ranking_tex="results/tables/dd_ranking.tex",
        dd_ranking_html=report(
            "results/tables/dd_ranking.html",
            caption="../reports/dd_ranking_table.rst",
            category="Studies",
            subcategory="all datasets",
            labels={"item": "DD-Ranking LRS / ARS", "protocol": "all"},
        ),
    log:
        "logs/tables/study_tables.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=baseline_method(),
    script:
        "../scripts/tables.py"


rule cost_table:
    input:
        metrics=collected("eval"),
        benchmarks=collected("benchmarks"),
    output:
        cost="results/tables/cost.csv",
        cost_md="results/tables/cost.md",
        cost_tex="results/tables/cost.tex",
        cost_html=report(
            "results/tables/cost.html",
            caption="../reports/cost_table.rst",
            category="Cost",
            subcategory="all datasets",
            labels={"item": "construction and label cost"},
        ),
    log:
        "logs/tables/cost.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=baseline_method(),
    script:
        "../scripts/tables.py"


rule quality_table:
    input:
        quality=collected("quality"),
    output:
        quality="results/tables/quality.csv",
        quality_md="results/tables/quality.md",
        quality_tex="results/tables/quality.tex",
        quality_html=report(
            "results/tables/quality.html",
            caption="../reports/quality_table.rst",
            category="Quality",
            subcategory="all datasets",
            labels={"item": "quality table", "method": "all", "IPC": "all"},
        ),
    log:
        "logs/tables/quality.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=baseline_method(),
    script:
        "../scripts/tables.py"


rule teacher_student_table:
    input:
        metrics=collected("eval"),
    output:
        teacher_student="results/tables/teacher_student.csv",
        teacher_student_md="results/tables/teacher_student.md",
        teacher_student_tex="results/tables/teacher_student.tex",
        teacher_student_html=report(
            "results/tables/teacher_student.html",
            caption="../reports/teacher_student.rst",
            category="Studies",
            subcategory="all datasets",
            labels={
                "item": "teacher x student table",
                "protocol": "teacher-label protocols",
            },
        ),
    log:
        "logs/tables/teacher_student.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        baseline=baseline_method(),
    script:
        "../scripts/tables.py"


rule figure_accuracy_vs_ipc:
    input:
        metrics=dataset_collected("eval"),
    output:
        svg="results/figures/{dataset}-accuracy_vs_ipc-{protocol}-{student}.svg",
        png=report(
            "results/figures/{dataset}-accuracy_vs_ipc-{protocol}-{student}.png",
            caption="../reports/accuracy_vs_ipc.rst",
            category="Accuracy",
            subcategory="{dataset}",
            labels={
                "item": "accuracy vs IPC",
                "protocol": "{protocol}",
                "student": "{student}",
            },
        ),
    log:
        "logs/figures/{dataset}/accuracy_vs_ipc/{protocol}/{student}.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule figure_label_gap:
    input:
        metrics=dataset_collected("eval"),
    output:
        svg="results/figures/{dataset}-label_gap.svg",
        png=report(
            "results/figures/{dataset}-label_gap.png",
            caption="../reports/label_gap.rst",
            category="Studies",
            subcategory="{dataset}",
            labels={"item": "label-regime gap", "protocol": "all"},
        ),
    log:
        "logs/figures/{dataset}/label_gap.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule figure_accuracy_vs_cost:
    input:
        metrics=dataset_collected("eval"),
        benchmarks=dataset_collected("benchmarks"),
    output:
        svg="results/figures/{dataset}-accuracy_vs_cost.svg",
        png=report(
            "results/figures/{dataset}-accuracy_vs_cost.png",
            caption="../reports/accuracy_vs_cost.rst",
            category="Cost",
            subcategory="{dataset}",
            labels={"item": "accuracy vs construction cost"},
        ),
    log:
        "logs/figures/{dataset}/accuracy_vs_cost.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule figure_prdc:
    input:
        quality=dataset_collected("quality"),
    output:
        svg="results/figures/{dataset}-prdc.svg",
        png=report(
            "results/figures/{dataset}-prdc.png",
            caption="../reports/prdc.rst",
            category="Quality",
            subcategory="{dataset}",
            labels={"item": "PRDC and MMD", "method": "all", "IPC": "all"},
        ),
    log:
        "logs/figures/{dataset}/prdc.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule figure_tsne:
    input:
        unpack(tsne_inputs),
    output:
        panels=report(
            directory("results/figures/{dataset}-tsne"),
            patterns=["{method}_ipc{ipc}.png"],
            caption="../reports/tsne.rst",
            category="Quality",
            subcategory="{dataset}",
            labels={"item": "t-SNE", "method": "{method}", "IPC": "{ipc}"},
        ),
        svg="results/figures/{dataset}-tsne_overview.svg",
        png=report(
            "results/figures/{dataset}-tsne_overview.png",
            caption="../reports/tsne.rst",
            category="Quality",
            subcategory="{dataset}",
            labels={"item": "t-SNE overview", "method": "all", "IPC": "all"},
        ),
    log:
        "logs/figures/{dataset}/tsne.log",
    benchmark:
        "benchmarks/figures/{dataset}/tsne.tsv"
    conda:
        "../envs/report.yaml"
    threads: config["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        tsne_max_real=config["quality"]["tsne_max_real"],
        sets=tsne_sets,
    script:
        "../scripts/figures.py"


rule figure_galleries:
    input:
        unpack(gallery_inputs),
    output:
        panels=report(
            directory("results/figures/{dataset}-galleries"),
            patterns=["{method}_ipc{ipc}_s{seed}.png"],
            caption="../reports/gallery.rst",
            category="Galleries",
            subcategory="{dataset}",
            labels={"method": "{method}", "IPC": "{ipc}", "seed": "{seed}"},
        ),
    log:
        "logs/figures/{dataset}/galleries.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        cells=gallery_cells,
    script:
        "../scripts/figures.py"


rule figure_teacher_student:
    input:
        metrics=dataset_collected("eval"),
    output:
        svg="results/figures/{dataset}-teacher_student.svg",
        png=report(
            "results/figures/{dataset}-teacher_student.png",
            caption="../reports/teacher_student.rst",
            category="Studies",
            subcategory="{dataset}",
            labels={
                "item": "teacher x student heatmap",
                "protocol": "teacher-label protocols",
            },
        ),
    log:
        "logs/figures/{dataset}/teacher_student.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"


rule figure_budget_curves:
    input:
        metrics=dataset_collected("eval"),
    output:
        svg="results/figures/{dataset}-budget_curves.svg",
        png=report(
            "results/figures/{dataset}-budget_curves.png",
            caption="../reports/budget_curves.rst",
            category="Studies",
            subcategory="{dataset}",
            labels={"item": "compute-budget curves", "protocol": "full_epochs sweeps"},
        ),
    log:
        "logs/figures/{dataset}/budget_curves.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/figures.py"
