"""External test sets: evaluation only (issue 14).

* :mod:`~braintumor.external.inputs`: a folder of class sub-folders or a CSV → rows;
* :mod:`~braintumor.external.overlap`: near-duplicates of the model's training images;
* :mod:`~braintumor.external.modality`: CT-vs-MRI check (stand-in for the predictor's own);
* :mod:`~braintumor.external.analysis`: within-group AUC and strata;
* :mod:`~braintumor.external.run`: :func:`evaluate_external`, writing
  ``reports/external/<name>/<run>/``.
"""
from __future__ import annotations

from .inputs import ExternalSet, load_external, parse_label_map
from .run import Options, evaluate_external, report_dir

__all__ = ["ExternalSet", "Options", "evaluate_external", "load_external", "parse_label_map", "report_dir"]
