"""Integration: the real dataset mirror, indexed once per session, and the committed split.

Needs the mirror (``$BRAINTUMOR_DATA_DIR`` or ``../shared``); skips without it, fails
without it when ``BRAINTUMOR_REQUIRE_DATA=1`` (see the ``real_dataset`` fixture).
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from braintumor.config import Config
from braintumor.data.duplicates import duplicate_report
from braintumor.data.splits import (MANIFEST_COLUMNS, check_no_group_leak, group_aware_split,
                               label_conflict_groups, read_manifest, write_manifest)

from synthetic import stratum_deviation

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[1]
MANIFEST = PROJECT / "data" / "splits" / "default.csv"
AUDIT = PROJECT / "reports" / "audit" / "duplicates.json"
# The two label conflicts of this data (README, reports/audit/duplicates.json).
LABEL_CONFLICTS = {
    frozenset({"Brain Tumor CT scan Images/Healthy/ct_healthy (281).png",
               "Brain Tumor CT scan Images/Tumor/ct_tumor (102).png"}),
    frozenset({"Brain Tumor CT scan Images/Healthy/ct_healthy (273).png",
               "Brain Tumor MRI images/Tumor/glioma (116).jpg"}),
}


@pytest.fixture(scope="module")
def committed():
    return read_manifest(MANIFEST)


def test_class_counts(real_index):
    counts = real_index.groupby(["modality", "label"]).size().to_dict()
    assert counts == {("CT", "healthy"): 2300, ("CT", "tumor"): 2318,
                      ("MRI", "healthy"): 2000, ("MRI", "tumor"): 3000}
    assert len(real_index) == 9618


def test_subtype_counts(real_index):
    mri_tumour = real_index[(real_index["modality"] == "MRI") & (real_index["label"] == "tumor")]
    assert mri_tumour["subtype"].value_counts().to_dict() == {
        "meningioma": 1112, "glioma": 672, "pituitary": 629, "unspecified": 587}
    assert set(real_index.loc[real_index["modality"] == "CT", "subtype"]) == {"none", "unspecified"}
    assert set(real_index.loc[real_index["label"] == "healthy", "subtype"]) == {"none"}


def test_every_image_decodes(real_index):
    assert (real_index["status"] == "ok").all(), real_index.loc[real_index["status"] != "ok", "status"]
    assert (real_index["width"] > 0).all() and (real_index["height"] > 0).all()
    assert real_index[["width", "height"]].max().max() == 256  # the mirror is size-reduced
    assert real_index["phash"].str.fullmatch(r"[0-9a-f]{16}").all()


def test_index_agrees_with_the_mirrors_provenance(real_index, real_dataset):
    """provenance.csv (written when the mirror was made) records each file's size, and its
    original format and mode, which the mirror keeps."""
    prov_path = real_dataset.parent / "provenance.csv"
    if not prov_path.is_file():
        pytest.skip(f"no {prov_path}")
    prov = pd.read_csv(prov_path)
    prov["path"] = prov["path"].str.removeprefix(f"{real_dataset.name}/")
    m = real_index.merge(prov, on="path", how="outer", indicator=True, validate="one_to_one")
    assert (m["_merge"] == "both").all()
    assert (m["width_x"] == m["width_y"]).all() and (m["height_x"] == m["height_y"]).all()
    assert (m["format"] == m["original_format"]).all()
    assert (m["mode"] == m["original_mode"]).all()


def test_duplicate_groups(real_index):
    rep = duplicate_report(real_index)
    assert rep["n_groups"] == 8092
    assert rep["images_in_groups_size_gt1"] == 2244
    assert {k: v["in_duplicate_groups"] for k, v in rep["by_class"].items()} == {
        "CT healthy": 155, "CT tumor": 39, "MRI healthy": 1440, "MRI tumor": 610}
    assert {frozenset(g["paths"]) for g in rep["label_conflict_groups"]} == LABEL_CONFLICTS


def test_committed_audit_report_matches(real_index):
    if not AUDIT.is_file():
        pytest.skip(f"no {AUDIT}")
    committed = json.loads(AUDIT.read_text())
    rep = duplicate_report(real_index)
    for key in ("n_images", "n_groups", "n_groups_size_gt1", "images_in_groups_size_gt1",
                "largest_group", "by_class", "label_conflict_groups", "cross_modality_groups",
                "subtype_conflict_groups"):
        assert rep[key] == committed[key], key


def test_manifest_covers_everything_but_label_conflicts(real_index, committed):
    conflict_paths = set(real_index.loc[real_index["group"].isin(label_conflict_groups(real_index)),
                                        "path"])
    assert conflict_paths == set().union(*LABEL_CONFLICTS)
    assert committed["path"].is_unique
    assert set(committed["path"]) == set(real_index["path"]) - conflict_paths
    assert len(committed) == 9618 - 4


def test_manifest_no_group_in_two_splits_by_recomputed_groups(real_index, committed):
    m = committed.merge(real_index[["path", "sha256", "group", "modality", "label", "subtype"]],
                        on="path", suffixes=("", "_index"), validate="one_to_one")
    # groups recomputed from the files, not trusted from the manifest's own column
    spread = m.groupby("group_index")["split"].nunique()
    assert (spread == 1).all(), list(spread[spread > 1].index[:5])
    check_no_group_leak(committed)
    for col in ("sha256", "group", "modality", "label", "subtype"):
        assert (m[col] == m[f"{col}_index"]).all(), col


def test_manifest_is_stratified_within_one_image(committed):
    assert stratum_deviation(committed) == {}


def test_regenerating_the_split_reproduces_the_committed_manifest(real_index, committed, tmp_path):
    cfg = Config()
    manifest = group_aware_split(real_index, cfg.split_fractions, seed=cfg.seed)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    path = write_manifest(manifest, tmp_path / "default.csv")
    assert path.read_bytes() == MANIFEST.read_bytes()
