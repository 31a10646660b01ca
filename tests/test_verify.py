"""`ddbench verify`: provenance of every result against the current config."""

import copy
import shutil

from ddbench.config import validate_config
from ddbench.verify import verify_results


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
