"""The image index on a synthetic dataset, its cache, and duplicate grouping."""
from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

import braintumor.data.index as index_mod
import synthetic
from braintumor.config import Config
from braintumor.data.duplicates import assign_groups, duplicate_report, phash_bits, threshold_comparison
from braintumor.data.index import COLUMNS, dataset_fingerprint, load_index, subtype_from_name, summarize


def _partition(df: pd.DataFrame, col: str = "group") -> set[frozenset]:
    return set(df.groupby(col)["path"].agg(frozenset))


# -- the table ------------------------------------------------------------------------

def test_one_row_per_image_file_in_column_order(synthetic_index, synthetic_ds):
    assert list(synthetic_index.columns) == COLUMNS
    assert sorted(synthetic_index["path"]) == sorted(synthetic_ds.files["path"])
    assert synthetic_index["path"].is_unique


def test_columns_match_ground_truth(synthetic_index, synthetic_ds):
    m = synthetic_index.merge(synthetic_ds.files, on="path", suffixes=("", "_expected"),
                              validate="one_to_one")
    for col in ("modality", "label", "subtype", "format", "mode", "height", "width"):
        bad = m.loc[m[col] != m[f"{col}_expected"], ["path", col, f"{col}_expected"]]
        assert bad.empty, f"{col} differs:\n{bad.to_string()}"


def test_every_mode_is_represented_and_decodes(synthetic_index):
    ok = synthetic_index[synthetic_index["status"] == "ok"]
    assert set(zip(ok["format"], ok["mode"])) == {(k.format, k.mode) for k in synthetic.KINDS}


def test_bytes_and_sha256_describe_the_file(synthetic_index, synthetic_ds):
    for row in synthetic_index.itertuples():
        data = (synthetic_ds.root / row.path).read_bytes()
        assert row.bytes == len(data)
        assert row.sha256 == hashlib.sha256(data).hexdigest()


def test_corrupt_files_get_an_error_row_and_the_rest_still_decodes(synthetic_index, synthetic_ds):
    status = synthetic_index.set_index("path")["status"]
    expected_reason = {"empty": "empty file", "truncated": "truncated", "not an image": "not an image"}
    for path, kind in synthetic_ds.corrupt.items():
        assert status[path].startswith("error"), path
        assert expected_reason[kind] in status[path]
    ok = status[~status.index.isin(list(synthetic_ds.corrupt))]
    assert (ok == "ok").all()
    assert len(ok) == len(synthetic_ds.ok_files)
    bad = synthetic_index[synthetic_index["status"] != "ok"]
    assert (bad["phash"] == "").all() and (bad["width"] == -1).all() and (bad["height"] == -1).all()


def test_phash_is_64_bit_hex_for_readable_images(synthetic_index):
    ok = synthetic_index[synthetic_index["status"] == "ok"]
    assert ok["phash"].str.fullmatch(r"[0-9a-f]{16}").all()


@pytest.mark.parametrize("name, modality, label, expected", [
    ("glioma (1).jpg", "MRI", "tumor", "glioma"),
    ("Meningioma (12).jpg", "MRI", "tumor", "meningioma"),
    ("pituitary (629).jpg", "MRI", "tumor", "pituitary"),
    ("Brain Tumor MRI images/Tumor/glioma (3).png", "MRI", "tumor", "glioma"),
    ("tumor (5).jpg", "MRI", "tumor", "unspecified"),
    ("gliomas_unsure (1).jpg", "MRI", "tumor", "unspecified"),
    ("ct_tumor (5).png", "CT", "tumor", "unspecified"),
    ("glioma (1).jpg", "CT", "tumor", "unspecified"),  # sub-types exist only for MRI
    ("mri_healthy (1).jpg", "MRI", "healthy", "none"),
    ("ct_healthy (1).jpg", "CT", "healthy", "none"),
])
def test_subtype_from_name(name, modality, label, expected):
    assert subtype_from_name(name, modality, label) == expected


def test_subtypes_in_the_index(synthetic_index):
    by = synthetic_index.groupby(["modality", "label"])["subtype"].agg(set).to_dict()
    assert by[("CT", "healthy")] == {"none"}
    assert by[("MRI", "healthy")] == {"none"}
    assert by[("CT", "tumor")] == {"unspecified"}
    assert by[("MRI", "tumor")] == {"glioma", "meningioma", "pituitary", "unspecified"}
    untyped = synthetic_index[synthetic_index["path"].str.contains("/tumor (", regex=False)]
    assert len(untyped) > 0 and (untyped["subtype"] == "unspecified").all()


def test_summarize_counts(synthetic_index, synthetic_ds):
    s = summarize(synthetic_index).set_index(["modality", "label", "subtype"])
    expected = synthetic_ds.files.groupby(["modality", "label", "subtype"]).size()
    assert s["images"].to_dict() == expected.to_dict()
    assert s["unreadable"].sum() == len(synthetic_ds.corrupt)
    assert set(",".join(s["formats"]).split(",")) == {"GIF", "JPEG", "PNG", "TIFF"}


# -- duplicate groups in the index ----------------------------------------------------------

def test_exact_duplicates_share_sha_and_group(synthetic_index, synthetic_ds):
    by_path = synthetic_index.set_index("path")
    for a, b in synthetic_ds.exact_pairs:
        assert by_path.at[a, "sha256"] == by_path.at[b, "sha256"]
        assert by_path.at[a, "group"] == by_path.at[b, "group"]


def test_perceptual_duplicates_share_phash_and_group_not_sha(synthetic_index, synthetic_ds):
    by_path = synthetic_index.set_index("path")
    for a, b in synthetic_ds.perceptual_pairs:
        assert by_path.at[a, "sha256"] != by_path.at[b, "sha256"]
        assert by_path.at[a, "phash"] == by_path.at[b, "phash"]
        assert by_path.at[a, "group"] == by_path.at[b, "group"]


def test_groups_are_exactly_the_planted_ones(synthetic_index, synthetic_ds):
    """Planted groups join; every other image (distinct picture, any mode) is alone."""
    assert _partition(synthetic_index) == synthetic_ds.partition()


def test_group_id_is_smallest_sha_of_the_group(synthetic_index):
    for gid, part in synthetic_index.groupby("group"):
        assert gid == "g" + min(part["sha256"])[:12]


# -- cache ------------------------------------------------------------------------------

@pytest.fixture
def counting_build(monkeypatch):
    calls = []
    real = index_mod.build_index

    def build(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(index_mod, "build_index", build)
    return calls


def test_cache_is_reused_then_invalidated(synthetic_copy, synthetic_index, tmp_path, monkeypatch,
                                          counting_build):
    config = Config(root=str(tmp_path / "proj"))
    root = synthetic_copy.root
    first = load_index(config, root=root, progress=False)  # parallel build (> 50 files)
    assert len(counting_build) == 1
    caches = list(config.cache_path.glob("index-*-p0.parquet"))
    assert len(caches) == 1 and first.attrs["fingerprint"] in caches[0].name
    assert first.attrs["root"] == str(root)
    # the parallel build gives the same table as the in-process one
    pd.testing.assert_frame_equal(first, synthetic_index)

    def fail(*a, **k):
        raise AssertionError("rebuilt although the data did not change")

    counting = index_mod.build_index
    monkeypatch.setattr(index_mod, "build_index", fail)
    second = load_index(config, root=root, progress=False)  # read from the parquet
    pd.testing.assert_frame_equal(second, first)
    assert second.attrs == first.attrs
    monkeypatch.setattr(index_mod, "build_index", counting)

    # adding a file changes the fingerprint and triggers a rebuild
    extra = root / synthetic.CT / "Healthy" / "ct_healthy (500).png"
    synthetic.write_png_rgb(synthetic.picture(np.random.default_rng(99)), extra)
    third = load_index(config, root=root, progress=False)
    assert len(counting_build) == 2
    assert third.attrs["fingerprint"] != first.attrs["fingerprint"]
    assert len(third) == len(first) + 1 and extra.relative_to(root).as_posix() in set(third["path"])

    # removing one changes it again (and does not fall back to the first cache by accident)
    (root / synthetic_copy.ok_files["path"].iloc[0]).unlink()
    extra.unlink()
    fourth = load_index(config, root=root, progress=False)
    assert len(counting_build) == 3
    assert fourth.attrs["fingerprint"] not in (first.attrs["fingerprint"], third.attrs["fingerprint"])
    assert len(fourth) == len(first) - 1

    # rebuild=True ignores a valid cache
    load_index(config, root=root, rebuild=True, progress=False)
    assert len(counting_build) == 4


def test_cache_key_includes_phash_threshold(synthetic_copy, tmp_path, counting_build):
    base = Config(root=str(tmp_path / "proj"))
    load_index(base, root=synthetic_copy.root, progress=False)
    load_index(base.replace(phash_threshold=2), root=synthetic_copy.root, progress=False)
    assert len(counting_build) == 2
    assert len(list(base.cache_path.glob("*.parquet"))) == 2


def test_fingerprint_ignores_location_but_not_content(synthetic_copy, tmp_path):
    root = synthetic_copy.root
    fp = dataset_fingerprint(root)
    moved = tmp_path / "elsewhere"
    shutil.copytree(root, moved)
    assert dataset_fingerprint(moved) == fp
    victim = moved / synthetic_copy.ok_files["path"].iloc[3]
    victim.write_bytes(victim.read_bytes() + b"\x00")  # replaced by a file of another size
    assert dataset_fingerprint(moved) != fp


def test_load_index_locates_the_dataset_itself(synthetic_ds, tmp_path, monkeypatch):
    monkeypatch.setenv("BRAINTUMOR_DATA_DIR", str(synthetic_ds.base))
    df = load_index(Config(root=str(tmp_path / "p")), progress=False)
    assert df.attrs["root"] == str(synthetic_ds.root.resolve())
    assert len(df) == len(synthetic_ds.files)


# -- assign_groups on hand-made hashes -------------------------------------------------------

def _sha(i: int) -> str:
    return hashlib.sha256(str(i).encode()).hexdigest()


def _frame(rows):
    """rows: (path, sha index or None, phash hex or "")."""
    return pd.DataFrame({"path": [r[0] for r in rows],
                         "sha256": [_sha(r[1]) if r[1] is not None else "" for r in rows],
                         "phash": [r[2] for r in rows]})


def test_threshold_zero_joins_only_equal_hashes():
    df = _frame([("a", 1, "0000000000000000"), ("b", 2, "0000000000000001"),  # one bit apart
                 ("c", 3, "0000000000000003"),  # two bits from a, one from b
                 ("d", 4, "ffffffffffffffff"), ("e", 5, "ffffffffffffffff")])
    assert _partition(df.assign(group=assign_groups(df, 0))) == {
        frozenset("a"), frozenset("b"), frozenset("c"), frozenset("de")}
    assert _partition(df.assign(group=assign_groups(df, 1))) == {frozenset("abc"), frozenset("de")}
    assert _partition(df.assign(group=assign_groups(df, 2))) == {frozenset("abc"), frozenset("de")}


def test_threshold_two_is_a_hamming_radius_not_a_prefix():
    df = _frame([("a", 1, "8000000000000001"), ("b", 2, "0000000000000000"),
                 ("c", 3, "c000000000000003")])  # a-b: 2 bits, a-c: 2 bits, b-c: 4 bits
    assert _partition(df.assign(group=assign_groups(df, 1))) == {frozenset("a"), frozenset("b"),
                                                                  frozenset("c")}
    assert _partition(df.assign(group=assign_groups(df, 2))) == {frozenset("abc")}  # via a


def test_transitive_join_across_sha_and_phash():
    # A = B by bytes, B ~ C by pHash, C ~ D by pHash: one group; E alone
    df = _frame([("A", 1, "1111111111111111"), ("B", 1, "2222222222222222"),
                 ("C", 3, "2222222222222222"), ("D", 4, "2222222222222222"),
                 ("E", 5, "3333333333333333")])
    groups = assign_groups(df)
    assert groups.nunique() == 2
    assert len(set(groups[:4])) == 1 and groups[4] != groups[0]
    assert groups[0] == "g" + min(_sha(1), _sha(3), _sha(4))[:12]


def test_unreadable_rows_never_join_through_empty_phash():
    df = _frame([("a", 1, ""), ("b", 2, ""), ("c", None, ""), ("d", None, "")])
    groups = assign_groups(df, 0)
    assert groups.nunique() == 4
    assert assign_groups(df, 4).nunique() == 4  # empty phash is not the all-zero hash
    # rows without any hash are named by their path, stably
    assert groups[2] == "g" + hashlib.sha256(b"c").hexdigest()[:12]


def test_group_ids_stable_under_row_shuffling_and_index_labels(synthetic_index):
    base = assign_groups(synthetic_index)
    rng = np.random.default_rng(0)
    for threshold in (0, 3):
        ref = assign_groups(synthetic_index, threshold)
        shuffled = synthetic_index.sample(frac=1, random_state=int(rng.integers(1 << 30)))
        shuffled.index = shuffled.index + 1000  # non-RangeIndex labels must be kept
        got = assign_groups(shuffled, threshold)
        assert got.index.equals(shuffled.index)
        pd.testing.assert_series_equal(got.sort_index(), ref.set_axis(ref.index + 1000), check_names=False)
    assert (base == synthetic_index["group"]).all()


def test_phash_bits_roundtrip():
    bits = phash_bits(["ffffffffffffffff", "", "0000000000000001"])
    assert bits.dtype == np.uint64 and bits.tolist() == [2**64 - 1, 0, 1]


def test_looser_threshold_on_synthetic_data_only_merges(synthetic_index):
    """Groups at threshold t+k are unions of groups at t (never split)."""
    g0 = assign_groups(synthetic_index, 0)
    g4 = assign_groups(synthetic_index, 4)
    assert (pd.crosstab(g0, g4) > 0).sum(axis=1).max() == 1
    table = threshold_comparison(synthetic_index, (0, 2, 4)).set_index("phash_threshold")
    assert table.loc[0, "groups"] == synthetic_index["group"].nunique()
    assert table["groups"].is_monotonic_decreasing


# -- duplicate_report -----------------------------------------------------------------------

def test_duplicate_report_on_synthetic_data(synthetic_index, synthetic_ds):
    rep = duplicate_report(synthetic_index)
    planted = synthetic_ds.groups
    assert rep["n_images"] == len(synthetic_ds.files)
    assert rep["n_groups"] == len(synthetic_ds.partition())
    assert rep["n_groups_size_gt1"] == len(planted)
    assert rep["images_in_groups_size_gt1"] == sum(len(g) for g in planted)
    assert rep["largest_group"] == max(len(g) for g in planted)
    [conflict] = rep["label_conflict_groups"]
    assert conflict["paths"] == sorted(synthetic_ds.label_conflict)
    assert conflict["labels"] == ["healthy", "tumor"]
    [cross] = rep["cross_modality_groups"]
    assert set(cross["paths"]) == synthetic_ds.cross_modality and cross["modalities"] == ["CT", "MRI"]
    in_dups = {p for g in planted for p in g}
    for key, v in rep["by_class"].items():
        modality, label = key.split()
        cls = synthetic_ds.files[(synthetic_ds.files["modality"] == modality)
                                 & (synthetic_ds.files["label"] == label)]
        assert v == {"images": len(cls), "in_duplicate_groups": int(cls["path"].isin(in_dups).sum())}
    assert rep["subtype_conflict_groups"] == 0  # glioma + untyped is not a conflict


def test_duplicate_report_flags_subtype_conflicts():
    df = pd.DataFrame({"path": list("abcd"), "group": ["g1", "g1", "g2", "g2"],
                       "label": ["tumor"] * 4, "modality": ["MRI"] * 4,
                       "subtype": ["glioma", "meningioma", "glioma", "unspecified"]})
    rep = duplicate_report(df)
    assert rep["subtype_conflict_groups"] == 1
    assert rep["label_conflict_groups"] == [] and rep["cross_modality_groups"] == []
