"""The data commands of the CLI, run in-process on the synthetic dataset.

``BRAINTUMOR_ROOT`` points at a temp folder (autouse fixture in conftest), so caches and
reports land there, never in the repository.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from braintumor.cli import main
from braintumor.config import ROOT_ENV
from braintumor.data.splits import check_no_group_leak, read_manifest


@pytest.fixture
def run(capsys):
    def _run(*argv):
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return _run


def _project() -> Path:
    return Path(os.environ[ROOT_ENV])


def test_index_command(run, synthetic_ds):
    code, out, err = run("index", "--data-dir", synthetic_ds.base)
    assert code == 0, err
    assert f"Index of {synthetic_ds.root.resolve()} (fingerprint " in out
    n = len(synthetic_ds.files)
    assert f"{n:,} images, {len(synthetic_ds.corrupt)} unreadable" in out
    for path in synthetic_ds.corrupt:
        assert f"  unreadable: {path}: error: " in out
    for subtype in ("glioma", "meningioma", "pituitary", "unspecified", "none"):
        assert subtype in out
    caches = list((_project() / "data" / "cache").glob("index-*.parquet"))
    assert len(caches) == 1  # cached under BRAINTUMOR_ROOT, not in the repository
    # --rebuild works and reports the same dataset fingerprint
    code, out2, _ = run("index", "--data-dir", synthetic_ds.base, "--rebuild")
    assert code == 0 and out2.splitlines()[1] == out.splitlines()[1]


def test_split_command(run, synthetic_ds, tmp_path):
    out_csv = tmp_path / "out" / "manifest.csv"
    code, out, err = run("split", "--data-dir", synthetic_ds.base, "--out", out_csv, "--seed", 5)
    assert code == 0, err
    man = read_manifest(out_csv)
    expected = set(synthetic_ds.ok_files["path"]) - set(synthetic_ds.label_conflict)
    assert set(man["path"]) == expected
    check_no_group_leak(man)
    n, m = len(synthetic_ds.files), len(expected)
    assert f"{m:,} of {n:,} images assigned; {n - m} excluded " \
           f"(1 label-conflict groups, {len(synthetic_ds.corrupt)} unreadable):" in out
    for path in list(synthetic_ds.label_conflict) + list(synthetic_ds.corrupt):
        assert f"  excluded: {path} (" in out
    assert f"wrote {out_csv}" in out
    assert "Split (seed 5, fractions (0.7, 0.15, 0.15)):" in out
    assert not (_project() / "data" / "splits").exists()  # --out overrides the default place
    # same seed again: byte-identical manifest
    first = out_csv.read_bytes()
    assert run("split", "--data-dir", synthetic_ds.base, "--out", out_csv, "--seed", 5)[0] == 0
    assert out_csv.read_bytes() == first


def test_split_command_default_place_and_fractions(run, synthetic_ds):
    code, out, err = run("split", "--data-dir", synthetic_ds.base, "--split-name", "alt",
                         "--fractions", "0.8", "0.1", "0.1")
    assert code == 0, err
    path = _project() / "data" / "splits" / "alt.csv"
    assert f"wrote {path}" in out
    man = read_manifest(path)
    share = man["split"].value_counts(normalize=True)
    assert share["train"] == pytest.approx(0.8, abs=0.03)


def test_audit_duplicates_command(run, synthetic_ds, tmp_path):
    out_json = tmp_path / "audit.json"
    code, out, err = run("audit-duplicates", "--data-dir", synthetic_ds.base, "--out", out_json,
                         "--thresholds", 0, 2)
    assert code == 0, err
    n_groups = len(synthetic_ds.partition())
    assert f"{len(synthetic_ds.files):,} images in {n_groups:,} duplicate groups" in out
    planted = synthetic_ds.groups
    assert (f"{sum(len(g) for g in planted):,} images share a group with another image, "
            f"in {len(planted):,} groups; the largest holds 3") in out
    assert "Label conflicts (excluded from splits): 1" in out
    assert "Groups spanning CT and MRI: 1" in out
    assert " | ".join(sorted(synthetic_ds.label_conflict)) in out
    assert f"wrote {out_json}" in out
    report = json.loads(out_json.read_text())
    assert report["n_groups"] == n_groups
    assert [r["phash_threshold"] for r in report["threshold_comparison"]] == [0, 2]
    assert report["label_conflict_groups"][0]["paths"] == sorted(synthetic_ds.label_conflict)


def test_audit_default_report_path_is_under_root(run, synthetic_ds):
    code, out, _ = run("audit-duplicates", "--data-dir", synthetic_ds.base)
    assert code == 0
    assert (_project() / "reports" / "audit" / "duplicates.json").is_file()


@pytest.mark.parametrize("command", ["index", "split", "audit-duplicates"])
def test_missing_dataset_path_is_a_one_line_error(run, tmp_path, command):
    missing = tmp_path / "no-such-folder"
    code, out, err = run(command, "--data-dir", missing)
    assert code == 2
    assert err.startswith("error: ") and str(missing) in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert out == ""


def test_no_dataset_anywhere_exits_2_with_what_was_tried(run):
    code, out, err = run("index")  # no --data-dir, no env var, empty project, download fails
    assert code == 2
    assert err.startswith("error: dataset not found.") and "Traceback" not in err
    assert "BRAINTUMOR_DATA_DIR" in err and "Fix:" in err


def test_env_var_is_used_by_the_cli(run, synthetic_ds, monkeypatch):
    monkeypatch.setenv("BRAINTUMOR_DATA_DIR", str(synthetic_ds.root))
    code, out, _ = run("index")
    assert code == 0 and f"Index of {synthetic_ds.root.resolve()}" in out


def test_bad_fractions_are_a_one_line_error(run, synthetic_ds):
    code, _, err = run("split", "--data-dir", synthetic_ds.base, "--fractions", "0.7", "-0.1", "0.4")
    assert code == 2 and err.startswith("error: ")


def test_manifest_written_by_cli_matches_library(run, synthetic_ds, synthetic_index, tmp_path):
    from braintumor.data.splits import group_aware_split

    out_csv = tmp_path / "m.csv"
    assert run("split", "--data-dir", synthetic_ds.base, "--out", out_csv)[0] == 0
    expected = group_aware_split(synthetic_index, (0.7, 0.15, 0.15), seed=1337)
    pd.testing.assert_frame_equal(read_manifest(out_csv), expected.astype(str), check_dtype=False)
