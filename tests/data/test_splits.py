"""Group-aware stratified splits, the manifest, and what each task selects from it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from braintumor.errors import DatasetError
from braintumor.data.splits import (MANIFEST_COLUMNS, SPLITS, STRATUM_COLUMNS, _integer_targets,
                                    check_no_group_leak, group_aware_split,
                                    label_conflict_groups, read_manifest, split_summary, write_manifest)
from braintumor.data.tasks import TASKS, class_weights, get_task, stratified_subset
from braintumor.files import sha256_file
from synthetic import exact_targets, stratum_deviation

FRACTIONS = (0.70, 0.15, 0.15)


@pytest.fixture(scope="module")
def manifest(synthetic_index):
    return group_aware_split(synthetic_index, FRACTIONS, seed=1337)


# -- targets ----------------------------------------------------------------------------

@pytest.mark.parametrize("fractions", [FRACTIONS, (0.8, 0.1, 0.1), (0.6, 0.2, 0.2), (1, 1, 1),
                                       (5, 3, 2), (1, 0, 0)])
def test_integer_targets_are_exact_largest_remainder(fractions):
    for n in range(0, 1200):
        got = _integer_targets(n, fractions)
        assert got.sum() == n
        assert got.tolist() == exact_targets(n, fractions), n


# -- the synthetic split ---------------------------------------------------------------

def test_every_planted_group_lands_in_one_split(manifest, synthetic_ds):
    split_of = manifest.set_index("path")["split"]
    for group in synthetic_ds.groups:
        if set(synthetic_ds.label_conflict) <= group:
            continue
        assert split_of[list(group)].nunique() == 1, sorted(group)
    check_no_group_leak(manifest)


def test_label_conflicts_and_unreadable_files_are_excluded(manifest, synthetic_ds, synthetic_index):
    expected = set(synthetic_ds.ok_files["path"]) - set(synthetic_ds.label_conflict)
    assert set(manifest["path"]) == expected
    assert manifest["path"].is_unique
    assert label_conflict_groups(synthetic_index) == [
        synthetic_index.set_index("path").at[synthetic_ds.label_conflict[0], "group"]]


def test_manifest_shape(manifest, synthetic_index):
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert manifest["path"].is_monotonic_increasing
    assert set(manifest["split"]) == set(SPLITS)
    # the other columns are the index's, unchanged
    merged = manifest.merge(synthetic_index, on="path", suffixes=("", "_index"))
    for col in ("sha256", "modality", "label", "subtype", "group"):
        assert (merged[col] == merged[f"{col}_index"]).all()


@pytest.mark.parametrize("seed", [0, 1, 1337, 2024])
def test_strata_within_one_image_of_targets(synthetic_index, seed):
    man = group_aware_split(synthetic_index, FRACTIONS, seed=seed)
    assert stratum_deviation(man) == {}
    # and every stratum of the synthetic data actually has images in every split
    assert (pd.crosstab(man[STRATUM_COLUMNS].astype(str).agg("|".join, axis=1), man["split"]) > 0).all().all()


def _mixed_strata_frame(n_mixed: int, singles: dict[str, int], seed: int = 0) -> pd.DataFrame:
    """MRI tumours: ``n_mixed`` groups holding a typed (glioma) and an untyped copy of one
    picture (1-2 of each), plus singleton groups per sub-type."""
    rng = np.random.default_rng(seed)
    rows = []
    for g in range(n_mixed):
        for sub in ("glioma", "unspecified"):
            rows += [(f"mix{g}", sub)] * int(rng.integers(1, 3))
    for sub, n in singles.items():
        rows += [(f"{sub}{i}", sub) for i in range(n)]
    df = pd.DataFrame(rows, columns=["group", "subtype"])
    df["path"] = [f"img{i:05d}.jpg" for i in range(len(df))]
    return df.assign(modality="MRI", label="tumor", sha256="", status="ok")


@pytest.mark.parametrize("seed", range(12))
def test_groups_mixing_strata_stay_whole_and_balanced(seed):
    df = _mixed_strata_frame(8, {"glioma": 40, "unspecified": 30, "meningioma": 25}, seed)
    man = group_aware_split(df, FRACTIONS, seed=seed)
    assert len(man) == len(df)
    check_no_group_leak(man)
    assert stratum_deviation(man) == {}


def test_same_seed_same_split_other_seed_other_split(synthetic_index, manifest):
    again = group_aware_split(synthetic_index, FRACTIONS, seed=1337)
    pd.testing.assert_frame_equal(again, manifest)
    other = group_aware_split(synthetic_index, FRACTIONS, seed=7)
    assert (other["path"] == manifest["path"]).all()
    assert (other["split"] != manifest["split"]).sum() >= 10


def test_split_does_not_depend_on_row_order(synthetic_index, manifest):
    shuffled = synthetic_index.sample(frac=1, random_state=3)
    pd.testing.assert_frame_equal(group_aware_split(shuffled, FRACTIONS, seed=1337), manifest)


def test_other_fractions(synthetic_index):
    man = group_aware_split(synthetic_index, (0.8, 0.1, 0.1), seed=0)
    assert stratum_deviation(man, (0.8, 0.1, 0.1)) == {}
    assert set(group_aware_split(synthetic_index, (1, 0, 0), seed=0)["split"]) == {"train"}


@pytest.mark.parametrize("fractions", [(0.7, 0.3), (0.7, -0.1, 0.4), (0, 0, 0)])
def test_invalid_fractions(synthetic_index, fractions):
    with pytest.raises(ValueError, match="fractions"):
        group_aware_split(synthetic_index, fractions)


def test_split_summary(manifest):
    s = split_summary(manifest).set_index(STRATUM_COLUMNS)
    assert s["total"].sum() == len(manifest)
    assert (s[list(SPLITS)].sum(axis=1) == s["total"]).all()
    np.testing.assert_allclose(s[[f"{x} %" for x in SPLITS]].sum(axis=1), 100, atol=0.2)


# -- leaks and the manifest file ---------------------------------------------------------

def test_check_no_group_leak_raises_on_a_doctored_manifest(manifest, synthetic_ds):
    doctored = manifest.copy()
    a, b = synthetic_ds.perceptual_pairs[0]
    split_a = doctored.loc[doctored["path"] == a, "split"].item()
    doctored.loc[doctored["path"] == b, "split"] = next(s for s in SPLITS if s != split_a)
    with pytest.raises(AssertionError, match="1 duplicate groups cross splits") as info:
        check_no_group_leak(doctored)
    assert doctored.loc[doctored["path"] == a, "group"].item() in str(info.value)


def test_manifest_round_trip(manifest, tmp_path):
    path = write_manifest(manifest.sample(frac=1, random_state=0), tmp_path / "splits" / "x.csv")
    back = read_manifest(path)
    pd.testing.assert_frame_equal(back, manifest.astype(str).reset_index(drop=True), check_dtype=False)
    assert back.attrs["manifest_sha256"] == sha256_file(path)
    text = path.read_text()
    assert text.startswith(",".join(MANIFEST_COLUMNS) + "\n") and "\r" not in text
    write_manifest(back, tmp_path / "again.csv")  # byte-identical when written again
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_read_manifest_errors(tmp_path):
    with pytest.raises(DatasetError, match="braintumor split") as info:
        read_manifest(tmp_path / "missing.csv")
    assert str(tmp_path / "missing.csv") in str(info.value)
    (tmp_path / "bad.csv").write_text("path,split\na.jpg,train\n")
    with pytest.raises(DatasetError, match="not a split manifest"):
        read_manifest(tmp_path / "bad.csv")


def test_read_manifest_keeps_strings_as_strings(tmp_path):
    df = pd.DataFrame([{"path": "NA", "sha256": "0" * 64, "modality": "CT", "label": "healthy",
                        "subtype": "none", "group": "g000000000000", "split": "train"}])
    back = read_manifest(write_manifest(df, tmp_path / "m.csv"))
    assert back.loc[0, "path"] == "NA" and back.loc[0, "subtype"] == "none"
    assert back.loc[0, "group"] == "g000000000000"


# -- tasks ------------------------------------------------------------------------------

def test_task_ct(manifest):
    rows = TASKS["ct"].rows(manifest)
    ct = manifest[manifest["modality"] == "CT"]
    assert len(rows) == len(ct) and (rows["modality"] == "CT").all()
    assert (rows["y"] == (rows["label"] == "tumor").astype(int)).all()
    assert TASKS["ct"].binary and TASKS["ct"].classes == ("healthy", "tumor")


def test_task_mri_and_pooled(manifest):
    mri = TASKS["mri"].rows(manifest)
    assert set(mri["modality"]) == {"MRI"} and len(mri) == (manifest["modality"] == "MRI").sum()
    pooled = TASKS["pooled"].rows(manifest)
    assert len(pooled) == len(manifest)
    assert (pooled["y"] == (pooled["label"] == "tumor").astype(int)).all()
    assert mri["y"].dtype.kind == "i"


def test_task_mri_subtype_excludes_untyped(manifest):
    task = get_task("mri_subtype")
    rows = task.rows(manifest)
    typed = manifest[(manifest["modality"] == "MRI")
                     & manifest["subtype"].isin(["glioma", "meningioma", "pituitary"])]
    assert len(rows) == len(typed) > 0
    assert "unspecified" not in set(rows["subtype"])
    assert (rows["y"] == rows["subtype"].map({"glioma": 0, "meningioma": 1, "pituitary": 2})).all()
    assert not task.binary


def test_task_rows_for_one_split(manifest):
    for split in SPLITS:
        rows = TASKS["ct"].rows(manifest, split)
        assert len(rows) == ((manifest["modality"] == "CT") & (manifest["split"] == split)).sum()
        assert (rows["split"] == split).all()
    assert list(TASKS["ct"].rows(manifest, "test").index) == list(range(len(TASKS["ct"].rows(manifest, "test"))))


def test_task_refuses_rows_outside_its_classes(manifest):
    doctored = manifest.copy()
    doctored.loc[doctored.index[0], "label"] = "unknown"
    with pytest.raises(ValueError, match="unknown"):
        TASKS["pooled"].rows(doctored)


def test_get_task_unknown():
    with pytest.raises(ValueError, match="unknown task 'nope'"):
        get_task("nope")


def test_stratified_subset(manifest):
    rows = TASKS["pooled"].rows(manifest)
    n_per = rows["y"].value_counts()
    sub = stratified_subset(rows, 10, seed=0)
    assert sub["y"].value_counts().to_dict() == {y: min(10, n) for y, n in n_per.items()}
    assert sub["path"].is_unique and set(sub["path"]) <= set(rows["path"])
    pd.testing.assert_frame_equal(sub, stratified_subset(rows, 10, seed=0))
    assert set(stratified_subset(rows, 10, seed=1)["path"]) != set(sub["path"])
    # more than available: everything of that class
    assert len(stratified_subset(rows, 10_000, seed=0)) == len(rows)
    # a subset row is the same record as in the input
    merged = sub.merge(rows, on="path", suffixes=("", "_in"))
    assert (merged["y"] == merged["y_in"]).all()


def test_class_weights():
    w = class_weights(np.array([0, 0, 0, 1]), 2)
    assert w == pytest.approx({0: 4 / 6, 1: 2.0})
    y = np.array([0] * 5 + [1] * 3 + [2] * 2)
    w = class_weights(y, 3)
    assert np.mean([w[v] for v in y]) == pytest.approx(1.0)  # mean 1 over samples
    assert w[2] > w[1] > w[0]
    assert class_weights(np.array([0, 0, 1]), 3)[2] == 0.0  # absent class: no weight, no crash
