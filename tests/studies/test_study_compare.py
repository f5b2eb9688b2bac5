"""Paired comparison of two sides, including two tasks on the test images they share."""
import numpy as np
import pandas as pd
import pytest

from braintumor.errors import BrainTumorError
from braintumor.studies.compare import compare_sides


def _side(label, paths, y, p):
    df = pd.DataFrame({"path": paths, "group": paths, "y": y, "p": p})
    return {"label": label, "predictions": df.assign(pred=(df["p"] > 0.5).astype(int)), "report": None,
            "card": None, "folder": label}


def test_two_tasks_are_compared_on_the_images_they_share():
    rng = np.random.default_rng(0)
    y = np.tile([0, 1], 30)
    mri = [f"MRI/{i}.jpg" for i in range(60)]
    good = np.where(y == 1, 0.8, 0.2) + rng.normal(0, 0.05, 60)
    worse = np.where(y == 1, 0.6, 0.4) + rng.normal(0, 0.2, 60)
    a = _side("mri", mri, y, worse)
    # the pooled side also holds CT images it gets all wrong: they must not count
    b = _side("pooled", mri + [f"CT/{i}.jpg" for i in range(40)], np.r_[y, np.tile([0, 1], 20)],
              np.r_[good, np.tile([0.9, 0.1], 20)])

    with pytest.raises(BrainTumorError, match="not evaluated on the same test images"):
        compare_sides(a, b, n_resamples=200)
    result = compare_sides(a, b, n_resamples=200, common_rows=True)
    assert result["n_images"] == 60
    assert result["rows"] == "the 60 test images both were tested on (of 60 and 100)"
    assert result["metrics"]["roc_auc"]["b"] > 0.99 and result["metrics"]["roc_auc"]["difference"] > 0

    # neither side's images inside the other's: still refused
    c = _side("other", mri[:30] + [f"X/{i}.jpg" for i in range(30)], y, good)
    with pytest.raises(BrainTumorError, match="not evaluated on the same test images"):
        compare_sides(a, c, n_resamples=200, common_rows=True)
