"""The source recipes ``balanced`` and ``within`` and the source labels they share, on a
generated Kaggle-layout dataset whose sources differ by acquisition (size, format, mode,
brightness), plus one check on the real MRI data."""
from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from braintumor import recipes
from braintumor.config import Config
from braintumor.data.index import build_index
from braintumor.data.splits import group_aware_split, write_manifest
from braintumor.recipes import _sources, balanced, within
from braintumor.study import load_split

PROJECT = Path(__file__).resolve().parents[1]
MRI, CT = "Brain Tumor MRI images", "Brain Tumor CT scan Images"
# source -> (modality, (healthy, tumour), (height, width), format, mode, mean grey); sources
# starting with "_" are not in the attribution file (left to the acquisition clusters).
SOURCES = {
    "mixed": (MRI, (45, 100), (48, 48), "PNG", "L", 60),
    "healthyonly": (MRI, (40, 0), (64, 80), "JPEG", "RGB", 170),
    "tumouronly": (MRI, (0, 15), (40, 40), "PNG", "RGB", 120),
    "_mri_unmatched": (MRI, (40, 60), (72, 72), "JPEG", "L", 200),
    "_ct_a": (CT, (30, 20), (56, 56), "PNG", "L", 80),
    "_ct_b": (CT, (0, 30), (60, 90), "JPEG", "RGB", 150),
    "_ct_c": (CT, (20, 0), (90, 60), "JPEG", "L", 210),  # k-means tries 3 clusters or more
}


def make_sourced(base: Path, with_sources_file: bool = True) -> dict:
    """A dataset in Kaggle layout under ``base/Dataset``, its manifest in ``base/project``,
    and (optionally) ``base/mri_sources.csv`` naming the MRI sources without a leading ``_``."""
    root, rng = base / "Dataset", np.random.default_rng(11)
    attribution, n = [], {}
    for source, (modality, counts, (h, w), fmt, mode, mean) in SOURCES.items():
        for label, count in zip(("Healthy", "Tumor"), counts):
            folder = root / modality / label
            folder.mkdir(parents=True, exist_ok=True)
            stem = ("ct_" if modality == CT else "mri_") + label.lower() if label == "Healthy" or modality == CT \
                else "glioma"
            for _ in range(count):
                n[stem] = n.get(stem, 0) + 1
                grey = np.clip(rng.normal(mean, 30, (h, w)), 0, 255).astype(np.uint8)
                image = Image.fromarray(grey).convert(mode)
                name = f"{stem} ({n[stem]}).{'png' if fmt == 'PNG' else 'jpg'}"
                image.save(folder / name, format=fmt)
                if not source.startswith("_"):
                    attribution.append((f"Dataset/{modality}/{label}/{name}", source))
    if with_sources_file:
        pd.DataFrame(attribution, columns=["path", "source"]).to_csv(base / "mri_sources.csv", index=False)
    project = base / "project"
    manifest = group_aware_split(build_index(root, workers=1, progress=False), (0.6, 0.2, 0.2), seed=3)
    write_manifest(manifest, project / "data" / "splits" / "default.csv")
    config = Config(task="mri", preprocess="none", recipe="none", data_dir=str(root), root=str(project),
                    image_size=32, seed=5)
    return {"root": root, "config": config, "base": base}


@pytest.fixture(scope="module")
def sourced(tmp_path_factory):
    return make_sourced(tmp_path_factory.mktemp("sourced"))


def _named_truth(split) -> pd.Series:
    """The generator's source of each row (from the file name's folder and number)."""
    table = pd.read_csv(split.root.parent / "mri_sources.csv")
    table["path"] = table["path"].str.removeprefix("Dataset/")
    return split.rows["path"].map(dict(zip(table["path"], table["source"])))


def test_sources_name_collections_and_cluster_the_rest(sourced):
    split = load_split(sourced["config"], "train", progress=False)
    source = _sources.split_sources(split, sourced["config"])
    assert source.index.equals(split.rows.index)
    truth = _named_truth(split)
    named = truth.notna()
    assert (source[named] == truth[named]).all()
    unmatched = source[~named]
    assert unmatched.nunique() == 1 and unmatched.iloc[0].startswith("mri-c")


def test_pooled_sources_carry_the_modality(sourced):
    config = sourced["config"].replace(task="pooled")
    split = load_split(config, "train", progress=False)
    source = _sources.split_sources(split, config)
    prefix = split.rows["modality"].str.lower() + "-"
    assert all(s.startswith(p) for s, p in zip(source, prefix))
    assert {"mri-mixed", "mri-healthyonly", "mri-tumouronly"} <= set(source)
    assert source[split.rows["modality"] == "CT"].nunique() == 3  # the three CT acquisitions


def test_balanced_gives_every_source_and_class_the_same_count(sourced):
    config = sourced["config"]
    split = load_split(config, "train", progress=False)
    groups = _sources.split_groups(split, config)
    before = groups.value_counts()
    assert before.max() > 2 * before.min()  # unbalanced to start with
    idx = balanced.select(split, config)
    after = groups.iloc[idx].value_counts()
    assert set(after.index) == set(before.index)  # every group that exists, none invented
    assert after.max() - after.min() == 0
    assert abs(len(idx) - len(split.rows)) <= len(before) / 2  # about the original size
    for g in before.index:  # an upsampled group keeps every row; a downsampled one distinct rows
        rows = np.flatnonzero(groups.to_numpy() == g)
        chosen = idx[np.isin(idx, rows)]
        assert len(np.unique(chosen)) == min(len(rows), after[g])


def test_balanced_is_deterministic_per_seed_and_leaves_validation_alone(sourced):
    config = sourced["config"]
    split = load_split(config, "train", progress=False)
    first = balanced.select(split, config)
    np.testing.assert_array_equal(first, balanced.select(load_split(config, "train", progress=False), config))
    assert not np.array_equal(first, balanced.select(split, config.replace(seed=6)))
    assert balanced.select(load_split(config, "val", progress=False), config) is None
    assert within.select(load_split(config, "val", progress=False), config) is None


def test_balanced_positions_keep_tiny_groups_once():
    groups = np.array(["a"] * 50 + ["b"] * 10 + ["c"] * 2)
    with pytest.warns(UserWarning, match="fewer than 5 rows kept once each: c"):
        idx = balanced.balanced_positions(groups, seed=0)
    counts = pd.Series(groups[idx]).value_counts()
    assert counts["c"] == 2 and counts["a"] == counts["b"] == 30


def test_within_drops_single_class_sources(sourced):
    config = sourced["config"]
    split = load_split(config, "train", progress=False)
    source = _sources.split_sources(split, config)
    idx = within.select(split, config)
    assert len(np.unique(idx)) == len(idx)  # each row once
    kept = set(source.iloc[idx])
    assert "mixed" in kept and any(s.startswith("mri-c") for s in kept)
    assert not {"healthyonly", "tumouronly"} & kept
    assert set(np.flatnonzero(source.isin(kept).to_numpy())) == set(idx)  # all rows of kept sources
    np.testing.assert_array_equal(idx, within.select(split, config.replace(seed=9)))


def test_within_needs_the_minimum_of_every_class():
    source = np.array(["a"] * 40 + ["b"] * 40)
    y = np.array([0] * 20 + [1] * 20 + [0] * 30 + [1] * 10)
    assert set(source[within.mixed_source_positions(source, y, 2)]) == {"a"}
    assert set(source[within.mixed_source_positions(source, y, 2, min_per_class=10)]) == {"a", "b"}
    with pytest.raises(ValueError, match="no source has 50"):
        within.mixed_source_positions(source, y, 2, min_per_class=50)


def test_without_the_sources_file_clusters_only_with_a_warning(sourced, tmp_path):
    base = tmp_path / "copy"
    shutil.copytree(sourced["root"], base / "Dataset")
    shutil.copytree(sourced["config"].root_path / "data" / "splits", base / "project" / "data" / "splits")
    config = sourced["config"].replace(data_dir=str(base / "Dataset"), root=str(base / "project"))
    split = load_split(config, "train", progress=False)
    with pytest.warns(UserWarning, match="acquisition clusters only"):
        source = _sources.split_sources(split, config)
    assert source.str.fullmatch(r"mri-c\d+").all()
    assert source.nunique() >= 3  # the four MRI acquisitions are still told apart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idx = balanced.select(split, config)
        within_idx = within.select(split, config)
        after = _sources.split_groups(split, config).iloc[idx].value_counts()
    assert after.max() == after.min() and len(within_idx) > 0


def test_the_recipes_are_registered_and_fingerprint_their_source_code(tmp_path):
    from braintumor.studies.spec import code_fingerprint

    assert {"balanced", "within"} <= set(recipes.available()) and "_sources" not in recipes.available()
    recipes.check("balanced", binary_task=False, task_name="mri_subtype")
    with pytest.raises(ValueError, match="both choose the training rows"):
        recipes.check("balanced+within", binary_task=True)
    import braintumor
    package = tmp_path / "braintumor"
    shutil.copytree(Path(braintumor.__file__).resolve().parent, package,
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = {r: code_fingerprint(r, package) for r in ("none", "balanced", "within")}
    for rel in ("audit/sources.py", "audit/representations.py", "recipes/_sources.py"):
        with open(package / rel, "a") as f:
            f.write("\n# changed\n")
        after = {r: code_fingerprint(r, package) for r in before}
        assert after["none"] == before["none"]
        assert after["balanced"] != before["balanced"] and after["within"] != before["within"]
        before = after


@pytest.mark.integration
@pytest.mark.slow
def test_real_mri_sources_and_balancing(real_dataset, real_index):
    """The MRI rows' sources are the committed audit's class mix; balancing evens the groups."""
    config = Config(task="mri", preprocess="none", recipe="none", data_dir=str(real_dataset), root=str(PROJECT))
    assert config.seed == _sources.CLUSTER_SEED and config.image_size == 224  # the audit's settings
    from braintumor.audit.sources import row_sources
    import braintumor.audit.sources as audit_sources

    every = load_split(config, None, progress=False)
    source = row_sources(every.rows, config, real_dataset, seed=_sources.CLUSTER_SEED, index=real_index)
    committed = json.loads((PROJECT / "reports" / "audit" / "sources.json").read_text())
    mix = audit_sources.class_mix(every.rows, source)
    assert mix == committed["tasks"]["mri"]["class_mix"]

    train = load_split(config, "train", progress=False)
    train_source = row_sources(train.rows, config, real_dataset, seed=_sources.CLUSTER_SEED, index=real_index)
    assert train_source.tolist() == train.rows["path"].map(dict(zip(every.rows["path"], source))).tolist()
    train_mix = pd.crosstab(train_source, train.rows["label"])
    assert train_mix.loc["br35h_no", "tumor"] == 0 and train_mix.loc["br35h_no", "healthy"] > 0
    assert train_mix.loc["figshare", "healthy"] == 0
    groups = train_source + "|" + train.rows["label"]
    idx = balanced.balanced_positions(groups.to_numpy(), config.seed)
    after = groups.iloc[idx].value_counts()
    equal = len(train.rows) / len(after)
    assert ((after - equal).abs() <= 0.2 * equal).all(), after.to_dict()
    print("before:", groups.value_counts().to_dict(), "\nafter:", after.to_dict())
