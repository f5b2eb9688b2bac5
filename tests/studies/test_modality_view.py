"""A pooled run re-scored on MRI inputs only, from predictions written to a temporary project."""
import numpy as np
import pandas as pd
import pytest

from braintumor.data.dataset import MODALITY_FOLDERS
from braintumor.studies.modality_view import KAGGLE, external_rows, kaggle_rows, modality_view


def _write(root, seed, rng):
    """A run whose MRI predictions are right and whose CT predictions are inverted, and an
    external set where the CT-looking and overlapping rows are wrong too."""
    n = 40
    y = np.tile([0, 1], n)
    mri = pd.DataFrame({"path": [f"{MODALITY_FOLDERS['MRI']}/x{i}.jpg" for i in range(2 * n)], "y": y,
                        "p": np.where(y == 1, 0.9, 0.1) + rng.normal(0, 0.01, 2 * n)})
    ct = pd.DataFrame({"path": [f"{MODALITY_FOLDERS['CT']}/c{i}.jpg" for i in range(2 * n)], "y": y,
                       "p": np.where(y == 1, 0.1, 0.9)})
    kaggle = pd.concat([mri, ct]).assign(group=lambda d: d["path"], pred=lambda d: (d["p"] > 0.5).astype(int))
    (root / f"k{seed}").mkdir()
    kaggle.to_csv(root / f"k{seed}" / "predictions.csv", index=False)
    ext = pd.DataFrame({"label": np.where(y == 1, "tumor", "healthy"), "group": [f"pt{i // 10}" for i in range(2 * n)],
                        "p": np.where(y == 1, 0.8, 0.2), "modality": "MRI", "excluded": pd.Series([None] * (2 * n), dtype=object)})
    wrong = ext.assign(p=np.where(y == 1, 0.2, 0.8))
    wrong.loc[: n - 1, "modality"] = "CT"
    wrong.loc[n:, "excluded"] = "overlap"
    (root / f"e{seed}").mkdir()
    pd.concat([ext, wrong]).to_csv(root / f"e{seed}" / "predictions.csv", index=False)
    return {"seed": seed, "report_dir": f"k{seed}", "threshold": {"threshold": 0.5},
            "external": {"same-scan": {"report_dir": f"e{seed}"}, "absent": {"missing": "not found"}}}


def test_only_mri_rows_that_were_kept_are_scored(tmp_path):
    rng = np.random.default_rng(0)
    records = [_write(tmp_path, s, rng) for s in (1, 2)]
    assert len(kaggle_rows(tmp_path, records[0])) == 80
    assert len(external_rows(tmp_path, records[0], "same-scan")) == 80
    assert external_rows(tmp_path, records[0], "absent") is None

    view = modality_view(tmp_path, records, ["same-scan", "absent"])
    assert set(view) == {KAGGLE, "same-scan"}
    for entry in view.values():
        assert entry["n_seeds"] == 2 and entry["n_images"] == 80
        # the inverted CT / excluded rows would pull the AUC to 0.5 if they were counted
        assert entry["metrics"]["roc_auc"]["value"] == pytest.approx(1.0)
        assert entry["metrics"]["sensitivity"]["value"] == pytest.approx(1.0)
        assert entry["metrics"]["sensitivity"]["low"] < 1.0  # edge-holding interval, not [1, 1]
    assert view["same-scan"]["within_group_auc_median"] == pytest.approx(1.0)
    assert view[KAGGLE]["within_group_auc_median"] is None  # one image per group
