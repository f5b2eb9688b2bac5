"""Matched, multi-seed, resumable studies (issue 13), and paired comparisons of runs.

Not to be confused with :mod:`braintumor.study` (singular), which turns a config into a
task's rows and images (``load_split``). This package runs *many* trainings:

* :mod:`~braintumor.studies.spec`: the study file (arms × seeds on one schedule) and the
  key that decides whether a finished run is still current;
* :mod:`~braintumor.studies.runner`: ``braintumor study run`` / ``status`` (resumable,
  within a time budget);
* :mod:`~braintumor.studies.report`: ``braintumor study report`` (mean ± sd over seeds,
  pooled interval, README block);
* :mod:`~braintumor.studies.compare`: ``braintumor compare`` and ``braintumor study compare``
  (paired differences on the same test rows);
* :mod:`~braintumor.studies.paired_edges`: intervals for paired differences that every
  bootstrap resample agrees on (no discordant pairs);
* :mod:`~braintumor.studies.cli`: their command-line parsers.
"""
from __future__ import annotations

from .spec import Arm, Study, code_fingerprint, load_study, run_key, schedule_of

__all__ = ["Arm", "Study", "code_fingerprint", "load_study", "run_key", "schedule_of"]
