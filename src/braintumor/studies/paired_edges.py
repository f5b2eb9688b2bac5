"""Paired differences of proportions whose bootstrap interval is degenerate.

When two models agree on every image of a class (no discordant pairs), every group-bootstrap
resample gives the same difference, and the percentile interval is [0, 0] although a few
hundred images cannot show that two models are identical. Such entries get Newcombe's
hybrid score interval for a difference of paired proportions (Newcombe 1998, Stat Med 17,
"Improved confidence intervals for the difference between binomial proportions based on
paired data", method 10: each model's Wilson interval combined with the phi correlation of the
paired table); balanced accuracy, a mean of recall differences counted on disjoint images,
combines the per-class intervals by MOVER (Zou & Donner 2008). Images are the unit here, not
groups, so this interval only replaces a zero-width one (:func:`braintumor.metrics.edges.hold_edges`).

Comparisons are study bookkeeping, not a run's result, so this lives beside them: editing it
leaves finished study runs current.
"""
from __future__ import annotations

import math

import numpy as np

from ..metrics.edges import hold_edges
from ..metrics.intervals import wilson_interval

NEWCOMBE = "newcombe-paired"


def newcombe_paired(correct_a, correct_b, alpha: float = 0.05) -> dict | None:
    """Interval for mean(correct_b) − mean(correct_a) on the same images (None for no images)."""
    ca, cb = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    n = ca.size
    if n == 0:
        return None
    both, only_a, only_b = int((ca & cb).sum()), int((ca & ~cb).sum()), int((~ca & cb).sum())
    neither = n - both - only_a - only_b
    p_a, p_b = (both + only_a) / n, (both + only_b) / n
    (l_a, u_a), (l_b, u_b) = wilson_interval(both + only_a, n, alpha), wilson_interval(both + only_b, n, alpha)
    margins = (both + only_a) * (only_b + neither) * (both + only_b) * (only_a + neither)
    # Newcombe's phi with his continuity adjustment (0 for small positive association).
    cross = both * neither - only_a * only_b
    adjusted = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = adjusted / math.sqrt(margins) if margins > 0 else 0.0
    d = p_b - p_a
    below = math.sqrt(max(0.0, (p_b - l_b) ** 2 - 2 * phi * (p_b - l_b) * (u_a - p_a) + (u_a - p_a) ** 2))
    above = math.sqrt(max(0.0, (u_b - p_b) ** 2 - 2 * phi * (u_b - p_b) * (p_a - l_a) + (p_a - l_a) ** 2))
    return {"low": max(-1.0, d - below), "high": min(1.0, d + above), "interval": NEWCOMBE}


def _mover_difference(cells: list[dict | None], values: list[float]) -> dict | None:
    """MOVER interval of the mean of independent differences (value, low, high)."""
    if not cells or any(c is None for c in cells):
        return None
    # As metrics.edges.mover_mean, but for differences (in [-1, 1], not [0, 1]).
    mean = float(np.mean(values))
    low = mean - math.sqrt(sum((v - c["low"]) ** 2 for v, c in zip(values, cells))) / len(cells)
    high = mean + math.sqrt(sum((c["high"] - v) ** 2 for v, c in zip(values, cells))) / len(cells)
    return {"low": max(-1.0, low), "high": min(1.0, high), "interval": f"{NEWCOMBE}-mover"}


def hold_paired_edges(metrics: dict, y_true, pred_a, pred_b, n_classes: int, alpha: float = 0.05) -> dict:
    """``metrics`` (paired bootstrap entries B − A) with each zero-width proportion interval
    replaced by its Newcombe interval; other entries (AUC by DeLong, ...) are left as they are."""
    y, pa, pb = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    ca, cb = pa == y, pb == y
    recall = [newcombe_paired(ca[y == k], cb[y == k], alpha) for k in range(n_classes)]
    recall_d = [float(cb[y == k].mean() - ca[y == k].mean()) if (y == k).any() else math.nan
                for k in range(n_classes)]
    candidates = {"accuracy": newcombe_paired(ca, cb, alpha),
                  "balanced_accuracy": _mover_difference(recall, recall_d)}
    if n_classes == 2:
        candidates |= {"sensitivity": recall[1], "specificity": recall[0]}
    held = hold_edges({k: metrics[k] for k in candidates if k in metrics}, candidates)
    return {**metrics, **held}
