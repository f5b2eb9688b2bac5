"""The source audit: attribution, acquisition clusters, within-source and leave-one-source-out
probes — on generated features where the answer is known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from braintumor.audit.sources import (acquisition_clusters, assign_sources, class_mix, find_sources_file,
                                      leave_one_source_out, read_sources, within_source)
from braintumor.config import AuditSettings, Config
from braintumor.errors import DatasetError

CONFIG = Config(audit=AuditSettings(n_resamples=50))


def _rows(n_per: dict[str, tuple[int, int]], seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    """Rows of sources with (healthy, tumour) counts, a split column, groups, labels."""
    rng = np.random.default_rng(seed)
    parts = []
    for source, (h, t) in n_per.items():
        y = np.r_[np.zeros(h, int), np.ones(t, int)]
        parts.append(pd.DataFrame({"source": source, "y": y}))
    rows = pd.concat(parts, ignore_index=True)
    rows["split"] = rng.choice(["train", "val", "test"], len(rows), p=[0.6, 0.2, 0.2])
    rows["group"] = [f"g{i}" for i in range(len(rows))]
    rows["label"] = np.where(rows["y"] == 1, "tumor", "healthy")
    rows["modality"] = "MRI"
    rows["path"] = [f"MRI/{i}.jpg" for i in range(len(rows))]
    return rows, rows["source"]


def _features(rows: pd.DataFrame, signal: float, style: float, seed: int = 0) -> np.ndarray:
    """Column 0 carries the label (strength ``signal``); column 1 the source (``style``)."""
    rng = np.random.default_rng(seed)
    codes = rows["source"].astype("category").cat.codes.to_numpy()
    return np.column_stack([signal * rows["y"] + rng.normal(0, 1, len(rows)),
                            style * codes + rng.normal(0, 1, len(rows)), rng.normal(0, 1, (len(rows), 3))])


def test_within_source_auc_only_where_a_source_holds_both_classes():
    rows, source = _rows({"a": (150, 150), "b": (200, 0), "c": (4, 6)})
    out = within_source(_features(rows, 3.0, 0.0), rows, source, CONFIG)
    assert set(out) == {"all", "a"}  # b has one class, c too few images
    assert out["a"]["roc_auc"]["value"] > 0.9 and out["a"]["n_test"] == int(((rows.split == "test") & (source == "a")).sum())


def test_a_shortcut_model_is_at_chance_within_the_source():
    """Label = source outside 'mixed'; inside it the label has no signal: within-source AUC ~0.5
    although the overall test AUC is high — the pattern of the Kaggle MRI data."""
    rows, source = _rows({"mixed": (300, 300), "healthy_only": (400, 0), "tumour_only": (0, 400)}, seed=1)
    out = within_source(_features(rows, 0.0, 4.0, seed=1), rows, source, CONFIG)
    assert out["all"]["roc_auc"]["value"] > 0.75
    assert abs(out["mixed"]["roc_auc"]["value"] - 0.5) < 0.12


def test_leave_one_source_out_reports_accuracy_for_single_class_sources():
    rows, source = _rows({"a": (150, 150), "b": (120, 0), "small": (10, 10)}, seed=2)
    out = leave_one_source_out(_features(rows, 3.0, 0.0, seed=2), rows, source, CONFIG)
    assert "small" not in out  # below min_images
    assert out["b"]["only_class"] == 0 and out["b"]["n_test"] == 120 and out["b"]["accuracy"] > 0.8
    assert "roc_auc" in out["a"]


def test_acquisition_clusters_recover_separated_groups():
    rng = np.random.default_rng(0)
    stats = np.vstack([rng.normal(0, 0.3, (60, 4)), rng.normal(5, 0.3, (60, 4)), rng.normal(-5, 0.3, (60, 4))])
    labels, info = acquisition_clusters(stats, k_range=range(2, 6))
    assert info["k"] == 3
    assert len(set(labels[:60])) == 1 and len(set(labels[60:120])) == 1 and labels[0] != labels[60]


def test_named_sources_win_and_the_rest_get_clusters():
    rows, _ = _rows({"x": (2, 2)})
    attribution = pd.DataFrame({"path": [rows.path[0], rows.path[1]], "source": ["sartaj", "unmatched"]})
    source = assign_sources(rows, attribution, np.array([0, 1, 1, 2]))
    assert source.tolist() == ["sartaj", "mri-c1", "mri-c1", "mri-c2"]
    assert class_mix(rows, source)["mri-c1"] == {"healthy": 1, "tumor": 1}


def test_attribution_file_paths_match_the_manifest(tmp_path):
    csv = tmp_path / "mri_sources.csv"
    pd.DataFrame({"path": ["Dataset/Brain Tumor MRI images/Healthy/a.jpg", "Brain Tumor MRI images/Tumor/b.jpg"],
                  "source": ["sartaj", "figshare"], "label": ["Healthy", "Tumor"]}).to_csv(csv, index=False)
    table = read_sources(csv)
    assert table["path"].tolist() == ["Brain Tumor MRI images/Healthy/a.jpg", "Brain Tumor MRI images/Tumor/b.jpg"]
    dataset = tmp_path / "Dataset"
    dataset.mkdir()
    assert find_sources_file(dataset) == csv  # found beside the dataset folder
    with pytest.raises(DatasetError, match="--sources"):
        find_sources_file(dataset, tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("file,collection\na,b\n")
    with pytest.raises(DatasetError, match="path and source"):
        read_sources(tmp_path / "bad.csv")


@pytest.mark.integration
@pytest.mark.slow
def test_source_audit_on_the_real_mri_subset(real_dataset, tmp_path, capsys, monkeypatch):
    """The CLI on a small subset of the real MRI images with the mirror's attribution file."""
    import json
    import os
    from pathlib import Path

    from braintumor import cli

    # The committed manifest lives in the checkout (its caches are shared, as in the notebook test).
    monkeypatch.setenv("BRAINTUMOR_ROOT", str(Path(__file__).resolve().parents[2]))

    shared = os.environ.get("BRAINTUMOR_SHARED_DIR")
    sources = (os.path.join(shared, "datasets", "brain-tumor-multimodal-ct-mri", "mri_sources.csv")
               if shared else None)
    if sources is None or not os.path.isfile(sources):
        sources_file = find_sources_file(real_dataset)
        assert sources_file is not None, "set BRAINTUMOR_SHARED_DIR or keep mri_sources.csv beside the dataset"
        sources = str(sources_file)
    out = tmp_path / "sources.json"
    code = cli.main(["audit-sources", "--data-dir", str(real_dataset), "--sources", sources, "--tasks", "mri",
                     "--limit-per-class", "15", "--resamples", "50", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())["tasks"]["mri"]
    assert report["class_mix"]["sartaj"]["healthy"] > 0 and report["class_mix"]["sartaj"]["tumor"] > 0
    assert report["class_mix"].get("br35h_no", {}).get("tumor", 0) == 0  # Br35H here is tumour-free only
    assert set(report["arms"]) == {"none", "crop-mask", "crop-mask+lesions"}
    assert "within-source AUC" in capsys.readouterr().out
