"""Confidence intervals for proportions that hold at the edges: Wilson and Clopper–Pearson.

A percentile bootstrap of a proportion that is 1.000 on the full data gives [1.000, 1.000]:
every resample is also 1.000, so the interval says nothing about how often the next
tumour would be missed. Score (Wilson) and exact (Clopper–Pearson) intervals keep a
lower bound below 1 (and an upper bound above 0) however extreme the count.

These treat images as independent; test images come in duplicate groups, so the
group bootstrap (:mod:`braintumor.metrics.bootstrap`) stays the main interval and these
are reported beside it, mainly for counts at or near 0 and ``n``.
"""
from __future__ import annotations

import math

from scipy.stats import beta, norm


def wilson_interval(k: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials; (nan, nan) when n == 0."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    z = float(norm.ppf(1 - alpha / 2))
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the edges (no rounding)
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def clopper_pearson_interval(k: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval: conservative, never below nominal coverage."""
    if n <= 0:
        return math.nan, math.nan
    if not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    low = 0.0 if k == 0 else float(beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


METHODS = {"wilson": wilson_interval, "clopper-pearson": clopper_pearson_interval}


def proportion_entry(k: float, n: float, method: str = "wilson", alpha: float = 0.05) -> dict:
    """``{"value", "low", "high", "k", "n"}`` (the shape of a report's metric entry plus counts)."""
    low, high = METHODS[method](k, n, alpha)
    return {"value": k / n if n else math.nan, "low": low, "high": high, "k": int(k), "n": int(n)}


def binary_proportions(tn: int, fp: int, fn: int, tp: int, method: str = "wilson",
                       alpha: float = 0.05) -> dict:
    """Accuracy, sensitivity, specificity, PPV and NPV of a confusion matrix with
    ``method`` intervals (images as the unit)."""
    counts = {"accuracy": (tp + tn, tn + fp + fn + tp), "sensitivity": (tp, tp + fn),
              "specificity": (tn, tn + fp), "ppv": (tp, tp + fp), "npv": (tn, tn + fn)}
    return {name: proportion_entry(k, n, method, alpha) for name, (k, n) in counts.items()}
