"""Every benchmark script runs end to end on a tiny input (``--smoke``).

Benchmarks are scripts, not tests: nothing here checks a timing, only that each script
runs, prints its table and writes a well-formed JSON report (into the test's temp folder,
never over the committed ``reports/benchmarks/``).
"""
from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import benchmarks` from the checkout

pytest.importorskip("tensorflow")

NEEDS_DATA = ["input_pipeline", "index_build", "training", "inference", "ood"]


def run_smoke(name: str, out: Path, *extra: str) -> dict:
    module = importlib.import_module(f"benchmarks.{name}")
    assert module.main(["--smoke", "--out", str(out), *extra]) == 0
    report = json.loads((out / f"{name}.json").read_text())
    assert report["benchmark"] == name and report["smoke"] is True
    assert report["machine"]["cpu"] and report["machine"]["tensorflow"]
    assert report["table"]["rows"], "the printed table is empty"
    return report


@pytest.mark.parametrize("name", NEEDS_DATA)
def test_benchmark_smoke_on_real_images(name, real_dataset, tmp_path, capsys):
    report = run_smoke(name, tmp_path, "--data-dir", str(real_dataset))
    printed = capsys.readouterr().out
    assert "CPU" in printed and report["table"]["headers"][0] in printed


def test_end_to_end_smoke(tmp_path):
    report = run_smoke("end_to_end", tmp_path)
    assert report["settings"]["mode"] == "smoke"
    assert report["results"]["total_seconds"]["n"] == 1


def test_end_to_end_splits_make_trace_into_steps():
    """The Makefile stamps its `set -x` trace; each step lasts until the next stamp."""
    from benchmarks.end_to_end import traced_steps

    log = "\n".join([
        "QUICK: small subsets; models and reports go to /tmp/braintumor-scratch-ab12",
        "+ [100.0] /repo/.venv/bin/braintumor index",
        "+ [112.5] for t in ct mri",
        "+ [112.5] /repo/.venv/bin/braintumor train --task ct --quick",
        "epoch 1/2 ...",
        "+ [190.0] /repo/.venv/bin/braintumor evaluate --model /tmp/braintumor-scratch-ab12/models/ct",
        "+ [200.0] : notebook next",
    ])
    assert traced_steps(log, end=260.0) == [
        ("braintumor index", 12.5), ("braintumor train --task ct --quick", 77.5),
        ("braintumor evaluate --model models/ct", 10.0), ("make notebook", 60.0)]


def test_smoke_does_not_write_committed_reports(tmp_path):
    """Without --out, --smoke writes to a fresh temp folder, not reports/benchmarks/."""
    from benchmarks import common

    committed = common.REPORTS / "end_to_end.json"
    before = committed.read_bytes() if committed.exists() else None
    module = importlib.import_module("benchmarks.end_to_end")
    assert module.main(["--smoke"]) == 0
    assert (committed.read_bytes() if committed.exists() else None) == before
