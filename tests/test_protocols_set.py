"""Set-dependent protocol keys: `labels: stored` and `lr: from_set` parse, validate and refuse."""

import copy
from pathlib import Path

import pytest
import yaml

from ddbench.config import ConfigError, validate_config
from ddbench.training.protocols import resolve_protocol

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "config/smoke.yaml"


def _smoke_with(protocols: dict) -> dict:
    cfg = yaml.safe_load(SMOKE.read_text())
    cfg["protocols"] = {**copy.deepcopy(cfg["protocols"]), **protocols}
    return cfg


def test_stored_labels_and_set_lr_resolve_on_any_preset():
    p = resolve_protocol(
        "stored", {"preset": "sl", "labels": "stored", "lr": "from_set", "epochs": 3}
    )
    assert (p.labels, p.lr, p.lr_from_set, p.teachers) == ("stored", "from_set", True, ())
    assert not resolve_protocol("hl", {"preset": "hl", "epochs": 3}).lr_from_set


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"labels": "mine"}, r"unknown labels 'mine' \(known: hard, soft, kd, stored\)"),
        ({"lr": "fast"}, r"lr is 'fast'; give a positive number or 'from_set'"),
        ({"lr": 0}, r"lr is 0; give a positive number"),
    ],
)
def test_bad_labels_or_lr_are_refused(spec, message):
    with pytest.raises(ValueError, match=message):
        resolve_protocol("p", {"preset": "hl", "epochs": 1, **spec})


def test_config_accepts_the_documented_protocol_entries_without_teachers():
    cfg = validate_config(
        _smoke_with(
            {
                "stored": {"preset": "sl", "labels": "stored", "epochs": 300},
                "hl_set_lr": {"preset": "hl", "lr": "from_set", "epochs": 300},
            }
        ),
        read_sources=False,
        check_device=False,
    )
    assert cfg["protocols"]["hl_set_lr"]["lr"] == "from_set"


@pytest.mark.parametrize("spec", [{"lr": "from_sett"}, {"labels": "store"}])
def test_config_schema_names_a_misspelt_value(spec):
    with pytest.raises(ConfigError, match=r"protocols\.bad"):
        validate_config(
            _smoke_with({"bad": {"preset": "hl", "epochs": 3, **spec}}),
            read_sources=False,
            check_device=False,
        )
