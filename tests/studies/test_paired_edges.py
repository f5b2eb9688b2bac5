"""Paired differences that every bootstrap resample agrees on get an interval with width."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from braintumor.metrics import paired_comparison
from braintumor.studies.paired_edges import NEWCOMBE, hold_paired_edges, newcombe_paired


def test_no_discordant_pairs_is_not_certainty_and_narrows_with_more_images():
    for n in (49, 400):
        same = np.r_[np.ones(n - 1, bool), False]
        cell = newcombe_paired(same, same)
        assert cell["low"] < 0 < cell["high"] and cell["interval"] == NEWCOMBE
    assert newcombe_paired(np.ones(400, bool), np.ones(400, bool))["high"] \
        < newcombe_paired(np.ones(49, bool), np.ones(49, bool))["high"]
    assert newcombe_paired(np.zeros(0, bool), np.zeros(0, bool)) is None


def test_direction_is_b_minus_a_and_swapping_mirrors_the_interval():
    a = np.array([1] * 30 + [0] * 10 + [1] * 5 + [0] * 5, bool)
    b = np.array([1] * 30 + [1] * 10 + [0] * 5 + [0] * 5, bool)  # b right on 10 more, wrong on 5
    ab, ba = newcombe_paired(a, b), newcombe_paired(b, a)
    assert ab["low"] < (b.mean() - a.mean()) < ab["high"]
    assert ab["low"] == pytest.approx(-ba["high"]) and ab["high"] == pytest.approx(-ba["low"])


def test_coverage_is_near_nominal_for_correlated_pairs():
    """Two classifiers right 90% and 93% of the time, mostly on the same images."""
    rng = np.random.default_rng(0)
    n, hits, sims = 80, 0, 2000
    probs = np.array([0.86, 0.04, 0.07, 0.03])  # both right, only a, only b, neither
    truth = (probs[0] + probs[2]) - (probs[0] + probs[1])
    for _ in range(sims):
        cell = rng.choice(4, size=n, p=probs)
        a, b = np.isin(cell, (0, 1)), np.isin(cell, (0, 2))
        ci = newcombe_paired(a, b)
        hits += ci["low"] <= truth <= ci["high"]
    assert 0.92 <= hits / sims <= 0.99


def test_only_degenerate_proportion_entries_are_replaced():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    pa = y.copy()
    pa[rng.choice(np.arange(60, 120), 8, replace=False)] = 0  # a misses 8 tumours
    pb = y.copy()
    pb[rng.choice(np.arange(60, 120), 3, replace=False)] = 0  # b misses 3; both right on every healthy
    sa, sb = pa + rng.uniform(0, 0.5, 120), pb + rng.uniform(0, 0.5, 120)
    groups = np.arange(120).astype(str)
    raw = paired_comparison(y, groups, pa, pb, sa, sb, ["healthy", "tumor"], n_resamples=300)["metrics"]
    assert raw["specificity"]["low"] == raw["specificity"]["high"] == 0.0  # the bootstrap's [0, 0]
    held = hold_paired_edges(raw, y, pa, pb, 2)
    spec = held["specificity"]
    assert spec["interval"] == NEWCOMBE and spec["low"] < 0 < spec["high"] and spec["difference"] == 0.0
    assert held["sensitivity"]["interval"] == "bootstrap"
    assert held["sensitivity"]["low"] == raw["sensitivity"]["low"]
    assert held["roc_auc"] == raw["roc_auc"]  # DeLong: untouched, no interval key added


def test_external_comparisons_use_it(tmp_path):
    from braintumor.reporting.recipes import paired_external

    rows = pd.DataFrame({"path": [f"{i}.png" for i in range(40)],
                         "label": ["healthy"] * 20 + ["tumor"] * 20,
                         "group": [f"p{i // 4}" for i in range(40)]})
    a = rows.assign(predicted=["healthy"] * 20 + ["tumor"] * 14 + ["healthy"] * 6,
                    p=np.r_[np.full(20, 0.2), np.full(14, 0.8), np.full(6, 0.4)])
    b = rows.assign(predicted=["healthy"] * 20 + ["tumor"] * 18 + ["healthy"] * 2,
                    p=np.r_[np.full(20, 0.2), np.full(18, 0.8), np.full(2, 0.4)])
    spec = paired_external(a, b, n_resamples=200)["metrics"]["specificity"]
    assert spec["interval"] == NEWCOMBE and spec["low"] < 0 < spec["high"]


def test_external_comparisons_of_multiclass_models():
    """Sub-type models on an external set: classes from the p_<class> columns (not p_ct)."""
    from braintumor.reporting.recipes import paired_external

    classes = ["glioma", "meningioma", "pituitary"]
    y = np.repeat(np.arange(3), 20)
    rows = pd.DataFrame({"path": [f"{i}.png" for i in range(60)], "label": np.asarray(classes)[y],
                         "group": [f"i{i}" for i in range(60)], "p_ct": 0.01})

    def side(n_wrong):
        probs = np.eye(3)[y] * 0.8 + 0.1
        probs[:n_wrong] = [0.1, 0.8, 0.1]  # the first gliomas called meningioma
        pred = np.asarray(classes)[probs.argmax(1)]
        return rows.assign(predicted=pred, **{f"p_{c}": probs[:, k] for k, c in enumerate(classes)})

    result = paired_external(side(8), side(2), n_resamples=200)
    assert result["n_images"] == 60
    acc = result["metrics"]["accuracy"]
    assert acc["difference"] == pytest.approx(6 / 60) and acc["low"] < acc["difference"] < acc["high"]
    assert "roc_auc" in result["metrics"]
