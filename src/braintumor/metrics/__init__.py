"""Metrics, duplicate-group bootstrap confidence intervals, calibration and thresholds.

* :mod:`~braintumor.metrics.classification`: point metrics (scikit-learn) and threshold choice;
* :mod:`~braintumor.metrics.calibration`: temperature scaling, reliability, ECE;
* :mod:`~braintumor.metrics.bootstrap`: confidence intervals from resampling whole
  duplicate groups (copies of one scan are not independent evidence), vectorised;
* :mod:`~braintumor.metrics.intervals`: Wilson / Clopper–Pearson intervals for proportions;
* :mod:`~braintumor.metrics.edges`: edge-holding intervals for report entries whose
  bootstrap interval is degenerate (e.g. sensitivity 1.000 [1.000, 1.000]);
* :mod:`~braintumor.metrics.compare`: paired comparison of two models on the same images
  (paired group bootstrap, fast DeLong);
* :mod:`~braintumor.metrics.report`: evaluation reports and their formatting.

Everything public is importable from :mod:`braintumor.metrics` itself.
"""
from __future__ import annotations

from .bootstrap import (CI, BinaryMetricSet, BootstrapResult, MulticlassMetricSet,
                        grouped_bootstrap)
from .calibration import (PROB_EPS, apply_temperature, expected_calibration_error, fit_temperature,
                          logit_to_prob, prob_to_logit, reliability_curve)
from .classification import binary_metrics, choose_threshold, multiclass_metrics, specificity_at_sensitivity
from .compare import delong, delong_interval, fast_delong, paired_bootstrap, paired_comparison
from .edges import auc_edge_bound, hold_edges, is_degenerate, mover_mean
from .intervals import binary_proportions, clopper_pearson_interval, proportion_entry, wilson_interval
from .report import (BINARY_HEADLINE, MULTICLASS_HEADLINE, breakdown_by, evaluate_binary,
                     evaluate_multiclass, format_ci, jsonable)

__all__ = [
    "CI", "BinaryMetricSet", "BootstrapResult", "MulticlassMetricSet", "grouped_bootstrap",
    "PROB_EPS", "apply_temperature", "expected_calibration_error", "fit_temperature", "logit_to_prob",
    "prob_to_logit", "reliability_curve",
    "binary_metrics", "choose_threshold", "multiclass_metrics", "specificity_at_sensitivity",
    "BINARY_HEADLINE", "MULTICLASS_HEADLINE", "breakdown_by", "evaluate_binary", "evaluate_multiclass",
    "format_ci", "jsonable",
    "delong", "delong_interval", "fast_delong", "paired_bootstrap", "paired_comparison",
    "binary_proportions", "clopper_pearson_interval", "proportion_entry", "wilson_interval",
    "auc_edge_bound", "hold_edges", "is_degenerate", "mover_mean",
]
