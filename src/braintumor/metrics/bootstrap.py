"""Duplicate-group bootstrap confidence intervals.

Test images arrive in duplicate groups (exact or perceptual copies of one scan), and
copies are not independent evidence, so every resample draws whole groups with
replacement. Resampling images instead would count each copy as a new patient and make
the intervals too narrow.

A resample is represented by how many times each image was drawn (a row of
multiplicities). Any ``metric_fn(y, scores) -> dict`` can be bootstrapped by
materialising each resample; :class:`BinaryMetricSet` and :class:`MulticlassMetricSet`
also evaluate whole blocks of resamples at once with weighted numpy formulas, because
calling scikit-learn ~10 times per resample costs ~10 ms, i.e. ~10 s per 1,000
resamples. The tests check that the vectorised formulas reproduce scikit-learn on
every resample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, NamedTuple

import numpy as np

from .calibration import _bin_sums, _ece, expected_calibration_error
from .classification import (_PRF, _check_binary, _check_multiclass, _is_number, _rates_from_counts, _ratio,
                             binary_metrics, multiclass_metrics, specificity_at_sensitivity)

# Upper bound on resamples x images held in memory at once by the bootstrap.
_MAX_BLOCK_CELLS = 2_000_000


class CI(NamedTuple):
    value: float  # metric on the full data
    low: float
    high: float


class BootstrapResult(dict):
    """``{metric name: CI(value, low, high)}`` plus how the bootstrap went.

    ``n_skipped[name]`` counts resamples where the metric was NaN (e.g. no tumour
    drawn); they are left out of the percentiles.
    """

    def __init__(self, cis: dict, *, n_resamples: int, n_skipped: dict, n_images: int,
                 n_groups: int, alpha: float, seed: int):
        super().__init__(cis)
        self.n_resamples = n_resamples
        self.n_skipped = n_skipped
        self.n_images = n_images
        self.n_groups = n_groups
        self.alpha = alpha
        self.seed = seed


def _group_resamples(groups: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Blocks of per-image multiplicities, one row per resample.

    Each resample draws as many groups as there are, uniformly with replacement;
    every image of a drawn group comes along, once per draw.
    """
    _, inverse = np.unique(groups, return_inverse=True)
    inverse = inverse.ravel()
    n_groups = int(inverse.max()) + 1
    rng = np.random.default_rng(seed)
    block = max(1, _MAX_BLOCK_CELLS // max(inverse.size, n_groups))
    for start in range(0, n_resamples, block):
        b = min(block, n_resamples - start)
        draws = rng.integers(0, n_groups, size=(b, n_groups))
        # Count draws per (resample, group) in one bincount by offsetting each row.
        per_group = np.bincount((draws + n_groups * np.arange(b)[:, None]).ravel(),
                                minlength=b * n_groups).reshape(b, n_groups)
        yield per_group[:, inverse]


def grouped_bootstrap(
    metric_fn: Callable[[np.ndarray, np.ndarray], Mapping],
    y_true,
    scores,
    groups,
    n_resamples: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
) -> BootstrapResult:
    """Percentile CIs for every numeric entry of ``metric_fn(y, scores)``, resampling groups.

    ``groups`` gives each image's duplicate-group id (any hashable dtype); pass
    ``np.arange(n)`` for an image-level bootstrap. Non-numeric entries (e.g. a
    confusion matrix) are ignored. If ``metric_fn`` has a method
    ``batch(y, scores, weights) -> {name: array}``, where ``weights`` is an
    (n_resamples_in_block, n_images) array of multiplicities, whole blocks of resamples
    are evaluated at once; otherwise ``metric_fn`` is called on each materialised
    resample. ``value`` is always ``metric_fn`` on the full data.
    """
    y, s, g = np.asarray(y_true), np.asarray(scores), np.asarray(groups)
    if not (y.shape[0] == s.shape[0] == g.shape[0]) or g.ndim != 1:
        raise ValueError(f"y_true, scores and groups must have one entry per image, "
                         f"got {y.shape[0]}, {s.shape[0]}, {g.shape}")
    if not 0 < alpha < 1 or n_resamples < 1:
        raise ValueError(f"need 0 < alpha < 1 and n_resamples >= 1, got {alpha}, {n_resamples}")
    full = metric_fn(y, s)
    names = [k for k, v in full.items() if _is_number(v)]
    samples = {k: np.empty(n_resamples) for k in names}
    batch = getattr(metric_fn, "batch", None)
    images = np.arange(y.shape[0])
    done = 0
    for weights in _group_resamples(g, n_resamples, seed):
        if batch is not None:
            result = batch(y, s, weights)
            for k in names:
                samples[k][done:done + weights.shape[0]] = result[k]
        else:
            for i, w in enumerate(weights, start=done):
                idx = np.repeat(images, w)
                result = metric_fn(y[idx], s[idx])
                for k in names:
                    samples[k][i] = result[k]
        done += weights.shape[0]

    cis, skipped = {}, {}
    for k in names:
        ok = np.isfinite(samples[k])
        skipped[k] = int(n_resamples - ok.sum())
        low, high = (np.quantile(samples[k][ok], [alpha / 2, 1 - alpha / 2]) if ok.any()
                     else (math.nan, math.nan))
        cis[k] = CI(float(full[k]), float(low), float(high))
    return BootstrapResult(cis, n_resamples=n_resamples, n_skipped=skipped, n_images=int(y.shape[0]),
                           n_groups=int(np.unique(g).size), alpha=alpha, seed=seed)


# ------------------------------------------------------- vectorised metric bundles
def _weighted_curve(positive: np.ndarray, score: np.ndarray, weights: np.ndarray):
    """Weighted cumulative (tps, fps) at each distinct score, from highest to lowest.

    Same as sklearn's ``_binary_clf_curve`` with ``sample_weight``, one row per resample.
    """
    order = np.argsort(score, kind="stable")[::-1]
    ends = np.r_[np.flatnonzero(np.diff(score[order])), score.size - 1]  # last of each tie run
    w = weights[:, order]
    pos = positive[order]
    return np.cumsum(w * pos, axis=1)[:, ends], np.cumsum(w * ~pos, axis=1)[:, ends]


def _auc_from_curve(tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Trapezoidal ROC-AUC per row (ties count half, as in roc_auc_score)."""
    prev_tps = np.pad(tps, ((0, 0), (1, 0)))[:, :-1]
    area = (np.diff(fps, axis=1, prepend=0) * (tps + prev_tps) / 2).sum(axis=1)
    return _ratio(area, tps[:, -1] * fps[:, -1])


@dataclass(frozen=True)
class BinaryMetricSet:
    """Everything :func:`evaluate_binary` bootstraps, as one bootstrappable metric_fn.

    Calling it gives :func:`binary_metrics` plus ``specificity_at_sensitivity`` (at
    ``sens_target``) and ``ece``; :meth:`batch` gives the same for many resamples.
    """

    threshold: float = 0.5
    sens_target: float = 0.95
    n_bins: int = 15

    def __call__(self, y_true, p_tumor) -> dict:
        out = binary_metrics(y_true, p_tumor, self.threshold)
        out["specificity_at_sensitivity"] = specificity_at_sensitivity(y_true, p_tumor, self.sens_target)
        out["ece"] = expected_calibration_error(y_true, p_tumor, self.n_bins)
        return out

    def batch(self, y_true, p_tumor, weights) -> dict:
        y, p = _check_binary(y_true, p_tumor)
        w = np.asarray(weights, dtype=float)
        pos, called = y == 1, p >= self.threshold
        tp, fp = w @ (pos & called), w @ (~pos & called)
        fn, tn = w @ (pos & ~called), w @ (~pos & ~called)
        out = {"tn": tn, "fp": fp, "fn": fn, "tp": tp, **_rates_from_counts(tn, fp, fn, tp)}

        tps, fps = _weighted_curve(pos, p, w)
        n_pos, n_neg = tps[:, -1], fps[:, -1]
        both = (n_pos > 0) & (n_neg > 0)
        out["roc_auc"] = np.where(both, _auc_from_curve(tps, fps), np.nan)
        # Average precision = sum over thresholds of (recall step) x precision there.
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tps + fps > 0, tps / (tps + fps), 0.0)
            ap = (np.diff(tps, axis=1, prepend=0) * precision).sum(axis=1) / n_pos
            # tps / n_pos is the exact division roc_curve does, so ">= target" agrees.
            reached = np.argmax(tps / n_pos[:, None] >= self.sens_target, axis=1)
            spec = 1.0 - fps[np.arange(w.shape[0]), reached] / n_neg
        out["pr_auc"] = np.where(both, ap, np.nan)
        out["specificity_at_sensitivity"] = np.where(both, spec, np.nan)
        out["brier"] = _ratio(w @ (p - y) ** 2, w.sum(axis=1))
        out["ece"] = _ece(*_bin_sums(p, y.astype(float), w, self.n_bins))
        return out


def _nanmean_rows(v: np.ndarray) -> np.ndarray:
    ok = ~np.isnan(v)
    return _ratio(np.where(ok, v, 0.0).sum(axis=1), ok.sum(axis=1))


def _nan_weighted_rows(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    """sklearn's _nanaverage per row: NaNs dropped; all-zero weights -> plain mean."""
    ok = ~np.isnan(v)
    num, den = np.where(ok, v * w, 0.0).sum(axis=1), np.where(ok, w, 0.0).sum(axis=1)
    return np.where(den > 0, _ratio(num, den), _nanmean_rows(v))


@dataclass(frozen=True)
class MulticlassMetricSet:
    """:func:`multiclass_metrics` plus top-label ``ece``, bootstrappable in blocks."""

    classes: tuple[str, ...]
    n_bins: int = 15

    def __call__(self, y_true, probs) -> dict:
        y, q = _check_multiclass(y_true, probs, self.classes)  # names -> indices for the ECE
        out = multiclass_metrics(y, q, self.classes)
        out["ece"] = expected_calibration_error(y, q, self.n_bins)
        return out

    def batch(self, y_true, probs, weights) -> dict:
        y, q = _check_multiclass(y_true, probs, self.classes)
        w = np.asarray(weights, dtype=float)
        n_classes = q.shape[1]
        pred = q.argmax(axis=1)
        cells = np.zeros((y.size, n_classes * n_classes))
        cells[np.arange(y.size), y * n_classes + pred] = 1.0
        cm = (w @ cells).reshape(-1, n_classes, n_classes)  # [resample, true, predicted]
        tp = np.diagonal(cm, axis1=1, axis2=2)
        support, predicted = cm.sum(axis=2), cm.sum(axis=1)
        per_class = {
            "precision": _ratio(tp, predicted),
            "recall": _ratio(tp, support),
            "f1": _ratio(2 * tp, support + predicted),
        }
        out = {
            "accuracy": _ratio(tp.sum(axis=1), support.sum(axis=1)),
            "balanced_accuracy": _nanmean_rows(per_class["recall"]),
        }
        for name in _PRF:
            out[f"macro_{name}"] = _nanmean_rows(per_class[name])
            out[f"weighted_{name}"] = _nan_weighted_rows(per_class[name], support)
        aucs = np.stack([_auc_from_curve(*_weighted_curve(y == k, q[:, k], w))
                         for k in range(n_classes)], axis=1)
        out["macro_auc_ovr"] = aucs.mean(axis=1)  # NaN if any class is missing, like sklearn's
        # sklearn's log_loss clips at the float64 machine epsilon; do the same.
        eps = np.finfo(float).eps
        nll = -np.log(np.clip(q[np.arange(y.size), y], eps, 1 - eps))
        out["log_loss"] = _ratio(w @ nll, w.sum(axis=1))
        for k, name in enumerate(self.classes):
            for metric in _PRF:
                out[f"{metric}/{name}"] = per_class[metric][:, k]
            out[f"auc/{name}"] = aucs[:, k]
            out[f"support/{name}"] = support[:, k]
        out["ece"] = _ece(*_bin_sums(q.max(axis=1), (pred == y).astype(float), w, self.n_bins))
        return out


# ---------------------------------------------------------------------------- reports
