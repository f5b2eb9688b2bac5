"""study.load_split: the one way every stage gets a task's rows, images and manifest."""
from __future__ import annotations

import pytest

from braintumor.config import Config
from braintumor.data.index import build_index
from braintumor.data.splits import group_aware_split, write_manifest
from braintumor.study import load_split, quick_per_class


@pytest.fixture
def config(synthetic_ds, tmp_path):
    cfg = Config(data_dir=str(synthetic_ds.base), root=str(tmp_path / "project"), image_size=32)
    manifest = group_aware_split(build_index(synthetic_ds.root, workers=1, progress=False))
    write_manifest(manifest, cfg.manifest_path)
    return cfg


def test_rows_manifest_reference_and_images(config):
    split = load_split(config, "train", "ct", progress=False)
    assert set(split.rows["split"]) == {"train"} and set(split.rows["modality"]) == {"CT"}
    assert split.manifest.path == "data/splits/default.csv" and len(split.manifest.sha256) == 64
    assert split.images.shape == (len(split.rows), 32, 32, 3)
    assert list(split.y) == list(split.rows["y"])


def test_quick_rule_is_applied_once_per_split(config):
    quick = config.replace(quick=True, quick_per_class=30)
    assert quick_per_class(quick, "train") == 30 and quick_per_class(quick, "val") == 10
    assert quick_per_class(config, "train") is None
    rows = load_split(quick, "train", "mri", progress=False).rows
    assert rows.groupby("y").size().max() <= 30
    full = load_split(quick, "train", "mri", per_class=None, progress=False).rows
    assert len(full) >= len(rows)


def test_every_split_with_a_limit_per_split_and_class_keeps_manifest_order(config):
    rows = load_split(config, None, "mri", per_class=2, progress=False).rows
    assert rows.groupby(["split", "y"]).size().max() <= 2
    assert list(rows["path"]) == sorted(rows["path"])
