"""Edge-holding intervals in evaluation reports: no headline interval collapses to [1, 1]."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.special import softmax

from braintumor.metrics import (BinaryMetricSet, auc_edge_bound, evaluate_binary, evaluate_multiclass,
                                grouped_bootstrap, hold_edges, is_degenerate, mover_mean, wilson_interval)

PROPORTIONS = ("accuracy", "sensitivity", "specificity", "ppv", "npv")


def perfect_binary(seed=0, n_pos=60, n_neg=40):
    """A perfect classifier on generated data, images in duplicate groups of up to 3."""
    rng = np.random.default_rng(seed)
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    p = np.where(y == 1, rng.uniform(0.6, 1.0, y.size), rng.uniform(0.0, 0.4, y.size))
    groups = np.r_[np.arange(n_pos) // 3, 1000 + np.arange(n_neg) // 3]
    return y, p, groups


def test_perfect_classifier_gets_wilson_intervals_below_one():
    y, p, groups = perfect_binary()
    report = evaluate_binary(y, p, groups, threshold=0.5, n_resamples=200)
    json.dumps(report, allow_nan=False)
    sens = report["metrics"]["sensitivity"]
    assert sens["value"] == 1.0 and sens["low"] < 1.0 and sens["high"] == 1.0
    assert sens["interval"] == "wilson"
    assert sens["low"] == pytest.approx(wilson_interval(60, 60)[0])  # from the counts, images as the unit
    assert report["metrics"]["specificity"]["low"] == pytest.approx(wilson_interval(40, 40)[0])
    for name in PROPORTIONS:
        assert report["metrics"][name]["interval"] == "wilson" and not is_degenerate(report["metrics"][name])
    bal = report["metrics"]["balanced_accuracy"]
    gaps = [1 - report["metrics"][k]["low"] for k in ("sensitivity", "specificity")]
    assert bal["interval"] == "wilson-mover" and bal["low"] == pytest.approx(1 - math.hypot(*gaps) / 2)
    auc = report["metrics"]["roc_auc"]
    assert auc["value"] == 1.0 and auc["interval"] == "auc-wilson-bound" and 0.5 < auc["low"] < 1.0
    assert report["metrics"]["f1"]["interval"] == "wilson-f1-bound" and report["metrics"]["f1"]["low"] < 1.0
    # no principled edge interval for PR-AUC: kept, but says it is degenerate
    assert report["metrics"]["pr_auc"]["interval"] == "bootstrap-degenerate"


def test_non_degenerate_intervals_are_the_bootstrap_unchanged():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.3 * y + 0.7 * rng.random(300), 0, 1)
    groups = rng.integers(0, 240, 300)
    report = evaluate_binary(y, p, groups, threshold=0.5, n_resamples=100, seed=4)
    boot = grouped_bootstrap(BinaryMetricSet(0.5), y, p, groups, n_resamples=100, seed=4)
    for name in (*PROPORTIONS, "balanced_accuracy", "f1", "roc_auc", "brier"):
        entry = report["metrics"][name]
        assert entry["interval"] == "bootstrap"
        assert (entry["value"], entry["low"], entry["high"]) == pytest.approx(tuple(boot[name]))


def test_auc_of_zero_is_mirrored():
    y, p, groups = perfect_binary(seed=1)
    report = evaluate_binary(y, 1 - p, groups, threshold=0.5, n_resamples=100)
    auc = report["metrics"]["roc_auc"]
    assert auc["value"] == 0.0 and auc["low"] == 0.0 and 0.0 < auc["high"] < 0.5
    sens = report["metrics"]["sensitivity"]
    assert sens["value"] == 0.0 and sens["interval"] == "wilson" and sens["high"] > 0.0


def test_auc_bound_and_mover_hand_computed():
    bound = auc_edge_bound(1.0, 20, 30, alpha=0.05)
    expected = wilson_interval(20, 20, 0.025)[0] * wilson_interval(30, 30, 0.025)[0]
    assert bound["low"] == pytest.approx(expected) and bound["high"] == 1.0
    assert auc_edge_bound(0.97, 20, 30) is None and auc_edge_bound(1.0, 0, 30) is None
    m = mover_mean([(1.0, 0.9, 1.0), (1.0, 0.8, 1.0)])
    assert m["low"] == pytest.approx(1.0 - math.sqrt(0.1 ** 2 + 0.2 ** 2) / 2) and m["high"] == 1.0
    m = mover_mean([(0.5, 0.4, 0.6), (0.7, 0.6, 0.8)])  # symmetric cells: mean -/+ sqrt(2)*0.1/2
    assert (m["low"], m["high"]) == pytest.approx((0.6 - 0.1 / math.sqrt(2), 0.6 + 0.1 / math.sqrt(2)))


def test_hold_edges_marks_what_it_cannot_fix():
    entries = {"a": {"value": 1.0, "low": 1.0, "high": 1.0}, "b": {"value": 0.5, "low": 0.4, "high": 0.6},
               "c": {"value": None, "low": None, "high": None}, "d": {"value": 1.0, "low": 1.0, "high": 1.0}}
    out = hold_edges(entries, {"a": {"low": 0.9, "high": 1.0, "interval": "wilson"}, "b": None})
    assert out["a"] == {"value": 1.0, "low": 0.9, "high": 1.0, "interval": "wilson"}
    assert out["b"] == {**entries["b"], "interval": "bootstrap"}
    assert out["c"]["interval"] == "bootstrap"
    assert out["d"] == {**entries["d"], "interval": "bootstrap-degenerate"}


def test_perfect_multiclass_classifier_holds_at_the_edges():
    classes = ["glioma", "meningioma", "pituitary"]
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 120)
    probs = softmax(6 * np.eye(3)[y] + rng.normal(size=(120, 3)) * 0.1, axis=1)
    report = evaluate_multiclass(np.array(classes)[y], probs, classes, np.arange(120) // 2, n_resamples=100)
    json.dumps(report, allow_nan=False)
    m = report["metrics"]
    assert m["accuracy"]["value"] == 1.0 and m["accuracy"]["interval"] == "wilson" and m["accuracy"]["low"] < 1
    assert m["balanced_accuracy"]["interval"] == "wilson-mover" and m["balanced_accuracy"]["low"] < 1
    assert m["macro_auc_ovr"]["interval"] == "auc-wilson-bound" and 0.5 < m["macro_auc_ovr"]["low"] < 1
    for name in classes:
        cls = report["per_class"][name]
        assert cls["recall/" + name]["interval"] == "wilson" and cls["recall/" + name]["low"] < 1
        assert cls["auc/" + name]["interval"] == "auc-wilson-bound"
        assert cls["support"] == int((np.array(classes)[y] == name).sum())
