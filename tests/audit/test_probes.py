"""The shortcut audit's probe harness on synthetic heads with text planted in one class."""
from __future__ import annotations


import numpy as np
import pandas as pd

from braintumor.audit import probes, representations
from braintumor.config import Config
from braintumor.preprocess import prepare_image
from heads import SIZE, images, probe_rows  # noqa: F401 - images is a fixture


# ------------------------------------------------------------------------------ probes
def border_features(imgs, preprocess: str) -> np.ndarray:
    prepared = np.stack([prepare_image(img, SIZE, preprocess) for img in imgs])
    return representations.thumbnails(representations.blank_centre(prepared, 0.70), 32)


def test_border_probe_separates_on_text_and_drops_to_chance_after_masking(images):
    imgs, y = images
    rows = probe_rows(y)
    settings = Config().replace(audit={"n_resamples": 200, "c_grid": (0.01, 0.1, 1.0)})
    raw = probes.run_probe(border_features(imgs, "none"), rows, settings)
    mitigated = probes.run_probe(border_features(imgs, "crop-mask"), rows, settings)
    assert raw["accuracy"]["value"] >= 0.9
    assert mitigated["accuracy"]["value"] <= 0.65
    assert mitigated["roc_auc"]["value"] <= 0.75


def test_outside_head_view_is_empty_after_mitigation(images):
    imgs, y = images
    for img in (imgs[0], imgs[-1]):
        raw_outside, raw_head = representations.head_views(prepare_image(img, SIZE, "none"))
        outside, head = representations.head_views(prepare_image(img, SIZE, "crop-mask"))
        assert outside.max() == 0 and head.max() > 0 and raw_head.max() > 0
    assert raw_outside.max() > 200  # the text of the last image (class 1) is outside the head


def test_permutation_control_lands_at_chance():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 60)
    x = rng.normal(size=(120, 20)) + 2.0 * y[:, None]  # perfectly learnable
    rows = probe_rows(y)
    settings = Config().replace(audit={"n_resamples": 200, "c_grid": (0.01, 1.0)})
    honest = probes.run_probe(x, rows, settings)
    control = probes.permutation_control(x, rows, settings, observed=honest)
    assert honest["accuracy"]["value"] >= 0.95
    assert 0.35 <= control["accuracy"]["value"] <= 0.65  # mean over the shufflings
    assert len(control["permutations"]) == settings.audit.n_permutations == 20
    # The empirical null and the permutation p-value of the unshuffled probe. On clustered
    # features a shuffle can still land at 0 or 1 (labels of a cluster move together), which
    # is why one shuffle is not a control and p counts every shuffle at least as good.
    for metric in ("accuracy", "roc_auc"):
        null = np.array([r[metric]["value"] for r in control["permutations"]])
        expected = (1 + np.sum(null >= honest[metric]["value"])) / 21
        assert control["p_value"][metric] == expected
        assert control["null"][metric]["q025"] <= control["null"][metric]["mean"] <= control["null"][metric]["q975"]
    singles = [r["accuracy"]["value"] for r in control["permutations"]]
    assert len(set(singles)) > 1  # each shuffle differs
    assert control["accuracy"]["low"] == min(singles) and control["accuracy"]["high"] == max(singles)


def test_random_split_keeps_sizes_and_counts_leaks():
    rows = pd.DataFrame({"group": ["a", "a", "b", "b", "c", "d"],
                         "split": ["train", "train", "val", "val", "test", "test"]})
    random = probes.random_split_like(rows, seed=0)
    assert random.value_counts().to_dict() == rows["split"].value_counts().to_dict()
    assert probes.leaked_test_images(rows, rows["split"]) == 0
    leaky = pd.Series(["train", "test", "train", "val", "val", "test"])
    assert probes.leaked_test_images(rows, leaky) == 1


def test_image_statistics_columns_are_fixed_by_the_index():
    index = pd.DataFrame({"path": ["a", "b", "c"], "width": [256, 200, 256], "height": [256, 180, 256],
                          "bytes": [1000, 2000, 3000], "format": ["JPEG", "PNG", "JPEG"],
                          "mode": ["RGB", "L", "RGBA"]})
    images = np.zeros((2, 8, 8, 3), np.uint8)
    x = representations.image_statistics(index.iloc[[2, 0]].reset_index(drop=True), index, images)
    assert x.shape == (2, 6 + 2 + 3)  # 6 numeric, 2 formats, 3 modes


# --------------------------------------------------------------------- real CT tumours


def test_a_probe_that_calls_everything_one_class_has_an_interval_with_width():
    """Balanced accuracy of a constant call is 0.5 in every bootstrap resample; the report
    holds the edge with the recalls' Wilson intervals, as a model's report does."""
    y = np.r_[np.zeros(300, int), np.ones(449, int)]
    p = np.full(y.size, 0.3)  # everything 'healthy'
    report = probes.heldout_report(y, p, np.arange(y.size), n_resamples=200, seed=0)
    bal = report["balanced_accuracy"]
    assert bal["value"] == 0.5 and bal["low"] < 0.5 < bal["high"] and bal["interval"] == "wilson-mover"
    assert report["accuracy"]["interval"] == "bootstrap" and report["accuracy"]["low"] < report["accuracy"]["high"]
