"""Calibration: temperature scaling, reliability curves and expected calibration error.

:func:`apply_temperature` is the one place logits or probabilities become calibrated
probabilities (evaluation and :mod:`braintumor.inference` both use it).
"""
from __future__ import annotations

import math

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit, log_softmax, logit, softmax

from .classification import _binary_labels, _check_binary, _check_multiclass, _class_indices

# Probabilities are clipped to [PROB_EPS, 1 - PROB_EPS] before taking logits. Models
# emit float32, whose spacing just below 1.0 is 6e-8, so a saturated output of 1.0
# only tells us p > 1 - 1e-7; clipping there keeps logits finite (|z| <= 16.1)
# without inventing confidence the model never expressed.
PROB_EPS = 1e-7


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
