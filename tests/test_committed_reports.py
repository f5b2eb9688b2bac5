"""The committed reports hold no zero-width interval (issue 13), and the migration that
brought older reports there recovers the counts it needs."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]


def _script(name: str):
    """A module of scripts/ (not a package), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, PROJECT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def migration():
    return _script("hold_edges_in_reports")


def test_no_committed_report_has_a_zero_width_interval(migration):
    assert migration.degenerate_left(PROJECT) == []


def test_a_probes_counts_come_back_from_its_accuracy_and_balanced_accuracy(migration):
    # 449 tumour, 300 healthy; 430 tumours and 250 healthy called right
    n, acc = 749, (430 + 250) / 749
    bal = (430 / 449 + 250 / 300) / 2
    node = {"n_test": n, "chance_accuracy": 449 / n, "accuracy": {"value": acc}, "balanced_accuracy": {"value": bal}}
    assert migration._probe_counts(node) == {"tn": 250, "fp": 50, "fn": 19, "tp": 430}


def test_the_migration_holds_a_degenerate_entry_and_leaves_the_rest(migration):
    node = {"confusion_matrix": {"tn": 296, "fp": 4, "fn": 0, "tp": 449},
            "metrics": {"sensitivity": {"value": 1.0, "low": 1.0, "high": 1.0},
                        "accuracy": {"value": 0.995, "low": 0.989, "high": 0.999}}}
    changes: list = []
    migration.migrate(node, changes)
    assert changes == ["/metrics"]
    sens = node["metrics"]["sensitivity"]
    assert sens["interval"] == "wilson" and sens["low"] < 1.0 == sens["high"]
    assert node["metrics"]["accuracy"] == {"value": 0.995, "low": 0.989, "high": 0.999, "interval": "bootstrap"}


def test_every_committed_cards_task_defaults_note_is_current():
    """A card's note says whether its run is the task's default training; after a change to
    ``Config.TASK_DEFAULTS`` `python scripts/annotate_task_defaults.py` brings them up to date."""
    assert _script("annotate_task_defaults").main(["--check"]) == 0
