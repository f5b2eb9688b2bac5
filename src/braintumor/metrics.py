"""Metrics, duplicate-group bootstrap confidence intervals, calibration and thresholds.

Point estimates come from scikit-learn. Confidence intervals come from a *grouped*
bootstrap: test images arrive in duplicate groups (exact or perceptual copies of one
scan), and copies are not independent evidence, so every resample draws whole groups
with replacement. Resampling images instead would count each copy as a new patient
and make the intervals too narrow.

A resample is represented by how many times each image was drawn (a row of
multiplicities). Any ``metric_fn(y, scores) -> dict`` can be bootstrapped by
materialising each resample; :class:`BinaryMetricSet` and :class:`MulticlassMetricSet`
also evaluate whole blocks of resamples at once with weighted numpy formulas, because
calling scikit-learn ~10 times per resample costs ~10 ms, i.e. ~10 s per 1,000
resamples. The tests check that the vectorised formulas reproduce scikit-learn on
every resample.

Conventions: label 1 = tumour and ``p`` = P(tumour); an image is called tumour when
``p >= threshold`` (the rule :func:`sklearn.metrics.roc_curve` uses). Multi-class
labels are indices into ``classes`` (the probability columns) or the class names;
the predicted class is the arg-max. Undefined values (a class missing, a zero
denominator) are NaN, never an exception, so a degenerate bootstrap resample is
skipped rather than crashing the run.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Callable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit, log_softmax, logit, softmax
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    log_loss,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

# Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before taking logits. Models
# emit float32, whose spacing just below 1.0 is 6e-8, so a saturated output of 1.0
# only tells us p > 1 - 1e-7; clipping there keeps logits finite (|z| <= 16.1)
# without inventing confidence the model never expressed.
PROB_EPS = 1e-7

# Upper bound on resamples x images held in memory at once by the bootstrap.
_MAX_BLOCK_CELLS = 2_000_000

_PRF = ("precision", "recall", "f1")


# --------------------------------------------------------------------------- inputs
def _binary_labels(y_true) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D array, got shape {y.shape}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"binary labels must be 0 (healthy) or 1 (tumour), got {np.unique(y)[:5]}")
    return y.astype(np.int64)


def _check_binary(y_true, p_tumor) -> tuple[np.ndarray, np.ndarray]:
    y = _binary_labels(y_true)
    p = np.asarray(p_tumor, dtype=float)
    if p.shape != y.shape:
        raise ValueError(f"need one P(tumour) per label, got {p.shape} for {y.size} labels")
    if not (np.isfinite(p).all() and p.min() >= 0.0 and p.max() <= 1.0):
        raise ValueError("p must be probabilities P(tumour) in [0, 1] (logits passed by mistake?)")
    return y, p


def _class_indices(y_true, n_classes: int, classes: Sequence[str] | None) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y.shape}")
    if classes is not None and y.dtype.kind in "OUS":  # class names -> column indices
        lookup = {name: i for i, name in enumerate(classes)}
        unknown = set(y.tolist()) - lookup.keys()
        if unknown:
            raise ValueError(f"labels not in classes {list(classes)}: {sorted(unknown)[:5]}")
        return np.array([lookup[v] for v in y.tolist()], dtype=np.int64)
    if y.dtype.kind not in "iub" or (y.size and (y.min() < 0 or y.max() >= n_classes)):
        raise ValueError(f"labels must be integers in [0, {n_classes}) or class names")
    return y.astype(np.int64)


def _check_multiclass(y_true, probs, classes=None) -> tuple[np.ndarray, np.ndarray]:
    q = np.asarray(probs, dtype=float)
    if q.ndim != 2 or q.shape[1] < 2:
        raise ValueError(f"probs must be (n_images, n_classes) with n_classes >= 2, got {q.shape}")
    if classes is not None and len(classes) != q.shape[1]:
        raise ValueError(f"{len(classes)} classes but probs has {q.shape[1]} columns")
    y = _class_indices(y_true, q.shape[1], classes)
    if y.size == 0 or y.size != q.shape[0]:
        raise ValueError(f"need one label per row of probs, got {y.size} labels for {q.shape[0]} rows")
    sums = q.sum(axis=1)
    if not (np.isfinite(q).all() and q.min() >= 0.0 and np.allclose(sums, 1.0, atol=1e-3)):
        raise ValueError("probs rows must be probabilities summing to 1 (logits passed by mistake?)")
    # float32 softmax rows sum to 1 +- 1e-7; sklearn's log_loss warns about that.
    return y, q / sums[:, None]


def _is_number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_))


def _ratio(num, den):
    """num / den elementwise, NaN where den == 0 (works on scalars and arrays)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den != 0, num / den, np.nan)


# --------------------------------------------------------------------------- binary
def _rates_from_counts(tn, fp, fn, tp) -> dict:
    """Threshold metrics from confusion counts (scalars or per-resample arrays).

    Deriving them from one confusion matrix, instead of calling recall_score etc.
    separately, gives the point estimate and the vectorised bootstrap the very same
    formulas and NaN rules; the tests compare them with scikit-learn's functions.
    """
    sensitivity = _ratio(tp, tp + fn)
    specificity = _ratio(tn, tn + fp)
    return {
        "accuracy": _ratio(tp + tn, tn + fp + fn + tp),
        # NaN (not sklearn's single-class recall) when a class is absent: undefined.
        "balanced_accuracy": (sensitivity + specificity) / 2,
        "sensitivity": sensitivity,
        "specificity": specificity,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
    }


def binary_metrics(y_true, p_tumor, threshold: float = 0.5) -> dict:
    """Confusion counts, threshold metrics, ROC-AUC, PR-AUC (average precision), Brier.

    Counts are ints, everything else floats; ranking metrics are NaN unless both
    classes are present, ratios are NaN when their denominator is zero.
    """
    y, p = _check_binary(y_true, p_tumor)
    tn, fp, fn, tp = confusion_matrix(y, (p >= threshold).astype(np.int64), labels=[0, 1]).ravel()
    out: dict = {"tn": int(tn), "fp": int(fp), "fn": int(fn), "tp": int(tp)}
    out.update({k: float(v) for k, v in _rates_from_counts(tn, fp, fn, tp).items()})
    both = 0 < y.sum() < y.size
    out["roc_auc"] = float(roc_auc_score(y, p)) if both else math.nan
    out["pr_auc"] = float(average_precision_score(y, p)) if both else math.nan
    out["brier"] = float(brier_score_loss(y, p, pos_label=1))
    return out


def specificity_at_sensitivity(y_true, p, target: float = 0.95) -> float:
    """Best specificity over all thresholds whose sensitivity is >= target.

    For reporting on test data only; it looks at the test labels, so it says what
    the ROC curve allows, not what a deployed threshold achieves.
    """
    y, p = _check_binary(y_true, p)
    if not 0 < y.sum() < y.size:
        return math.nan
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(1.0 - fpr[tpr >= target].min())


# ------------------------------------------------------------------------ multiclass
def _auc_or_nan(y_binary: np.ndarray, score: np.ndarray) -> float:
    return float(roc_auc_score(y_binary, score)) if 0 < y_binary.sum() < y_binary.size else math.nan


def multiclass_metrics(y_true, probs, classes: Sequence[str]) -> dict:
    """Accuracy, balanced accuracy, per-class and averaged precision/recall/F1, AUCs, log loss.

    Flat keys so the dict can be bootstrapped: ``accuracy``, ``balanced_accuracy``,
    ``{macro,weighted}_{precision,recall,f1}``, ``macro_auc_ovr``, ``log_loss``, and per
    class ``precision/<name>``, ``recall/<name>``, ``f1/<name>``, ``auc/<name>``,
    ``support/<name>`` (int). ``confusion_matrix`` is a list of lists, rows = true
    class, columns = predicted class, in ``classes`` order.

    Averages follow scikit-learn with ``zero_division=nan``: a per-class value that is
    undefined (e.g. precision of a class never predicted) is NaN and left out of the
    macro/weighted average. ``macro_auc_ovr`` is NaN unless every class is present.
    """
    y, q = _check_multiclass(y_true, probs, classes)
    labels = np.arange(q.shape[1])
    pred = q.argmax(axis=1)
    out: dict = {
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)),
    }
    for average in ("macro", "weighted"):
        scores = precision_recall_fscore_support(
            y, pred, labels=labels, average=average, zero_division=np.nan
        )[:3]
        out.update({f"{average}_{name}": float(v) for name, v in zip(_PRF, scores)})
    all_present = np.isin(labels, y).all()
    out["macro_auc_ovr"] = (
        float(roc_auc_score(y, q, multi_class="ovr", average="macro", labels=labels))
        if all_present else math.nan
    )
    out["log_loss"] = float(log_loss(y, q, labels=labels))
    *per_class, support = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=np.nan
    )
    for k, name in enumerate(classes):
        for metric, values in zip(_PRF, per_class):
            out[f"{metric}/{name}"] = float(values[k])
        out[f"auc/{name}"] = _auc_or_nan((y == k).astype(np.int64), q[:, k])
        out[f"support/{name}"] = int(support[k])
    out["confusion_matrix"] = confusion_matrix(y, pred, labels=labels).tolist()
    return out


# ----------------------------------------------------------------------- calibration
def prob_to_logit(p, eps: float = PROB_EPS) -> np.ndarray:
    """log(p / (1 - p)) after clipping p to [eps, 1 - eps], so 0 and 1 stay finite."""
    return logit(np.clip(np.asarray(p, dtype=float), eps, 1.0 - eps))


def logit_to_prob(z) -> np.ndarray:
    """Sigmoid, numerically safe for large |z|."""
    return expit(np.asarray(z, dtype=float))


def _as_logits(x, binary: bool, kind: str) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if kind == "logits":
        return x
    if kind != "probs":
        raise ValueError(f"kind must be 'probs' or 'logits', got {kind!r}")
    # Log-probabilities are valid multi-class logits: softmax(log q) == q.
    return prob_to_logit(x) if binary else np.log(np.clip(x, PROB_EPS, 1.0))


def fit_temperature(
    logits_or_probs_val,
    y_val,
    binary: bool,
    *,
    kind: str = "probs",
    bounds: tuple[float, float] = (0.05, 20.0),
) -> float:
    """Temperature T minimising validation NLL of sigmoid(z / T) or softmax(z / T).

    ``kind`` says whether the inputs are probabilities (P(tumour), or softmax rows;
    the default, since that is what the models output) or logits. The search runs on
    log T, where the NLL is unimodal (it is convex in 1/T), with bounded Brent. T > 1
    softens an over-confident model. Fit on validation data, never on test.
    """
    z = _as_logits(logits_or_probs_val, binary, kind)
    if binary:
        y = _binary_labels(y_val)
        if z.shape != y.shape:
            raise ValueError(f"need one score per label, got {z.shape} for {y.size} labels")

        def nll(log_t: float) -> float:
            s = z / math.exp(log_t)
            return -float(np.mean(y * log_expit(s) + (1 - y) * log_expit(-s)))
    else:
        if z.ndim != 2 or z.shape[0] != np.size(y_val):
            raise ValueError(f"need (n_images, n_classes) scores for {np.size(y_val)} labels, got {z.shape}")
        y = _class_indices(y_val, z.shape[1], None)
        rows = np.arange(y.size)

        def nll(log_t: float) -> float:
            return -float(np.mean(log_softmax(z / math.exp(log_t), axis=1)[rows, y]))

    # NLL straight from logits (log_expit / log_softmax): going through probabilities,
    # as sklearn's log_loss would, rounds confident outputs to exactly 0 or 1.
    res = minimize_scalar(nll, bounds=(math.log(bounds[0]), math.log(bounds[1])),
                          method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def apply_temperature(
    logits_or_probs, temperature: float, binary: bool, *, kind: str = "probs"
) -> np.ndarray:
    """Calibrated probabilities: P(tumour) if ``binary``, else softmax rows."""
    z = _as_logits(logits_or_probs, binary, kind) / temperature
    return logit_to_prob(z) if binary else softmax(z, axis=1)


def _calibration_targets(y_true, probs) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, target) per image: see :func:`expected_calibration_error`."""
    if np.ndim(probs) == 1:
        y, p = _check_binary(y_true, probs)
        return p, y.astype(float)
    y, q = _check_multiclass(y_true, probs)
    return q.max(axis=1), (q.argmax(axis=1) == y).astype(float)


def _bin_sums(conf: np.ndarray, target: np.ndarray, weights: np.ndarray, n_bins: int):
    """Per-bin (count, sum of confidence, sum of target) for each row of weights.

    Equal-width bins on [0, 1], left-closed; 1.0 falls in the last bin.
    """
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    onehot = np.zeros((conf.size, n_bins))
    onehot[np.arange(conf.size), np.digitize(conf, edges[1:-1])] = 1.0
    return weights @ onehot, weights @ (onehot * conf[:, None]), weights @ (onehot * target[:, None])


def _ece(count, sum_conf, sum_target) -> np.ndarray:
    # sum_b n_b/N |acc_b - conf_b| == sum_b |sum_target_b - sum_conf_b| / N
    return np.abs(sum_target - sum_conf).sum(axis=-1) / count.sum(axis=-1)


def reliability_curve(y_true, probs, n_bins: int = 15) -> dict:
    """Non-empty bins of a reliability diagram, as lists (ready for plotting/JSON).

    Keys ``bin_lower``, ``bin_upper``, ``confidence`` (mean confidence in the bin),
    ``accuracy`` (observed rate in the bin) and ``count``. Binary: confidence is
    P(tumour), accuracy the fraction of tumours. Multi-class: top-label confidence and
    the fraction of arg-max predictions that are right.
    """
    conf, target = _calibration_targets(y_true, probs)
    count, sum_conf, sum_target = (row[0] for row in _bin_sums(conf, target, np.ones((1, conf.size)), n_bins))
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    used = count > 0
    return {
        "bin_lower": edges[:-1][used].tolist(),
        "bin_upper": edges[1:][used].tolist(),
        "confidence": (sum_conf[used] / count[used]).tolist(),
        "accuracy": (sum_target[used] / count[used]).tolist(),
        "count": count[used].astype(int).tolist(),
    }


def expected_calibration_error(y_true, probs, n_bins: int = 15) -> float:
    """ECE = sum over equal-width bins of (bin share) x |observed - mean confidence|.

    Binary (``probs`` 1-D = P(tumour)): bins on P(tumour), observed = tumour fraction
    (the positive-class reliability diagram, as in sklearn's calibration_curve), so a
    model that is miscalibrated only for healthy-looking images still shows up.
    Multi-class (``probs`` 2-D): the usual top-label ECE of Guo et al. (2017), bins on
    the max probability, observed = accuracy of the arg-max.
    """
    conf, target = _calibration_targets(y_true, probs)
    return float(_ece(*_bin_sums(conf, target, np.ones((1, conf.size)), n_bins))[0])


# -------------------------------------------------------------------- operating point
def choose_threshold(y_val, p_val, rule: str = "youden", target: float = 0.95) -> dict:
    """Pick the decision threshold on VALIDATION data (tumour if p >= threshold).

    Rules, over the thresholds of sklearn's ``roc_curve``:

    * ``"youden"``: maximise sensitivity + specificity - 1 (ties: highest threshold);
    * ``"sensitivity"``: the highest threshold whose sensitivity is >= ``target``;
    * ``"specificity"``: the lowest threshold whose specificity is >= ``target``.

    There is deliberately no parameter for test data: the threshold is then applied
    unchanged to the test set (pass the returned dict to :func:`evaluate_binary`).
    """
    y, p = _check_binary(y_val, p_val)
    if rule != "youden" and not 0 < target <= 1:
        raise ValueError(f"target must be in (0, 1], got {target}")
    if not 0 < y.sum() < y.size:
        raise ValueError("choose_threshold needs both healthy and tumour validation images")
    fpr, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # roc_curve starts with +inf ("call nothing tumour"); a finite stand-in keeps the
    # result JSON-safe and means the same thing.
    thresholds[0] = np.nextafter(thresholds[1], np.inf)
    specificity = 1.0 - fpr
    if rule == "youden":
        k = int(np.argmax(tpr - fpr))
    elif rule == "sensitivity":
        k = int(np.argmax(tpr >= target))  # thresholds decrease, so first hit = highest
    elif rule == "specificity":
        k = int(np.flatnonzero(specificity >= target)[-1])  # last hit = lowest
    else:
        raise ValueError(f"rule must be 'youden', 'sensitivity' or 'specificity', got {rule!r}")
    return {
        "threshold": float(thresholds[k]),
        "rule": rule,
        "target": None if rule == "youden" else float(target),
        "val_sensitivity": float(tpr[k]),
        "val_specificity": float(specificity[k]),
    }


# -------------------------------------------------------------------------- bootstrap
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
def _jsonable(obj):
    """Plain Python types for json.dumps; NaN/inf become None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        return float(obj) if math.isfinite(obj) else None
    return obj


def _ci_entries(boot: BootstrapResult, names: Sequence[str]) -> dict:
    return {k: {"value": boot[k].value, "low": boot[k].low, "high": boot[k].high} for k in names}


def _bootstrap_info(boot: BootstrapResult) -> dict:
    return {
        "unit": "duplicate group",
        "method": "percentile",
        "n_resamples": boot.n_resamples,
        "seed": boot.seed,
        "alpha": boot.alpha,
        "n_skipped": {k: v for k, v in boot.n_skipped.items() if v},
    }


BINARY_HEADLINE = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "ppv", "npv", "f1",
                   "roc_auc", "pr_auc", "brier", "specificity_at_sensitivity", "ece")
MULTICLASS_HEADLINE = ("accuracy", "balanced_accuracy", "macro_precision", "macro_recall", "macro_f1",
                       "weighted_precision", "weighted_recall", "weighted_f1", "macro_auc_ovr",
                       "log_loss", "ece")


def evaluate_binary(
    y_true,
    p,
    groups,
    threshold: float | Mapping,
    n_resamples: int = 1000,
    seed: int = 0,
    *,
    alpha: float = 0.05,
    sens_target: float = 0.95,
    n_bins: int = 15,
) -> dict:
    """JSON-ready test report for a binary task, CIs from the grouped bootstrap.

    ``threshold`` is a number or the dict from :func:`choose_threshold` (chosen on
    validation), which is then recorded in the report; it is applied as is.
    ``metrics`` maps each headline metric to {"value", "low", "high"}; undefined
    values are None.
    """
    if isinstance(threshold, Mapping):
        chosen = dict(threshold)
    else:
        chosen = {"threshold": float(threshold), "rule": "fixed"}
    metric_set = BinaryMetricSet(float(chosen["threshold"]), sens_target, n_bins)
    boot = grouped_bootstrap(metric_set, y_true, p, groups, n_resamples, seed, alpha)
    y = np.asarray(y_true)
    return _jsonable({
        "task": "binary",
        "n_images": boot.n_images,
        "n_groups": boot.n_groups,
        "n_tumor": int((y == 1).sum()),
        "n_healthy": int((y == 0).sum()),
        "threshold": chosen,
        "sens_target": sens_target,
        "confusion_matrix": {k: int(boot[k].value) for k in ("tn", "fp", "fn", "tp")},
        "metrics": _ci_entries(boot, BINARY_HEADLINE),
        "reliability": reliability_curve(y_true, p, n_bins),
        "bootstrap": _bootstrap_info(boot),
    })


def evaluate_multiclass(
    y_true,
    probs,
    classes: Sequence[str],
    groups,
    n_resamples: int = 1000,
    seed: int = 0,
    *,
    alpha: float = 0.05,
    n_bins: int = 15,
) -> dict:
    """JSON-ready test report for a multi-class task, CIs from the grouped bootstrap.

    ``metrics`` holds the headline metrics and ``per_class[name]`` precision, recall,
    F1 and one-vs-rest AUC, each as {"value", "low", "high"}, plus the support.
    """
    y, q = _check_multiclass(y_true, probs, classes)
    metric_set = MulticlassMetricSet(tuple(classes), n_bins)
    boot = grouped_bootstrap(metric_set, y, q, groups, n_resamples, seed, alpha)
    full = metric_set(y, q)
    return _jsonable({
        "task": "multiclass",
        "classes": list(classes),
        "n_images": boot.n_images,
        "n_groups": boot.n_groups,
        "confusion_matrix": full["confusion_matrix"],
        "metrics": _ci_entries(boot, MULTICLASS_HEADLINE),
        "per_class": {
            name: {**_ci_entries(boot, [f"{m}/{name}" for m in (*_PRF, "auc")]),
                   "support": full[f"support/{name}"]}
            for name in classes
        },
        "reliability": reliability_curve(y, q, n_bins),
        "bootstrap": _bootstrap_info(boot),
    })


def breakdown_by(report_fn: Callable, key, y_true, scores, groups) -> dict:
    """``report_fn(y, scores, groups)`` on the images of each distinct ``key`` value.

    E.g. the pooled CT+MRI task per modality::

        breakdown_by(functools.partial(evaluate_binary, threshold=chosen), modality, y, p, groups)

    Each subgroup is bootstrapped on its own duplicate groups. Keys become strings.
    """
    key = np.asarray(key)
    y, s, g = np.asarray(y_true), np.asarray(scores), np.asarray(groups)
    if key.shape[0] != y.shape[0]:
        raise ValueError(f"{key.shape[0]} keys for {y.shape[0]} images")
    return {str(k): report_fn(y[key == k], s[key == k], g[key == k]) for k in np.unique(key)}


def format_ci(value, low, high, digits: int = 3, percent: bool = False) -> str:
    """``"0.953 [0.941, 0.965]"``; with ``percent=True`` ``"95.3% [94.1%, 96.5%]"``
    (``digits`` then counts decimals of the percentage). None/NaN print as ``n/a``,
    so a report entry can be passed as ``format_ci(**report["metrics"]["f1"])``.
    """
    scale, unit = (100.0, "%") if percent else (1.0, "")

    def one(x) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x * scale:.{digits}f}{unit}"

    return f"{one(value)} [{one(low)}, {one(high)}]"
