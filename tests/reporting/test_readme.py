"""README's generated blocks: results table, shortcut table, performance tables."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from braintumor.errors import BrainTumorError
from braintumor.reporting.readme import replace_block, results_table, shortcut_table, update_readme
from braintumor.audit.probes import PROBE_TITLES, permutation_control
from braintumor.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import benchmarks` from the checkout


def ci(value, low, high):
    return {"value": value, "low": low, "high": high}


def metrics_report(task="ct", preprocess="none", accuracy=0.9, quick=False, schedule="224 px"):
    m = {k: ci(accuracy, accuracy - 0.02, accuracy + 0.02)
         for k in ("accuracy", "sensitivity", "specificity", "roc_auc")}
    return {"run_id": "20260101-000000-x", "task": task, "preprocess": preprocess,
            "backbone": "efficientnet_lite0", "quick": quick, "schedule": schedule,
            "threshold": {"threshold": 0.42}, "calibration": {"test_ece_before": 0.05, "test_ece_after": 0.02},
            "test": {"n_images": 100, "n_groups": 90, "metrics": m}}


def write(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))


def test_results_table_lists_raw_and_mitigated_runs_and_skips_quick_ones(tmp_path):
    reports = tmp_path / "reports"
    write(reports / "ct" / "metrics.json", metrics_report(accuracy=0.97))
    write(reports / "ct-crop-mask" / "metrics.json", metrics_report(preprocess="crop-mask", accuracy=0.91))
    write(reports / "mri" / "metrics.json", metrics_report(task="mri", quick=True))
    table = results_table(reports)
    lines = table.splitlines()
    assert len(lines) == 4  # header, rule, two real runs; the quick run is not a result
    assert "| ct | none |" in lines[2] and "0.970 [0.950, 0.990]" in lines[2]
    assert "| ct | crop-mask |" in lines[3] and "0.910 [0.890, 0.930]" in lines[3]
    assert all(line.count("|") == lines[0].count("|") for line in lines)


def test_results_table_reads_the_schedule_from_the_model_card_of_older_reports(tmp_path):
    report = metrics_report(preprocess="crop-mask")
    del report["schedule"]
    write(tmp_path / "reports" / "ct-crop-mask" / "metrics.json", report)
    card = {"image_size": 160, "training": {"config": {"lr_finetune": 1e-4},
                                            "epochs_run": {"frozen": 12, "finetune": 3}}}
    write(tmp_path / "models" / "ct-crop-mask" / report["run_id"] / "model_card.json", card)
    assert "160 px, head 12 + fine-tune 3 ep, lr 0.0001" in results_table(tmp_path / "reports")


def shortcut_report() -> dict:
    probe = {"accuracy": ci(0.95, 0.93, 0.97), "roc_auc": ci(0.99, 0.98, 1.0), "chance_accuracy": 0.6}
    raw = {name: probe for name in PROBE_TITLES}
    # The real control's shape (it carries extra keys: interval, single permutations).
    y = np.repeat([0, 1], 60)
    rows = pd.DataFrame({"path": [f"img{i}" for i in range(120)], "y": y, "group": [f"g{i}" for i in range(120)],
                         "split": np.tile(np.array(["train"] * 30 + ["val"] * 15 + ["test"] * 15), 2)})
    features = np.random.default_rng(0).normal(size=(120, 5)) + y[:, None]
    raw["permutation"] = permutation_control(features, rows, Config().replace(audit={"n_resamples": 50, "c_grid": (1.0,)}))
    mitigated = {name: probe for name in PROBE_TITLES if name not in ("permutation", "leakage")}
    return {"tasks": {"ct": {"raw": raw, "mitigated": mitigated}},
            "text_detection": {"per_class": {"CT tumor": {"images": 2318, "with_text": 1500}}}}


def test_update_readme_fills_both_blocks_and_keeps_the_rest(tmp_path):
    reports = tmp_path / "reports"
    write(reports / "ct" / "metrics.json", metrics_report())
    write(reports / "audit" / "shortcuts.json", shortcut_report())
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:start -->\nSTALE\n<!-- results:end -->\nmiddle\n"
                      "<!-- shortcuts:start -->\nSTALE\n<!-- shortcuts:end -->\nend\n")
    assert update_readme(readme, reports) is True
    text = readme.read_text()
    assert text.startswith("intro\n") and "\nmiddle\n" in text and text.endswith("end\n")
    assert "STALE" not in text
    assert "| ct | 1 full image | 0.950 [0.930, 0.970] |" in text
    assert "| ct | 7 label permutation |" in text and "| — | — |" in text  # no mitigated permutation
    assert "CT tumor 1,500 of 2,318" in text
    assert "majority-class share of each test split): ct 0.600." in text
    assert update_readme(readme, reports) is False  # idempotent


def test_missing_block_and_missing_audit_are_explained(tmp_path):
    with pytest.raises(BrainTumorError, match="no <!-- results:start -->"):
        replace_block("no markers here", "results", "x", "README.md")
    assert "braintumor audit-shortcuts" in shortcut_table(tmp_path / "absent.json")


def test_performance_section_renders_full_reports_and_ignores_smoke_ones(tmp_path):
    from benchmarks import readme as bench_readme

    machine = {"cpu": "Test CPU", "usable_cores": 2, "logical_cores": 2, "ram_gb": 8, "gpus": [],
               "tensorflow": "x", "keras": "x", "python": "3", "os": "linux"}
    base = {"created": "2026-11-28T00:00:00+00:00", "machine": machine, "other_processes_running": [],
            "table": {"headers": ["pipeline", "images/s"], "rows": [["ours", "900"], ["baseline", "300"]]},
            "ratios": {"ours / baseline (cached epochs)": 3.0}, "notes": ["a note"]}
    write(tmp_path / "input_pipeline.json", {**base, "title": "Input pipeline", "smoke": False})
    write(tmp_path / "training.json", {**base, "title": "Smoke only", "smoke": True})
    text = bench_readme.performance_section(tmp_path)
    assert "**Input pipeline**" in text and "| ours | 900 |" in text and "**3.00×**" in text
    assert "Test CPU" in text and "a note" in text and "Smoke only" not in text
    assert "No benchmark reports" in bench_readme.performance_section(tmp_path / "empty")


def _external_report(reports, name, quick=False, low=0.42, run_id="20260101-000000-efficientnet_lite0"):
    out = reports / "external" / name / run_id
    out.mkdir(parents=True)
    ci = {"value": 0.5, "low": low, "high": 0.58}
    report = {"set": name, "model": {"task": "mri", "preprocess": "crop-mask", "recipe": "none", "quick": quick,
                                     "run_id": run_id},
              "exclusions": {"n_kept": 890, "overlap": {"tumor": 9, "healthy": 3}, "modality": {"excluded": {"healthy": 2}}},
              "test": {"metrics": {"roc_auc": ci, "sensitivity": ci, "specificity": ci}},
              "within_group_auc": {"n_groups": 55, "median": 0.42, "mean": ci}}
    (out / "metrics.json").write_text(json.dumps(report))


def test_external_table_rows_paragraph_and_readme_block(tmp_path):
    from braintumor.reporting.readme import external_table

    reports = tmp_path / "reports"
    assert "No external evaluations" in external_table(reports)
    _external_report(reports, "lgg-flair-a")
    _external_report(reports, "smoke", quick=True)
    text = external_table(reports)
    assert "| lgg-flair-a | mri, crop-mask, 20260101-000000-efficientnet_lite0 | 890 (12 / 2) |" in text
    assert "0.420, 0.500 [0.420, 0.580] (n=55)" in text and "smoke" not in text
    assert "same scans of the same patients" in text and "coin toss" in text
    _external_report(reports, "lgg-flair-a", run_id="study-main-s1-0123abcd")  # pooled by study report
    text = external_table(reports)
    assert "study-main" not in text and "its 1 external reports are pooled" in text
    readme = tmp_path / "README.md"
    readme.write_text("<!-- results:start -->\n<!-- results:end -->\n<!-- external:start -->\nold\n<!-- external:end -->\n")
    assert update_readme(readme, reports) is True and "lgg-flair-a" in readme.read_text()


def test_degenerate_bootstrap_interval_is_replaced_by_wilson():
    from braintumor.reporting.readme import edge_safe_ci

    test = {"metrics": {"sensitivity": {"value": 1.0, "low": 1.0, "high": 1.0},
                        "specificity": {"value": 0.98, "low": 0.96, "high": 0.99}},
            "confusion_matrix": {"tn": 296, "fp": 4, "fn": 0, "tp": 449}}
    cell, mark = edge_safe_ci(test, "sensitivity")
    assert mark == "ᵂ" and cell.endswith("ᵂ") and cell.startswith("1.000 [0.99") and "1.000]" in cell
    assert edge_safe_ci(test, "specificity") == ("0.980 [0.960, 0.990]", "")
    test["proportion_intervals"] = {"sensitivity": {"low": 0.5, "high": 1.0}}  # the report's own Wilson wins
    assert edge_safe_ci(test, "sensitivity")[0] == "1.000 [0.500, 1.000]ᵂ"


def test_cells_follow_the_interval_recorded_in_the_report(tmp_path):
    from braintumor.metrics import evaluate_binary
    from braintumor.reporting.readme import edge_safe_ci

    y = np.r_[np.ones(60, int), np.zeros(40, int)]
    p = np.where(y == 1, 0.9, 0.1) + np.linspace(-0.05, 0.05, 100)
    test = evaluate_binary(y, p, np.arange(100) // 2, threshold=0.5, n_resamples=100)
    sens = test["metrics"]["sensitivity"]
    assert edge_safe_ci(test, "sensitivity") == (f"1.000 [{sens['low']:.3f}, 1.000]ᵂ", "ᵂ")
    cell, mark = edge_safe_ci(test, "roc_auc")
    assert mark == "ᴬ" and cell.startswith("1.000 [0.") and test["metrics"]["roc_auc"]["low"] < 1
    test["metrics"]["sensitivity"] = {**sens, "low": 0.5}  # the recorded interval is shown, not recomputed
    assert edge_safe_ci(test, "sensitivity")[0] == "1.000 [0.500, 1.000]ᵂ"
    test["metrics"]["specificity"] = {"value": 0.9, "low": 0.9, "high": 0.9, "interval": "bootstrap-degenerate"}
    assert edge_safe_ci(test, "specificity") == ("0.900 [0.900, 0.900]ᴰ", "ᴰ")
    test["metrics"]["accuracy"] = {"value": 0.9, "low": 0.85, "high": 0.95, "interval": "bootstrap"}
    assert edge_safe_ci(test, "accuracy") == ("0.900 [0.850, 0.950]", "")

    report = {**metrics_report(), "test": {**test, "n_images": 100, "n_groups": 50}}
    write(tmp_path / "reports" / "ct" / "metrics.json", report)
    table = results_table(tmp_path / "reports")
    assert "ᵂ Wilson interval" in table and "ᴬ AUC at the edge" in table and "ᴰ Degenerate" in table
    assert "ᵂ Wilson" not in results_table_of(tmp_path / "plain", metrics_report())


def results_table_of(reports: Path, report: dict) -> str:
    write(reports / "ct" / "metrics.json", report)
    return results_table(reports)


def test_external_cells_are_marked_by_their_recorded_interval(tmp_path):
    from braintumor.reporting.readme import external_table

    reports = tmp_path / "reports"
    _external_report(reports, "sartaj")
    path = reports / "external" / "sartaj" / "20260101-000000-efficientnet_lite0" / "metrics.json"
    report = json.loads(path.read_text())
    report["test"]["metrics"]["specificity"] = {"value": 1.0, "low": 0.93, "high": 1.0, "interval": "wilson"}
    path.write_text(json.dumps(report))
    text = external_table(reports)
    assert "1.000 [0.930, 1.000]ᵂ" in text and "ᵂ Wilson interval" in text
