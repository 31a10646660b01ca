# Tables (CSV, Markdown, LaTeX, HTML) and figures (SVG, PNG), every one registered for
# `snakemake --report`. Categories: Accuracy, Cost, Quality, Galleries, Studies; subcategory =
# the dataset ("all datasets" for the tables that span datasets). Inputs are the per-dataset
# collected results (collect_* rules), so any changed result redraws what shows it.


rule collect_evaluations:
    input:
        metrics=W.dataset_eval_targets,
        reference=W.dataset_reference_targets,
    output:
        pattern("collected_eval"),
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
        W.dataset_quality_targets,
    output:
        pattern("collected_quality"),
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
        W.dataset_benchmark_targets,
    output:
        pattern("collected_benchmarks"),
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
        metrics=W.collected("eval"),
    output:
        csv=target_path("table", name="accuracy", ext="csv"),
        md=target_path("table", name="accuracy", ext="md"),
        tex=target_path("table", name="accuracy", ext="tex"),
        html=report(
            target_path("table", name="accuracy", ext="html"),
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


rule claims_table:
    input:
        claims=W.claims_file(),
        metrics=W.collected("eval"),
        quality=W.collected("quality"),
    output:
        csv=target_path("table", name="claims", ext="csv"),
        md=target_path("table", name="claims", ext="md"),
        tex=target_path("table", name="claims", ext="tex"),
        html=report(
            target_path("table", name="claims", ext="html"),
            caption="../reports/claims_table.rst",
            category="Claims",
            subcategory="all datasets",
            labels={"item": "claims of the papers", "protocol": "all"},
        ),
    log:
        "logs/tables/claims.log",
    conda:
        "../envs/report.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        "../scripts/claims.py"


rule study_tables:
    input:
        metrics=W.collected("eval"),
    output:
        gain=target_path("table", name="gain", ext="csv"),
        gain_md=target_path("table", name="gain", ext="md"),
        gain_tex=target_path("table", name="gain", ext="tex"),
        gain_html=report(
            target_path("table", name="gain", ext="html"),
            caption="../reports/gain_table.rst",
            category="Accuracy",
            subcategory="all datasets",
            labels={"item": "gain over random", "protocol": "all", "student": "all"},
        ),
        dd_ranking=target_path("table", name="dd_ranking", ext="csv"),
        dd_ranking_md=target_path("table", name="dd_ranking", ext="md"),
        dd_ranking_tex=target_path("table", name="dd_ranking", ext="tex"),
        dd_ranking_html=report(
            target_path("table", name="dd_ranking", ext="html"),
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
        baseline=W.baseline_method(),
    script:
        "../scripts/tables.py"


rule cost_table:
    input:
        metrics=W.collected("eval"),
        benchmarks=W.collected("benchmarks"),
    output:
        cost=target_path("table", name="cost", ext="csv"),
        cost_md=target_path("table", name="cost", ext="md"),
        cost_tex=target_path("table", name="cost", ext="tex"),
        cost_html=report(
            target_path("table", name="cost", ext="html"),
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
        baseline=W.baseline_method(),
    script:
        "../scripts/tables.py"


rule quality_table:
    input:
        quality=W.collected("quality"),
    output:
        quality=target_path("table", name="quality", ext="csv"),
        quality_md=target_path("table", name="quality", ext="md"),
        quality_tex=target_path("table", name="quality", ext="tex"),
        quality_html=report(
            target_path("table", name="quality", ext="html"),
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
        baseline=W.baseline_method(),
    script:
        "../scripts/tables.py"


rule teacher_student_table:
    input:
        metrics=W.collected("eval"),
    output:
        teacher_student=target_path("table", name="teacher_student", ext="csv"),
        teacher_student_md=target_path("table", name="teacher_student", ext="md"),
        teacher_student_tex=target_path("table", name="teacher_student", ext="tex"),
        teacher_student_html=report(
            target_path("table", name="teacher_student", ext="html"),
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
        baseline=W.baseline_method(),
    script:
        "../scripts/tables.py"


rule figure_accuracy_vs_ipc:
    input:
        metrics=W.dataset_collected("eval"),
    output:
        svg=target_path(
            "figure", name="accuracy_vs_ipc-{protocol}-{student}", ext="svg"
        ),
        png=report(
            target_path(
                "figure", name="accuracy_vs_ipc-{protocol}-{student}", ext="png"
            ),
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
        metrics=W.dataset_collected("eval"),
    output:
        svg=target_path("figure", name="label_gap", ext="svg"),
        png=report(
            target_path("figure", name="label_gap", ext="png"),
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
        metrics=W.dataset_collected("eval"),
        benchmarks=W.dataset_collected("benchmarks"),
    output:
        svg=target_path("figure", name="accuracy_vs_cost", ext="svg"),
        png=report(
            target_path("figure", name="accuracy_vs_cost", ext="png"),
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
        quality=W.dataset_collected("quality"),
    output:
        svg=target_path("figure", name="prdc", ext="svg"),
        png=report(
            target_path("figure", name="prdc", ext="png"),
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
        unpack(W.tsne_inputs),
    output:
        panels=report(
            directory(target_path("figure_folder", name="tsne")),
            patterns=["{method}_ipc{ipc}.png"],
            caption="../reports/tsne.rst",
            category="Quality",
            subcategory="{dataset}",
            labels={"item": "t-SNE", "method": "{method}", "IPC": "{ipc}"},
        ),
        svg=target_path("figure", name="tsne_overview", ext="svg"),
        png=report(
            target_path("figure", name="tsne_overview", ext="png"),
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
        max_classes=config["figures"]["max_classes"],
        sets=W.tsne_sets,
    script:
        "../scripts/figures.py"


rule figure_galleries:
    input:
        unpack(W.gallery_inputs),
    output:
        panels=report(
            directory(target_path("figure_folder", name="galleries")),
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
        max_classes=config["figures"]["max_classes"],
        cells=W.gallery_cells,
    script:
        "../scripts/figures.py"


rule figure_teacher_student:
    input:
        metrics=W.dataset_collected("eval"),
    output:
        svg=target_path("figure", name="teacher_student", ext="svg"),
        png=report(
            target_path("figure", name="teacher_student", ext="png"),
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
        metrics=W.dataset_collected("eval"),
    output:
        svg=target_path("figure", name="budget_curves", ext="svg"),
        png=report(
            target_path("figure", name="budget_curves", ext="png"),
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
    params:
        series=config["figures"].get("series", {}),
    script:
        "../scripts/figures.py"
