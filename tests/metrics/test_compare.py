"""Paired comparisons: fast DeLong against known values and the paired bootstrap; the
paired group bootstrap finds a real difference and not a null one."""
from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from braintumor.metrics import delong, delong_interval, fast_delong, paired_bootstrap, paired_comparison


def _scores(rng, y, separation):
    return 1 / (1 + np.exp(-(rng.normal(size=y.size) + separation * y)))


def naive_delong_cov(y, scores):
    """The O(m·n) definition (DeLong et al. 1988) the fast algorithm must reproduce."""
    y = np.asarray(y).astype(bool)
    out = []
    for s in scores:
        x, z = s[y], s[~y]
        psi = (x[:, None] > z[None, :]) + 0.5 * (x[:, None] == z[None, :])
        out.append((psi.mean(axis=1), psi.mean(axis=0)))
    v10 = np.array([o[0] for o in out])
    v01 = np.array([o[1] for o in out])
    return np.cov(v10) / y.sum() + np.cov(v01) / (~y).sum()


def test_fast_delong_matches_sklearn_and_the_definition():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    a = _scores(rng, y, 1.0)
    b = np.round(_scores(rng, y, 1.5), 2)  # ties are counted half
    aucs, cov = fast_delong(y, np.vstack([a, b]))
    assert aucs == pytest.approx([roc_auc_score(y, a), roc_auc_score(y, b)])
    np.testing.assert_allclose(cov, naive_delong_cov(y, [a, b]), rtol=1e-10)


def test_delong_known_small_example():
    # Hand-computed: y = 0,0,1,1; A ranks 1 of 4 pairs wrong (AUC .75), B is perfect.
    y = np.array([0, 0, 1, 1])
    r = delong(y, np.array([0.1, 0.6, 0.5, 0.9]), np.array([0.1, 0.2, 0.8, 0.9]))
    assert (r["a"], r["b"], r["difference"]) == (0.75, 1.0, 0.25)
    # V10 of A = (0.5, 1), V01 = (1, 0.5); B is all ones: var(diff) = var_A = 0.125/2 + 0.125/2
    assert r["se"] == pytest.approx(np.sqrt(0.125))


def test_delong_agrees_with_the_paired_bootstrap():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 600)
    latent = rng.normal(size=y.size)  # shared difficulty: the two models are correlated
    a = latent + 1.0 * y + rng.normal(scale=0.8, size=y.size)
    b = latent + 1.4 * y + rng.normal(scale=0.8, size=y.size)
    d = delong(y, a, b)
    boot = paired_bootstrap(y, (a > 0.5).astype(int), (b > 0.5).astype(int), np.arange(y.size), a, b,
                            n_resamples=2000, seed=0)["roc_auc"]
    assert d["difference"] == pytest.approx(boot["difference"])
    se_boot = (boot["high"] - boot["low"]) / (2 * 1.96)
    assert d["se"] == pytest.approx(se_boot, rel=0.15)
    assert d["p_value"] < 0.05 and boot["p_value"] < 0.05
    auc, low, high = delong_interval(y, a)
    assert low < auc < high


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.integers(0, 2, n)
    groups = np.repeat(np.arange(n // 2), 2)  # duplicate pairs
    wrong_a = rng.random(n) < 0.20
    pred_a = np.where(wrong_a, 1 - y, y)
    # B fixes most of A's errors: a real improvement of ~14 points.
    pred_b = np.where(wrong_a & (rng.random(n) < 0.3), 1 - y, y)
    real = paired_bootstrap(y, pred_a, pred_b, groups, n_resamples=1000)
    assert real["accuracy"]["difference"] > 0.1
    assert real["accuracy"]["low"] > 0 and real["accuracy"]["p_value"] < 0.01
    # Null: B makes as many errors as A, on different images.
    pred_null = np.where(rng.permutation(wrong_a), 1 - y, y)
    null = paired_bootstrap(y, pred_a, pred_null, groups, n_resamples=1000)
    assert null["accuracy"]["low"] < 0 < null["accuracy"]["high"] and null["accuracy"]["p_value"] > 0.05
    same = paired_bootstrap(y, pred_a, pred_a, groups, n_resamples=200)
    assert same["sensitivity"]["difference"] == 0 and same["sensitivity"]["p_value"] == 1.0


def test_null_p_values_are_roughly_uniform():
    rng = np.random.default_rng(4)
    ps = []
    for _ in range(60):
        y = rng.integers(0, 2, 200)
        a = np.where(rng.random(200) < 0.2, 1 - y, y)
        b = np.where(rng.random(200) < 0.2, 1 - y, y)
        ps.append(paired_bootstrap(y, a, b, np.arange(200), n_resamples=300, seed=1)["accuracy"]["p_value"])
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.15  # nominal 5%, 60 draws


def test_paired_comparison_multiclass_uses_bootstrap_auc():
    rng = np.random.default_rng(5)
    y = rng.integers(0, 3, 150)
    q = rng.dirichlet(np.ones(3), size=150)
    q[np.arange(150), y] += 1
    q /= q.sum(axis=1, keepdims=True)
    r = paired_comparison(y, np.arange(150), q.argmax(1), q.argmax(1), q, q, ["a", "b", "c"], n_resamples=100)
    assert "macro_auc_ovr" in r["metrics"] and "roc_auc" not in r["metrics"]
    assert r["metrics"]["accuracy"]["difference"] == 0
