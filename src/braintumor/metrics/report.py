"""Evaluation reports: headline metrics with group-bootstrap CIs, as JSON-ready dicts,
and their formatting."""
from __future__ import annotations

import math
import numbers
from typing import Callable, Mapping, Sequence

import numpy as np

from .bootstrap import BinaryMetricSet, BootstrapResult, MulticlassMetricSet, grouped_bootstrap
from .calibration import reliability_curve
from .classification import _PRF, _check_multiclass
from .edges import binary_edges, hold_edges, multiclass_edges
from .intervals import binary_proportions, proportion_entry

# Proportions also get a Wilson score interval (images as the unit): unlike the percentile
# bootstrap it never collapses to [1, 1] when the count is at the edge. Headline entries
# whose bootstrap interval is degenerate take an edge-holding one (metrics.edges).
PROPORTION_INTERVAL = "wilson"


def jsonable(obj):
    """Plain Python types for json.dumps; NaN/inf become None (strict JSON has no NaN)."""
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in obj]
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
    ``metrics`` maps each headline metric to {"value", "low", "high", "interval"};
    undefined values are None. ``interval`` says how the interval was made: "bootstrap",
    or, where the bootstrap interval has zero width (e.g. sensitivity 1.000), an interval
    that holds at the edges ("wilson", "wilson-mover", "auc-wilson-bound") or
    "bootstrap-degenerate" when there is none (see :mod:`braintumor.metrics.edges`).
    """
    if isinstance(threshold, Mapping):
        chosen = dict(threshold)
    else:
        chosen = {"threshold": float(threshold), "rule": "fixed"}
    metric_set = BinaryMetricSet(float(chosen["threshold"]), sens_target, n_bins)
    boot = grouped_bootstrap(metric_set, y_true, p, groups, n_resamples, seed, alpha)
    y = np.asarray(y_true)
    cm = {k: int(boot[k].value) for k in ("tn", "fp", "fn", "tp")}
    edges = binary_edges(cm, boot["roc_auc"].value, alpha)
    return jsonable({
        "task": "binary",
        "n_images": boot.n_images,
        "n_groups": boot.n_groups,
        "n_tumor": int((y == 1).sum()),
        "n_healthy": int((y == 0).sum()),
        "threshold": chosen,
        "sens_target": sens_target,
        "confusion_matrix": cm,
        "metrics": hold_edges(_ci_entries(boot, BINARY_HEADLINE), edges),
        "proportion_intervals": {
            "method": f"{PROPORTION_INTERVAL} score interval, images as the unit",
            **binary_proportions(*cm.values(), method=PROPORTION_INTERVAL, alpha=alpha)},
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
    F1 and one-vs-rest AUC, each as {"value", "low", "high", "interval"}, plus the
    support; degenerate intervals are handled as in :func:`evaluate_binary`.
    """
    y, q = _check_multiclass(y_true, probs, classes)
    metric_set = MulticlassMetricSet(tuple(classes), n_bins)
    boot = grouped_bootstrap(metric_set, y, q, groups, n_resamples, seed, alpha)
    full = metric_set(y, q)
    aucs = {name: boot[f"auc/{name}"].value for name in classes}
    edges = multiclass_edges(full["confusion_matrix"], aucs, classes, alpha)
    return jsonable({
        "task": "multiclass",
        "classes": list(classes),
        "n_images": boot.n_images,
        "n_groups": boot.n_groups,
        "confusion_matrix": full["confusion_matrix"],
        "metrics": hold_edges(_ci_entries(boot, MULTICLASS_HEADLINE), edges),
        "proportion_intervals": _multiclass_proportions(full["confusion_matrix"], classes, alpha),
        "per_class": {
            name: {**_per_class(boot, name, edges),
                   "support": full[f"support/{name}"]}
            for name in classes
        },
        "reliability": reliability_curve(y, q, n_bins),
        "bootstrap": _bootstrap_info(boot),
    })


def _per_class(boot: BootstrapResult, name: str, edges: dict) -> dict:
    """``{"precision/<name>": entry, ...}`` with edge-holding intervals where degenerate."""
    return hold_edges(_ci_entries(boot, [f"{m}/{name}" for m in (*_PRF, "auc")]), edges)


def _multiclass_proportions(cm, classes: Sequence[str], alpha: float) -> dict:
    """Wilson intervals for accuracy and each class's recall from a confusion matrix."""
    cm = np.asarray(cm)
    out = {"method": f"{PROPORTION_INTERVAL} score interval, images as the unit",
           "accuracy": proportion_entry(int(np.trace(cm)), int(cm.sum()), PROPORTION_INTERVAL, alpha)}
    for k, name in enumerate(classes):
        out[f"recall/{name}"] = proportion_entry(int(cm[k, k]), int(cm[k].sum()), PROPORTION_INTERVAL, alpha)
    return out


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


def format_ci(value, low, high, digits: int = 3, percent: bool = False, **_entry_keys) -> str:
    """``"0.953 [0.941, 0.965]"``; with ``percent=True`` ``"95.3% [94.1%, 96.5%]"``
    (``digits`` then counts decimals of the percentage). None/NaN print as ``n/a``,
    so a report entry can be passed as ``format_ci(**report["metrics"]["f1"])`` (its other
    keys, e.g. ``interval``, are ignored).
    """
    scale, unit = (100.0, "%") if percent else (1.0, "")

    def one(x) -> str:
        return "n/a" if x is None or not math.isfinite(x) else f"{x * scale:.{digits}f}{unit}"

    return f"{one(value)} [{one(low)}, {one(high)}]"
