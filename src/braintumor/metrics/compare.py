"""Paired comparison of two models on the same test images.

Two models scored on the same images are correlated: the hard images are hard for both.
Comparing their two intervals (overlap or not) ignores that and is far too conservative;
the paired difference on the same rows is the right test.

* :func:`delong` — the fast DeLong algorithm (Sun & Xu 2014, IEEE Signal Processing
  Letters 21(11)) for the covariance of correlated ROC-AUCs, and the z-test of their
  difference (DeLong, DeLong & Clarke-Pearson 1988). Images are the unit.
* :func:`paired_bootstrap` — differences of accuracy, sensitivity, specificity,
  balanced accuracy (and AUC) under one duplicate-group (or cluster) bootstrap that
  resamples the same groups for both models; percentile interval and a two-sided
  p-value (how often the resampled difference lands on the other side of zero).
* :func:`paired_comparison` — both, as one JSON-ready dict.

Differences are always **B − A**.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm, rankdata

from .bootstrap import _auc_from_curve, _group_resamples, _weighted_curve
from .classification import _ratio


# ------------------------------------------------------------------------------ DeLong
def fast_delong(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    """ROC-AUCs of ``scores`` (one row per model, one column per image) and their
    DeLong covariance matrix, by the O(n log n) midrank algorithm of Sun & Xu (2014)."""
    y = np.asarray(y_true).astype(bool)
    s = np.atleast_2d(np.asarray(scores, dtype=float))
    if s.shape[1] != y.size:
        raise ValueError(f"scores have {s.shape[1]} columns for {y.size} labels")
    m, n = int(y.sum()), int((~y).sum())
    if m < 2 or n < 2:
        raise ValueError("DeLong needs at least two positive and two negative images")
    pos, neg = s[:, y], s[:, ~y]
    tx, ty = rankdata(pos, axis=1), rankdata(neg, axis=1)  # midranks within each class
    tz = rankdata(np.concatenate([pos, neg], axis=1), axis=1)
    aucs = (tz[:, :m].sum(axis=1) / m - (m + 1) / 2) / n
    v01 = (tz[:, :m] - tx) / n        # per positive: share of negatives scored below it
    v10 = 1.0 - (tz[:, m:] - ty) / m  # per negative: share of positives scored above it
    cov = np.atleast_2d(np.cov(v01)) / m + np.atleast_2d(np.cov(v10)) / n
    return aucs, cov


def delong(y_true, p_a, p_b, alpha: float = 0.05) -> dict:
    """AUC(B) − AUC(A) on the same images: estimate, normal interval, two-sided p-value."""
    aucs, cov = fast_delong(y_true, np.vstack([p_a, p_b]))
    diff = float(aucs[1] - aucs[0])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    z = float(norm.ppf(1 - alpha / 2))
    if var <= 0:  # identical rankings: no difference, no uncertainty about it
        return {"a": float(aucs[0]), "b": float(aucs[1]), "difference": diff, "low": diff, "high": diff,
                "se": 0.0, "p_value": 1.0 if diff == 0 else 0.0, "method": "DeLong (fast, Sun & Xu 2014)"}
    se = math.sqrt(var)
    return {"a": float(aucs[0]), "b": float(aucs[1]), "difference": diff,
            "low": diff - z * se, "high": diff + z * se, "se": se,
            "p_value": float(2 * norm.sf(abs(diff) / se)), "method": "DeLong (fast, Sun & Xu 2014)"}


def delong_interval(y_true, p, alpha: float = 0.05) -> tuple[float, float, float]:
    """One model's AUC with its DeLong normal interval, clipped to [0, 1]."""
    aucs, cov = fast_delong(y_true, np.asarray(p)[None, :])
    se = math.sqrt(max(float(cov[0, 0]), 0.0))
    z = float(norm.ppf(1 - alpha / 2))
    return float(aucs[0]), max(0.0, aucs[0] - z * se), min(1.0, aucs[0] + z * se)


# ------------------------------------------------------------------ paired bootstrap
def _rates(w: np.ndarray, num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return _ratio(w @ num.astype(float), w @ den.astype(float))


def _threshold_metrics(y: np.ndarray, correct: np.ndarray, w: np.ndarray, n_classes: int) -> dict:
    """Accuracy, balanced accuracy and (binary) sensitivity / specificity per resample row."""
    ones = np.ones_like(correct)
    recalls = np.stack([_rates(w, correct & (y == k), y == k) for k in range(n_classes)], axis=1)
    out = {"accuracy": _rates(w, correct, ones), "balanced_accuracy": np.nanmean(recalls, axis=1)}
    if n_classes == 2:
        out["sensitivity"], out["specificity"] = recalls[:, 1], recalls[:, 0]
    return out


def _auc_rows(y: np.ndarray, scores: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ROC-AUC (binary) or macro one-vs-rest AUC per resample row."""
    if scores.ndim == 1:
        return _auc_from_curve(*_weighted_curve(y == 1, scores, w))
    return np.mean([_auc_from_curve(*_weighted_curve(y == k, scores[:, k], w))
                    for k in range(scores.shape[1])], axis=0)


def _bootstrap_p(d: np.ndarray) -> float:
    """Two-sided: twice the smaller share of resampled differences at or beyond zero."""
    b = d.size
    below, above = (np.sum(d <= 0) + 1) / (b + 1), (np.sum(d >= 0) + 1) / (b + 1)
    return float(min(1.0, 2 * min(below, above)))


def paired_bootstrap(y_true, pred_a, pred_b, groups, scores_a=None, scores_b=None, n_classes: int = 2,
                     n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Paired differences B − A of the threshold metrics (and AUC when scores are given)
    under one group bootstrap: each resample draws whole groups, the same for both models.

    ``pred_*`` are predicted class indices; ``scores_*`` P(tumour) (binary) or class
    probabilities (multi-class). Returns ``{metric: {"a", "b", "difference", "low", "high",
    "p_value", "n_skipped", "method"}}``.
    """
    y = np.asarray(y_true).astype(np.int64)
    pa, pb, g = np.asarray(pred_a), np.asarray(pred_b), np.asarray(groups)
    if not (y.shape == pa.shape == pb.shape == g.shape):
        raise ValueError("y, both predictions and groups need one entry per image")
    ca, cb = pa == y, pb == y
    full_w = np.ones((1, y.size))
    full_a, full_b = _threshold_metrics(y, ca, full_w, n_classes), _threshold_metrics(y, cb, full_w, n_classes)
    with_auc = scores_a is not None and scores_b is not None
    if with_auc:
        sa, sb = np.asarray(scores_a, float), np.asarray(scores_b, float)
        full_a["roc_auc"], full_b["roc_auc"] = _auc_rows(y, sa, full_w), _auc_rows(y, sb, full_w)
    samples: dict[str, list] = {k: [] for k in full_a}
    for w in _group_resamples(g, n_resamples, seed):
        w = w.astype(float)
        ma, mb = _threshold_metrics(y, ca, w, n_classes), _threshold_metrics(y, cb, w, n_classes)
        if with_auc:
            ma["roc_auc"], mb["roc_auc"] = _auc_rows(y, sa, w), _auc_rows(y, sb, w)
        for k in samples:
            samples[k].append(mb[k] - ma[k])
    out = {}
    for k, parts in samples.items():
        d = np.concatenate(parts)
        ok = np.isfinite(d)
        low, high = (np.quantile(d[ok], [alpha / 2, 1 - alpha / 2]) if ok.any() else (math.nan, math.nan))
        a, b = float(full_a[k][0]), float(full_b[k][0])
        out[k] = {"a": a, "b": b, "difference": b - a, "low": float(low), "high": float(high),
                  "p_value": _bootstrap_p(d[ok]) if ok.any() else math.nan,
                  "n_skipped": int((~ok).sum()), "method": "paired group bootstrap (percentile)"}
    return out


def paired_comparison(y_true, groups, pred_a, pred_b, scores_a, scores_b, classes: list[str],
                      n_resamples: int = 2000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Everything ``braintumor compare`` reports for two models on the same rows: threshold
    metrics by paired group bootstrap; AUC by DeLong for binary tasks (the bootstrap's AUC
    difference kept beside it as ``roc_auc_bootstrap``), by paired bootstrap of the macro
    one-vs-rest AUC for multi-class ones."""
    n_classes = len(classes)
    boot = paired_bootstrap(y_true, pred_a, pred_b, groups, scores_a, scores_b, n_classes,
                            n_resamples, seed, alpha)
    metrics = {k: v for k, v in boot.items() if k != "roc_auc"}
    if n_classes == 2:
        metrics["roc_auc"] = delong(y_true, scores_a, scores_b, alpha)
        metrics["roc_auc_bootstrap"] = boot["roc_auc"]
    else:
        metrics["macro_auc_ovr"] = boot["roc_auc"]
    g = np.asarray(groups)
    return {"n_images": int(g.size), "n_groups": int(np.unique(g).size), "difference": "B - A",
            "alpha": alpha, "n_resamples": n_resamples, "seed": seed, "metrics": metrics}
