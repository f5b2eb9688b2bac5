"""Point metrics: binary and multi-class scores from scikit-learn, and threshold choice.

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
from typing import Sequence

import numpy as np
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
