"""The ``within`` recipe: train only on sources that hold both classes.

Where a source (:mod:`braintumor.recipes._sources`: a named collection or an acquisition
cluster) holds only healthy or only tumour images, its style alone gives the label, so its
images teach the shortcut. This recipe drops them from training: it keeps the training rows
of sources with at least :data:`MIN_PER_CLASS` training rows of every class of the task
(each row once), so within every source the model trains on, the source says nothing about
the label. In the Kaggle MRI data that drops Br35H (healthy only) and figshare (tumour only)
and keeps SARTAJ and the two unmatched clusters; every CT cluster holds both classes.

The class ratio changes (training's class weights rebalance it). What the source still says
through a lopsided class mix inside a kept source (``mri-c0``: mostly tumour) is left; the
``balanced`` recipe addresses that.

Validation is unchanged (``select`` returns ``None``): phase selection sees the real Kaggle
validation distribution, including the sources left out of training, as every arm does.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

DESCRIPTION = "training rows only from sources that hold both classes (at least 20 of each)"
BINARY_ONLY = True
DEPENDS = ("recipes/_sources.py", "audit/sources.py", "audit/representations.py", "audit/probes.py")
MIN_PER_CLASS = 20  # training rows of each class a source needs to be kept


def select(split, config) -> np.ndarray | None:
    """Positions into ``split.rows`` of the kept sources' rows for train; ``None`` for val."""
    if split.name != "train":
        return None
    from ._sources import split_sources

    return mixed_source_positions(split_sources(split, config).to_numpy(), split.y,
                                  len(split.task.classes))


def mixed_source_positions(source: np.ndarray, y: np.ndarray, n_classes: int,
                           min_per_class: int | None = None) -> np.ndarray:
    """Positions of the rows whose source has at least ``min_per_class`` rows of every class."""
    min_per_class = MIN_PER_CLASS if min_per_class is None else min_per_class
    counts = pd.crosstab(pd.Series(source, name="source"), pd.Series(y, name="y"))
    counts = counts.reindex(columns=range(n_classes), fill_value=0)
    kept = counts.index[(counts >= min_per_class).all(axis=1)]
    if not len(kept):
        raise ValueError(f"within: no source has {min_per_class} training rows of every class "
                         f"(rows per source and class: {counts.to_dict('index')})")
    return np.flatnonzero(np.isin(source, kept.to_numpy()))
