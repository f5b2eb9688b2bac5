"""Wilson and Clopper–Pearson intervals, especially at the edges, and in evaluation reports."""
from __future__ import annotations

import math

import numpy as np
import pytest

from braintumor.metrics import binary_proportions, clopper_pearson_interval, evaluate_binary, wilson_interval


def test_wilson_known_values():
    # Textbook value (Newcombe 1998, Table I): 81 of 263 -> 0.2553, 0.3662.
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=1e-4) and high == pytest.approx(0.3662, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert (low + high) / 2 == pytest.approx(0.5) and low == pytest.approx(0.2366, abs=1e-4)


@pytest.mark.parametrize("n", [1, 10, 449, 10_000])
def test_edges_are_never_degenerate(n):
    low, high = wilson_interval(n, n)
    assert high == 1.0 and 0 < low < 1  # 1.000 gets a lower bound below 1
    low0, high0 = wilson_interval(0, n)
    assert low0 == 0.0 and 0 < high0 < 1
    assert low0 == pytest.approx(1 - high) and high0 == pytest.approx(1 - low)  # symmetric
    cp_low, cp_high = clopper_pearson_interval(n, n)
    assert cp_high == 1.0 and cp_low == pytest.approx((0.025) ** (1 / n))  # exact: alpha/2 ** (1/n)


def test_empty_and_invalid_counts():
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(5, 3)


def test_wilson_coverage_is_near_nominal():
    rng = np.random.default_rng(0)
    n, p = 40, 0.9
    ks = rng.binomial(n, p, size=4000)
    covered = np.mean([lo <= p <= hi for lo, hi in (wilson_interval(k, n) for k in ks)])
    assert 0.92 <= covered <= 0.98


def test_binary_proportions_and_report_carry_wilson_intervals():
    props = binary_proportions(tn=40, fp=10, fn=0, tp=50)
    assert props["sensitivity"]["value"] == 1.0 and props["sensitivity"]["low"] < 1.0
    assert props["sensitivity"]["k"] == 50 and props["specificity"]["n"] == 50
    y = np.array([0] * 50 + [1] * 50)
    p = np.r_[np.linspace(0.0, 0.6, 50), np.linspace(0.7, 1.0, 50)]
    report = evaluate_binary(y, p, np.arange(100), threshold=0.5, n_resamples=200)
    headline, wilson = report["metrics"]["sensitivity"], report["proportion_intervals"]["sensitivity"]
    assert wilson["value"] == 1.0 and wilson["low"] < 0.95
    # the percentile bootstrap collapses at the edge, so the headline takes the Wilson interval
    assert headline["interval"] == "wilson" and headline["low"] == wilson["low"]
