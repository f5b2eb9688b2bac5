"""Intervals that hold at the edges, for report entries whose bootstrap interval is degenerate.

A percentile bootstrap of a metric that is 1.000 (or 0.000) on the data is [1.000, 1.000]:
every resample gives the same value. :func:`hold_edges` replaces such an entry's interval
and records how it was made in the entry's ``"interval"`` key:

* ``"bootstrap"``: the percentile group bootstrap (not degenerate, or nothing better);
* ``"wilson"``: Wilson score interval from the confusion-matrix counts (images as the unit);
  used for accuracy, sensitivity, specificity, PPV, NPV, per-class recall and precision;
* ``"wilson-mover"``: balanced accuracy (a mean of per-class recalls, which are counted on
  disjoint images and hence independent) from the recalls' Wilson intervals combined by
  MOVER (Zou & Donner 2008): ``mean -/+ sqrt(sum((p - l)^2)) / K``;
* ``"auc-wilson-bound"``: ROC AUC at 1 (mirrored at 0). For any threshold t,
  AUC = P(S+ > S-) >= Se(t) * Sp(t), and at perfect separation some t has Se = Sp = 1 on the
  data, so the lower bound is the product of the Wilson lower bounds of n_pos/n_pos and
  n_neg/n_neg, each at alpha/2 (Bonferroni). The normal (Hanley–McNeil, DeLong) variance is
  0 at AUC = 1, so those would be degenerate too. Conservative, not exact (t is chosen
  from the data). The multi-class macro AUC averages per-class bounds at alpha/K;
* ``"wilson-f1-bound"``: F1 (binary and per class), the harmonic mean of precision and
  recall, lies between them, so its interval runs from the lower of their Wilson lower
  bounds to the higher of their upper bounds, each at alpha/2 (Bonferroni);
* ``"bootstrap-degenerate"``: no edge-holding interval is known here (PR-AUC, macro F1,
  Brier, ECE, ...): the zero-width bootstrap interval is kept and marked as such.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

from .intervals import wilson_interval

BOOTSTRAP, DEGENERATE = "bootstrap", "bootstrap-degenerate"


def is_degenerate(entry: Mapping) -> bool:
    """True when a finite interval has zero width (every resample gave the same value)."""
    low, high = entry.get("low"), entry.get("high")
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return False
    return high - low <= 1e-12


def _wilson(k: float, n: float, alpha: float) -> dict | None:
    if n <= 0:
        return None
    low, high = wilson_interval(k, n, alpha)
    return {"low": low, "high": high, "interval": "wilson"}


def mover_mean(cells: Sequence[tuple[float, float, float]]) -> dict:
    """MOVER interval for the mean of independent estimates given as (value, low, high)."""
    v = np.asarray(cells, dtype=float)
    mean, k = v[:, 0].mean(), len(v)
    low = mean - math.sqrt(((v[:, 0] - v[:, 1]) ** 2).sum()) / k
    high = mean + math.sqrt(((v[:, 2] - v[:, 0]) ** 2).sum()) / k
    return {"low": max(0.0, low), "high": min(1.0, high), "interval": "wilson-mover"}


def _recall_mover(hits: Sequence[float], totals: Sequence[float], alpha: float) -> dict | None:
    cells = [(k / n, *wilson_interval(k, n, alpha)) for k, n in zip(hits, totals) if n > 0]
    return mover_mean(cells) if cells else None


def f1_bound(tp: int, fp: int, fn: int, alpha: float = 0.05) -> dict | None:
    """F1 lies between precision and recall: the outer Wilson bounds of both, at alpha/2."""
    if tp + fp <= 0 or tp + fn <= 0:
        return None
    (pl, ph), (rl, rh) = wilson_interval(tp, tp + fp, alpha / 2), wilson_interval(tp, tp + fn, alpha / 2)
    return {"low": min(pl, rl), "high": max(ph, rh), "interval": "wilson-f1-bound"}


def auc_edge_bound(value: float, n_pos: int, n_neg: int, alpha: float = 0.05) -> dict | None:
    """Edge-holding interval for an AUC of exactly 1 or 0 (see the module notes); else None."""
    if n_pos <= 0 or n_neg <= 0 or value not in (0.0, 1.0):
        return None
    bound = wilson_interval(n_pos, n_pos, alpha / 2)[0] * wilson_interval(n_neg, n_neg, alpha / 2)[0]
    low, high = (bound, 1.0) if value == 1.0 else (0.0, 1.0 - bound)
    return {"low": low, "high": high, "interval": "auc-wilson-bound"}


def binary_edges(cm: Mapping, auc: float | None, alpha: float) -> dict:
    """Edge-holding candidates for the binary headline metrics, from the confusion matrix."""
    tn, fp, fn, tp = (cm[k] for k in ("tn", "fp", "fn", "tp"))
    out = {"accuracy": _wilson(tp + tn, tn + fp + fn + tp, alpha), "sensitivity": _wilson(tp, tp + fn, alpha),
           "specificity": _wilson(tn, tn + fp, alpha), "ppv": _wilson(tp, tp + fp, alpha),
           "npv": _wilson(tn, tn + fn, alpha),
           "balanced_accuracy": _recall_mover((tp, tn), (tp + fn, tn + fp), alpha),
           "f1": f1_bound(tp, fp, fn, alpha)}
    if auc is not None:
        out["roc_auc"] = auc_edge_bound(auc, tp + fn, tn + fp, alpha)
    return out


def multiclass_edges(cm, aucs: Mapping[str, float | None], classes: Sequence[str], alpha: float) -> dict:
    """Edge-holding candidates for the multi-class headline and per-class metrics."""
    cm = np.asarray(cm)
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    n = int(cm.sum())
    accuracy = _wilson(int(tp.sum()), n, alpha)
    recall = _recall_mover(tp, support, alpha)
    out = {"accuracy": accuracy, "weighted_recall": accuracy,  # weighted recall == accuracy
           "balanced_accuracy": recall, "macro_recall": recall}
    for k, name in enumerate(classes):
        out[f"recall/{name}"] = _wilson(tp[k], support[k], alpha)
        out[f"precision/{name}"] = _wilson(tp[k], predicted[k], alpha)
        out[f"f1/{name}"] = f1_bound(tp[k], predicted[k] - tp[k], support[k] - tp[k], alpha)
        auc = aucs.get(name)
        if auc is not None:
            out[f"auc/{name}"] = auc_edge_bound(auc, int(support[k]), n - int(support[k]), alpha)
    out["macro_auc_ovr"] = _macro_auc_bound(aucs, classes, support, n, alpha)
    return out


def _macro_auc_bound(aucs, classes, support, n: int, alpha: float) -> dict | None:
    """Mean of the per-class AUC bounds, each at alpha/K, when every class's AUC is at the edge."""
    bounds = [auc_edge_bound(aucs.get(c), int(s), n - int(s), alpha / len(classes))
              if aucs.get(c) is not None else None for c, s in zip(classes, support)]
    if not bounds or any(b is None for b in bounds):
        return None
    return {"low": float(np.mean([b["low"] for b in bounds])),
            "high": float(np.mean([b["high"] for b in bounds])), "interval": "auc-wilson-bound"}


def hold_edges(entries: Mapping[str, dict], candidates: Mapping[str, dict | None]) -> dict:
    """``entries`` with each degenerate interval replaced by its candidate (or marked
    ``bootstrap-degenerate``); every entry gets an ``"interval"`` key."""
    out = {}
    for name, entry in entries.items():
        if not is_degenerate(entry):
            out[name] = {**entry, "interval": BOOTSTRAP}
        elif candidates.get(name) is not None and not is_degenerate(candidates[name]):
            out[name] = {**entry, **candidates[name]}
        else:
            out[name] = {**entry, "interval": DEGENERATE}
    return out
