"""`ddbench verify`: provenance of every result against the current config."""

import copy
import shutil

from ddbench.analysis.verify import verify_results
from ddbench.config import validate_config


def _statuses(findings):
    out = {}
    for f in findings:
        out.setdefault(f.status, []).append(f.path)
    return out


def test_fresh_smoke_run_verifies_clean(smoke_run):
    work, config = smoke_run
    cfg = validate_config(copy.deepcopy(config))
    st = _statuses(verify_results(cfg, work))
    assert set(st) == {"ok"}, {k: v[:3] for k, v in st.items() if k != "ok"}
    assert any(p.endswith(".h5") and "/condensed/" in p for p in st["ok"])
    assert any("/eval/" in p for p in st["ok"])


def test_changed_parameters_mark_exactly_their_outputs_stale(smoke_run):
    work, config = smoke_run
    cfg = copy.deepcopy(config)
    cfg["methods"]["el2n_easy"]["epoch"] = 0
    st = _statuses(verify_results(validate_config(cfg), work))
    assert st["stale"] and all("/condensed/el2n_easy/" in p for p in st["stale"])
    cfg = copy.deepcopy(config)
    cfg["protocols"]["hl"]["epochs"] = 7
    st = _statuses(verify_results(validate_config(cfg), work))
    assert st["stale"] and all("/eval/hl/" in p for p in st["stale"])


def test_removed_method_leaves_foreign_files_and_new_cells_are_missing(smoke_run):
    work, config = smoke_run
    cfg = copy.deepcopy(config)
    del cfg["methods"]["kcenter"]
    cfg["ipcs"] = [*cfg["ipcs"], 2]
    st = _statuses(verify_results(validate_config(cfg), work))
    assert st["foreign"] and all("/kcenter/" in p for p in st["foreign"])
    assert st["missing"] and all("/ipc2/" in p for p in st["missing"])


def test_corrupt_and_foreign_format_files_are_reported(smoke_run, tmp_path):
    work, config = smoke_run
    copy_dir = tmp_path / "w"
    shutil.copytree(work / "results", copy_dir / "results")
    shutil.copytree(work / "resources", copy_dir / "resources")
    target = next((copy_dir / "results/digits/condensed/random").rglob("*.h5"))
    target.write_bytes(target.read_bytes()[:100])
    ev = next((copy_dir / "results/digits/eval").rglob("*.json"))
    ev.write_text("{not json")
    st = _statuses(verify_results(validate_config(copy.deepcopy(config)), copy_dir))
    assert sorted(st["corrupt"]) == sorted(str(p.relative_to(copy_dir)) for p in (target, ev))


def test_verify_command_reports_and_exits_nonzero_on_stale(smoke_run, tmp_path):
    import yaml
    from click.testing import CliRunner

    from ddbench.cli import main

    work, config = smoke_run
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(config))
    res = CliRunner().invoke(main, ["verify", "--config", str(good), "--directory", str(work)])
    assert res.exit_code == 0, res.output
    assert "0 stale, 0 foreign, 0 misfiled, 0 corrupt" in res.output and "rm " not in res.output
    cfg = copy.deepcopy(config)
    cfg["methods"]["herding"]["features"] = "convnet_b"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    res = CliRunner().invoke(main, ["verify", "--config", str(bad), "--directory", str(work)])
    assert res.exit_code == 1
    assert "stale" in res.output and "condensed/herding/ipc1/s0.h5" in res.output
    assert "rm -r " in res.output  # the command that deletes what to rebuild


def _accuracy_table(work, cfg, out):
    import pandas as pd

    from ddbench.analysis.tables import write_accuracy_table

    paths = sorted(str(p) for p in (work / "results/digits/eval").rglob("*.json"))
    write_accuracy_table(paths, out / "a.csv", out / "a.md", config=validate_config(cfg))
    return pd.read_csv(out / "a.csv", keep_default_na=False), (out / "a.md").read_text()


def test_accuracy_table_marks_cells_whose_provenance_does_not_match(smoke_run, tmp_path):
    work, config = smoke_run
    df, md = _accuracy_table(work, copy.deepcopy(config), tmp_path)
    assert (df["provenance_issues"] == "").all() and "†" not in md

    # the config moved on without a rerun: hl's budget changed, el2n_easy's parameters too
    cfg = copy.deepcopy(config)
    cfg["protocols"]["hl"]["epochs"] = 7
    cfg["methods"]["el2n_easy"]["epoch"] = 0
    df, md = _accuracy_table(work, cfg, tmp_path)
    bad = df[df["provenance_issues"] != ""]
    # the whole-set reference trains for `reference.epochs`, so hl's budget does not touch it
    hl_cells = (df["protocol"] == "hl") & (df["method"] != "full_train")
    expect = hl_cells | (df["method"] == "el2n_easy")
    assert set(bad.index) == set(df[expect].index)
    assert bad["provenance_issues"].str.contains("other protocol/student parameters").sum() == (
        hl_cells.sum()
    )
    assert (
        bad[bad["method"] == "el2n_easy"]["provenance_issues"]
        .str.contains("other method parameters")
        .all()
    )
    assert md.count("†") == len(bad) + 1  # every mismatching cell, plus the note

    # a condensed set replaced after its evaluations ran
    w = tmp_path / "w"
    shutil.copytree(work / "results", w / "results")
    target = w / "results/digits/condensed/random/ipc1/s0.h5"
    import h5py

    with h5py.File(target, "r+") as f:
        f["images"][0, 0, 0, 0] = 0.5 - f["images"][0, 0, 0, 0]
    df, _ = _accuracy_table(w, copy.deepcopy(config), tmp_path)
    bad = df[df["provenance_issues"] != ""]
    assert len(bad) and (bad["method"] == "random").all() and (bad["ipc"] == "1").all()
    assert bad["provenance_issues"].str.contains("changed after this evaluation").all()


def test_experts_folder_is_checked_against_its_recorded_file_hashes(smoke_run, tmp_path):
    work, config = smoke_run
    copy_dir = tmp_path / "w"
    shutil.copytree(work / "results", copy_dir / "results")
    shutil.copytree(work / "resources", copy_dir / "resources")
    cfg = validate_config(copy.deepcopy(config))
    experts = next((copy_dir / "results/digits/experts").iterdir())
    rel = str(experts.relative_to(copy_dir))
    assert (rel, "ok") in {(f.path, f.status) for f in verify_results(cfg, copy_dir)}
    expert = next(experts.glob("expert_*.h5"))
    expert.write_bytes(expert.read_bytes()[:-8] + b"\0" * 8)
    found = {f.path: f for f in verify_results(cfg, copy_dir)}
    assert found[rel].status == "corrupt" and expert.name in found[rel].reason
    expert.unlink()
    assert "files missing" in {f.path: f for f in verify_results(cfg, copy_dir)}[rel].reason
