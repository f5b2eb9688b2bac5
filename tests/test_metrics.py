"""Tests for braintumor.metrics: hand-computed values, bootstrap behaviour, calibration.

Everything is seeded and small; the whole file runs in a few seconds.
"""
from __future__ import annotations

import functools
import inspect
import json
import math
import warnings

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.metrics import (
    balanced_accuracy_score,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

from braintumor.metrics import (
    BinaryMetricSet,
    MulticlassMetricSet,
    apply_temperature,
    binary_metrics,
    breakdown_by,
    choose_threshold,
    evaluate_binary,
    evaluate_multiclass,
    expected_calibration_error,
    fit_temperature,
    format_ci,
    grouped_bootstrap,
    logit_to_prob,
    multiclass_metrics,
    prob_to_logit,
    reliability_curve,
    specificity_at_sensitivity,
)

CLASSES = ["glioma", "meningioma", "pituitary"]

# 4 tumours, 6 healthy. At threshold 0.5: tumours 0.9, 0.8, 0.6 caught (tp=3), 0.3
# missed (fn=1); healthy 0.7 flagged (fp=1), the other five correct (tn=5).
Y_HAND = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
P_HAND = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.4, 0.2, 0.1, 0.1, 0.05])


def width(ci) -> float:
    return ci.high - ci.low


# ------------------------------------------------------------------ binary metrics
def test_binary_metrics_hand_computed():
    m = binary_metrics(Y_HAND, P_HAND, threshold=0.5)
    assert (m["tn"], m["fp"], m["fn"], m["tp"]) == (5, 1, 1, 3)
    assert m["sensitivity"] == pytest.approx(0.75)  # 3 / 4
    assert m["specificity"] == pytest.approx(0.8333333333)  # 5 / 6
    assert m["ppv"] == pytest.approx(0.75)  # 3 / (3 + 1)
    assert m["npv"] == pytest.approx(0.8333333333)  # 5 / (5 + 1)
    assert m["f1"] == pytest.approx(0.75)  # 2*3 / (2*3 + 1 + 1)
    assert m["accuracy"] == pytest.approx(0.8)  # 8 / 10
    assert m["balanced_accuracy"] == pytest.approx(0.7916666667)  # (0.75 + 0.8333) / 2
    # squared errors: tumours .01 .04 .16 .49, healthy .49 .16 .04 .01 .01 .0025 -> 1.4125 / 10
    assert m["brier"] == pytest.approx(0.14125)
    # 24 tumour/healthy pairs, 21 ranked right (0.6 loses to 0.7; 0.3 loses to 0.7 and 0.4)
    assert m["roc_auc"] == pytest.approx(0.875)
    # ranking: T T H T H T ... precision at each tumour 1, 1, 3/4, 4/6 -> mean 0.8541667
    assert m["pr_auc"] == pytest.approx(0.8541666667)


def test_binary_ratios_agree_with_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 200)
    p = rng.random(200)
    m = binary_metrics(y, p, threshold=0.4)
    pred = (p >= 0.4).astype(int)
    assert m["sensitivity"] == pytest.approx(recall_score(y, pred))
    assert m["specificity"] == pytest.approx(recall_score(y, pred, pos_label=0))
    assert m["ppv"] == pytest.approx(precision_score(y, pred))
    assert m["npv"] == pytest.approx(precision_score(y, pred, pos_label=0))
    assert m["f1"] == pytest.approx(f1_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))


def test_auc_known_value():
    assert binary_metrics([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])["roc_auc"] == pytest.approx(0.75)


def test_threshold_is_inclusive():
    # p == threshold counts as tumour, the rule roc_curve's thresholds assume
    assert binary_metrics([1], [0.5], threshold=0.5)["tp"] == 1


def test_binary_degenerate_cases_give_nan_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        only_healthy = binary_metrics([0, 0, 0], [0.1, 0.2, 0.3])
        nothing_flagged = binary_metrics([0, 1, 1], [0.1, 0.2, 0.3], threshold=0.9)
    for key in ("sensitivity", "balanced_accuracy", "roc_auc", "pr_auc"):
        assert math.isnan(only_healthy[key]), key
    assert only_healthy["specificity"] == 1.0 and math.isnan(only_healthy["ppv"])
    assert math.isnan(nothing_flagged["ppv"]) and nothing_flagged["sensitivity"] == 0.0
    assert math.isnan(specificity_at_sensitivity([1, 1], [0.2, 0.9]))


@pytest.mark.parametrize("y, p", [([0, 2], [0.1, 0.2]), ([0, 1], [-1.5, 2.0]), ([0, 1], [0.1])])
def test_binary_rejects_bad_inputs(y, p):
    with pytest.raises(ValueError):
        binary_metrics(y, p)


def test_specificity_at_sensitivity_hand_computed():
    # sens >= 0.75 needs threshold <= 0.6; then only healthy 0.7 is flagged -> 5/6
    assert specificity_at_sensitivity(Y_HAND, P_HAND, 0.75) == pytest.approx(5 / 6)
    # sens = 1 needs threshold <= 0.3; healthy 0.7 and 0.4 flagged -> 4/6
    assert specificity_at_sensitivity(Y_HAND, P_HAND, 1.0) == pytest.approx(4 / 6)


# -------------------------------------------------------------- multiclass metrics
def _hand_multiclass():
    # rows true class, columns predicted: [[2,1,0],[0,1,1],[1,0,2]]
    y = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 0, 1, 1, 2, 2, 2, 0])
    probs = np.full((8, 3), 0.2)
    probs[np.arange(8), pred] = 0.6
    return y, probs


def test_multiclass_hand_computed():
    y, probs = _hand_multiclass()
    m = multiclass_metrics(y, probs, CLASSES)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [1, 0, 2]]
    # precision = column diagonal / column sum; recall = row diagonal / row sum
    assert m["precision/glioma"] == pytest.approx(2 / 3)
    assert m["precision/meningioma"] == pytest.approx(1 / 2)
    assert m["precision/pituitary"] == pytest.approx(2 / 3)
    assert m["recall/glioma"] == pytest.approx(2 / 3)
    assert m["recall/meningioma"] == pytest.approx(1 / 2)
    assert m["recall/pituitary"] == pytest.approx(2 / 3)
    assert m["f1/meningioma"] == pytest.approx(1 / 2)
    assert (m["support/glioma"], m["support/meningioma"], m["support/pituitary"]) == (3, 2, 3)
    assert m["accuracy"] == pytest.approx(5 / 8)
    assert m["macro_precision"] == pytest.approx(11 / 18)  # (2/3 + 1/2 + 2/3) / 3
    assert m["balanced_accuracy"] == pytest.approx(11 / 18)
    assert m["weighted_recall"] == pytest.approx(5 / 8)  # (3*2/3 + 2*1/2 + 3*2/3) / 8
    # 5 right with p = 0.6, 3 wrong with p = 0.2 on the true class
    assert m["log_loss"] == pytest.approx((5 * -math.log(0.6) + 3 * -math.log(0.2)) / 8)
    # every confidence is 0.6 (one bin) and 5/8 are right
    assert expected_calibration_error(y, probs) == pytest.approx(0.025)
    auc_glioma = roc_auc_score(y == 0, probs[:, 0])
    assert m["auc/glioma"] == pytest.approx(auc_glioma)


def test_multiclass_accepts_class_names():
    y, probs = _hand_multiclass()
    names = np.array(CLASSES)[y]
    assert multiclass_metrics(names, probs, CLASSES) == multiclass_metrics(y, probs, CLASSES)
    with pytest.raises(ValueError):
        multiclass_metrics(np.array(["glioma"] * 7 + ["astrocytoma"]), probs, CLASSES)


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_multiclass_missing_class_gives_nan_auc():
    y, probs = _hand_multiclass()
    keep = y != 1
    m = multiclass_metrics(y[keep], probs[keep], CLASSES)
    assert math.isnan(m["macro_auc_ovr"]) and math.isnan(m["auc/meningioma"])
    assert not math.isnan(m["auc/glioma"])


def test_multiclass_rejects_logits():
    y, probs = _hand_multiclass()
    with pytest.raises(ValueError):
        multiclass_metrics(y, np.log(probs), CLASSES)


# -------------------------------------------- vectorised bootstrap == scikit-learn
def _random_weights(rng, n, n_rows):
    w = rng.integers(0, 4, size=(n_rows, n))
    w[0] = 1  # the full data
    return w


def test_binary_batch_matches_sklearn_on_each_resample():
    rng = np.random.default_rng(2)
    n = 40
    y = rng.integers(0, 2, n)
    p = np.round(rng.random(n), 1)  # many ties
    w = _random_weights(rng, n, 30)
    w[1, y == 1] = 0  # a resample without tumours: ranking metrics undefined
    w[2, y == 0] = 0  # one without healthy images
    metric_set = BinaryMetricSet(threshold=0.5, sens_target=0.8, n_bins=10)
    batch = metric_set.batch(y, p, w)
    for row, weights in enumerate(w):
        idx = np.repeat(np.arange(n), weights)
        expected = metric_set(y[idx], p[idx])
        for key, value in expected.items():
            assert batch[key][row] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (row, key)
    assert math.isnan(batch["roc_auc"][1]) and math.isnan(batch["pr_auc"][2])


def test_multiclass_batch_matches_sklearn_on_each_resample():
    rng = np.random.default_rng(3)
    n = 45
    y = rng.integers(0, 3, n)
    probs = softmax(rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y], axis=1)
    w = _random_weights(rng, n, 30)
    w[1, y == 2] = 0  # a class absent: its recall and AUC undefined
    w[2, probs.argmax(axis=1) == 0] = 0  # a class never predicted: its precision undefined
    metric_set = MulticlassMetricSet(tuple(CLASSES))
    batch = metric_set.batch(y, probs, w)
    for row, weights in enumerate(w):
        idx = np.repeat(np.arange(n), weights)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn warns about the absent class
            expected = metric_set(y[idx], probs[idx])
        for key, value in expected.items():
            if key != "confusion_matrix":
                assert batch[key][row] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (row, key)
    assert math.isnan(batch["macro_auc_ovr"][1]) and math.isnan(batch["precision/glioma"][2])


def test_bootstrap_batch_and_per_resample_paths_agree():
    rng = np.random.default_rng(4)
    n = 80
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    groups = rng.integers(0, 50, n)
    metric_set = BinaryMetricSet()
    fast = grouped_bootstrap(metric_set, y, p, groups, n_resamples=40, seed=7)
    slow = grouped_bootstrap(lambda yy, pp: metric_set(yy, pp), y, p, groups, n_resamples=40, seed=7)
    assert fast.keys() == slow.keys()
    for key in fast:
        assert fast[key] == pytest.approx(slow[key], rel=1e-9, nan_ok=True), key


# ------------------------------------------------------------------- grouped bootstrap
def test_duplicating_images_does_not_shrink_grouped_ci():
    rng = np.random.default_rng(5)
    n = 300
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1)
    metric_set = BinaryMetricSet()
    original = grouped_bootstrap(metric_set, y, p, np.arange(n), n_resamples=400, seed=0)
    # every image copied 5 times inside its own duplicate group
    y5, p5 = np.repeat(y, 5), np.repeat(p, 5)
    grouped = grouped_bootstrap(metric_set, y5, p5, np.repeat(np.arange(n), 5), n_resamples=400, seed=0)
    per_image = grouped_bootstrap(metric_set, y5, p5, np.arange(5 * n), n_resamples=400, seed=0)
    for key in ("accuracy", "sensitivity", "roc_auc"):
        assert width(grouped[key]) == pytest.approx(width(original[key]), rel=0.15), key
        # the image-level bootstrap believes it has 5x the data: ~1/sqrt(5) the width
        assert width(per_image[key]) < 0.6 * width(grouped[key]), key
    assert grouped.n_groups == n and grouped.n_images == 5 * n


def test_grouped_bootstrap_coverage_on_simulated_duplicates():
    """95% CIs should contain the true accuracy in ~95% of simulated test sets."""
    rng = np.random.default_rng(6)
    true_accuracy, n_sims = 0.9, 200

    def accuracy(y, pred):
        return {"accuracy": float(np.mean(y == pred))}

    hits_grouped = hits_image = 0
    for sim in range(n_sims):
        sizes = rng.integers(1, 6, size=120)  # duplicate groups of 1-5 copies
        right = rng.random(sizes.size) < true_accuracy  # copies share their fate
        y = np.repeat(rng.integers(0, 2, sizes.size), sizes)
        pred = np.where(np.repeat(right, sizes), y, 1 - y)
        groups = np.repeat(np.arange(sizes.size), sizes)
        ci = grouped_bootstrap(accuracy, y, pred, groups, n_resamples=200, seed=sim)["accuracy"]
        hits_grouped += ci.low <= true_accuracy <= ci.high
        ci = grouped_bootstrap(accuracy, y, pred, np.arange(y.size), n_resamples=200, seed=sim)["accuracy"]
        hits_image += ci.low <= true_accuracy <= ci.high
    assert 0.90 <= hits_grouped / n_sims <= 0.99
    assert hits_image / n_sims < 0.85  # ignoring duplicates under-covers


def test_bootstrap_skips_and_counts_undefined_resamples():
    rng = np.random.default_rng(8)
    y = np.zeros(60, dtype=int)
    y[:3] = 1  # 3 tumours: some resamples draw none, so their AUC is undefined
    p = rng.random(60)
    boot = grouped_bootstrap(BinaryMetricSet(), y, p, np.arange(60), n_resamples=500, seed=0)
    assert 0 < boot.n_skipped["roc_auc"] < 100
    assert boot.n_skipped["accuracy"] == 0
    assert math.isfinite(boot["roc_auc"].low) and math.isfinite(boot["roc_auc"].high)
    report = evaluate_binary(y, p, np.arange(60), 0.5, n_resamples=500, seed=0)
    assert report["bootstrap"]["n_skipped"]["roc_auc"] == boot.n_skipped["roc_auc"]


def test_bootstrap_is_seeded_and_value_is_full_data():
    rng = np.random.default_rng(9)
    y, p = rng.integers(0, 2, 100), rng.random(100)
    groups = rng.integers(0, 70, 100)
    a = grouped_bootstrap(BinaryMetricSet(), y, p, groups, n_resamples=100, seed=3)
    b = grouped_bootstrap(BinaryMetricSet(), y, p, groups, n_resamples=100, seed=3)
    c = grouped_bootstrap(BinaryMetricSet(), y, p, groups, n_resamples=100, seed=4)
    assert a == b and a["roc_auc"] != c["roc_auc"]
    assert a["roc_auc"].value == pytest.approx(binary_metrics(y, p)["roc_auc"])
    assert a["roc_auc"].low <= a["roc_auc"].value <= a["roc_auc"].high


def test_bootstrap_rejects_misaligned_groups():
    with pytest.raises(ValueError):
        grouped_bootstrap(BinaryMetricSet(), [0, 1, 1], [0.1, 0.9, 0.8], [0, 1])


# ------------------------------------------------------------------------ calibration
def test_logit_helpers_clip_and_round_trip():
    assert np.isfinite(prob_to_logit([0.0, 1.0])).all()
    p = np.array([0.01, 0.3, 0.5, 0.97])
    np.testing.assert_allclose(logit_to_prob(prob_to_logit(p)), p)


def test_temperature_scaling_fixes_overconfident_binary_model():
    rng = np.random.default_rng(10)
    z = rng.normal(0.0, 1.5, 6000)
    y = (rng.random(z.size) < expit(z)).astype(int)  # z are the calibrated logits
    p_model = expit(4 * z)  # over-confident by a factor 4
    val, test = slice(0, 3000), slice(3000, None)
    t_probs = fit_temperature(p_model[val], y[val], binary=True)
    t_logits = fit_temperature(4 * z[val], y[val], binary=True, kind="logits")
    assert t_probs == pytest.approx(4, rel=0.1) and t_logits == pytest.approx(4, rel=0.1)
    before = expected_calibration_error(y[test], p_model[test])
    after = expected_calibration_error(y[test], apply_temperature(p_model[test], t_probs, binary=True))
    assert after < 0.5 * before and after < 0.04


def test_temperature_scaling_fixes_overconfident_multiclass_model():
    rng = np.random.default_rng(11)
    z = rng.normal(0.0, 1.0, size=(6000, 3))
    true_probs = softmax(z, axis=1)
    y = (rng.random(z.shape[0])[:, None] > true_probs.cumsum(axis=1)).sum(axis=1)
    probs_model = softmax(4 * z, axis=1)
    val, test = slice(0, 3000), slice(3000, None)
    t = fit_temperature(probs_model[val], y[val], binary=False)
    assert t == pytest.approx(4, rel=0.1)
    before = expected_calibration_error(y[test], probs_model[test])
    after = expected_calibration_error(y[test], apply_temperature(probs_model[test], t, binary=False))
    assert after < 0.5 * before and after < 0.04


def test_ece_of_calibrated_probabilities_is_small():
    rng = np.random.default_rng(12)
    p = rng.random(20000)
    y = (rng.random(p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02


def test_ece_of_always_confident_coin_flip():
    y = np.tile([0, 1], 500)
    assert expected_calibration_error(y, np.full(y.size, 0.99)) == pytest.approx(0.49)
    # multi-class top-label: always 99% sure, right half the time
    probs = np.tile([0.99, 0.005, 0.005], (y.size, 1))
    assert expected_calibration_error(y, probs) == pytest.approx(0.49)


def test_reliability_curve_bins():
    curve = reliability_curve([0, 1, 1, 0, 1], [0.0, 1.0, 0.95, 0.55, 0.6], n_bins=10)
    assert curve["bin_lower"] == pytest.approx([0.0, 0.5, 0.9])  # 1.0 joins the top bin
    assert curve["count"] == [1, 2, 2]
    assert curve["confidence"] == pytest.approx([0.0, 0.575, 0.975])
    assert curve["accuracy"] == pytest.approx([0.0, 0.5, 1.0])


# -------------------------------------------------------------------- operating point
def test_youden_separates_separable_classes():
    choice = choose_threshold([0, 0, 0, 1, 1, 1], [0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert 0.3 < choice["threshold"] <= 0.7
    assert choice["val_sensitivity"] == 1.0 and choice["val_specificity"] == 1.0
    assert choice["rule"] == "youden" and choice["target"] is None


def test_threshold_rules_hand_computed():
    # J = sens + spec - 1 per threshold: .9 -> .25, .8 -> .5, .7 -> .33, .6 -> .58, .4 -> .42, .3 -> .67
    youden = choose_threshold(Y_HAND, P_HAND, "youden")
    assert (youden["threshold"], youden["val_sensitivity"]) == (0.3, 1.0)
    assert youden["val_specificity"] == pytest.approx(4 / 6)
    sens = choose_threshold(Y_HAND, P_HAND, "sensitivity", target=0.75)
    assert sens["threshold"] == 0.6 and sens["val_sensitivity"] == 0.75  # 0.7 would give 0.5
    spec = choose_threshold(Y_HAND, P_HAND, "specificity", target=0.8)
    assert spec["threshold"] == 0.6 and spec["val_specificity"] == pytest.approx(5 / 6)  # 0.4 gives 4/6
    with pytest.raises(ValueError):
        choose_threshold(Y_HAND, P_HAND, "accuracy")


def test_sensitivity_rule_reaches_target_with_the_highest_threshold():
    rng = np.random.default_rng(13)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.3 * y + 0.7 * rng.random(500), 0, 1)
    choice = choose_threshold(y, p, "sensitivity", target=0.95)
    at = binary_metrics(y, p, choice["threshold"])
    assert at["sensitivity"] >= 0.95 and at["sensitivity"] == choice["val_sensitivity"]
    next_higher = p[p > choice["threshold"]].min()
    assert binary_metrics(y, p, next_higher)["sensitivity"] < 0.95


def test_threshold_comes_from_validation_only():
    # choose_threshold has no way to receive test data ...
    assert list(inspect.signature(choose_threshold).parameters) == ["y_val", "p_val", "rule", "target"]
    rng = np.random.default_rng(14)
    y_val = rng.integers(0, 2, 300)
    p_val = np.clip(0.4 * y_val + 0.6 * rng.random(300), 0, 1)
    choice = choose_threshold(y_val, p_val, "sensitivity", target=0.9)
    # ... and evaluate_binary applies it unchanged to any test set, even one whose own
    # best threshold is very different (scores shifted up by 0.3).
    for shift in (0.0, 0.3):
        y_test = rng.integers(0, 2, 200)
        p_test = np.clip(0.4 * y_test + 0.6 * rng.random(200) * (1 - shift) + shift, 0, 1)
        report = evaluate_binary(y_test, p_test, np.arange(200), choice, n_resamples=20)
        assert report["threshold"] == choice
        fixed = binary_metrics(y_test, p_test, choice["threshold"])
        assert report["metrics"]["specificity"]["value"] == pytest.approx(fixed["specificity"])
        assert report["confusion_matrix"]["fp"] == fixed["fp"]
    assert fixed["specificity"] < choose_threshold(y_test, p_test, "youden")["val_specificity"]


# ------------------------------------------------------------------------------ reports
def _binary_data(n=300, seed=15):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)
    groups = rng.integers(0, int(0.8 * n), n)
    return y, p, groups


def test_evaluate_binary_is_strict_json():
    y, p, groups = _binary_data()
    report = evaluate_binary(y, p, groups, choose_threshold(y, p), n_resamples=50, seed=0)
    json.dumps(report, allow_nan=False)
    assert report["n_images"] == 300 and report["n_groups"] == np.unique(groups).size
    ci = report["metrics"]["roc_auc"]
    assert ci["low"] <= ci["value"] <= ci["high"]
    # a degenerate subgroup (healthy only) reports undefined metrics as null
    healthy = y == 0
    degenerate = evaluate_binary(y[healthy], p[healthy], groups[healthy], 0.5, n_resamples=20)
    assert degenerate["metrics"]["roc_auc"] == {"value": None, "low": None, "high": None, "interval": "bootstrap"}
    json.dumps(degenerate, allow_nan=False)


def test_evaluate_multiclass_is_strict_json():
    rng = np.random.default_rng(16)
    y = rng.integers(0, 3, 150)
    probs = softmax(rng.normal(size=(150, 3)) + 2 * np.eye(3)[y], axis=1).astype(np.float32)
    report = evaluate_multiclass(np.array(CLASSES)[y], probs, CLASSES, rng.integers(0, 120, 150),
                                 n_resamples=50)
    json.dumps(report, allow_nan=False)
    assert set(report["per_class"]) == set(CLASSES)
    assert report["per_class"]["glioma"]["support"] == int((y == 0).sum())
    assert np.sum(report["confusion_matrix"]) == 150
    macro = report["metrics"]["macro_f1"]
    assert macro["low"] <= macro["value"] <= macro["high"]


def test_breakdown_by_modality():
    y, p, groups = _binary_data()
    modality = np.where(np.arange(y.size) % 3 == 0, "CT", "MRI")
    report_fn = functools.partial(evaluate_binary, threshold=0.5, n_resamples=30, seed=1)
    by = breakdown_by(report_fn, modality, y, p, groups)
    assert set(by) == {"CT", "MRI"}
    assert by["CT"]["n_images"] + by["MRI"]["n_images"] == y.size
    ct = modality == "CT"
    assert by["CT"] == report_fn(y[ct], p[ct], groups[ct])


def test_format_ci():
    assert format_ci(0.95312, 0.9411, 0.96549) == "0.953 [0.941, 0.965]"
    assert format_ci(0.95312, 0.9411, 0.96549, digits=1, percent=True) == "95.3% [94.1%, 96.5%]"
    assert format_ci(**{"value": 0.5, "low": None, "high": float("nan")}, digits=2) == "0.50 [n/a, n/a]"
    assert format_ci(**{"value": 1.0, "low": 0.93, "high": 1.0, "interval": "wilson"}) == "1.000 [0.930, 1.000]"
