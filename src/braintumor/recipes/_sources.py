"""Each training row's source, for the recipes that choose rows by source (``balanced``,
``within``). Not a recipe itself (the leading underscore keeps it off the list).

The labels are the source audit's (:func:`braintumor.audit.sources.row_sources`): a named
collection from ``mri_sources.csv`` beside the dataset (SARTAJ, figshare, Br35H tumour-free),
else an acquisition cluster of the image's modality (``mri-c1``, ``ct-c0``); without the file,
clusters only (with a warning). Clusters are fitted on all of the modality's rows with the
fixed :data:`CLUSTER_SEED`, not the run's seed, so every seed of a study trains on the same
groups, the ones ``reports/audit/sources.json`` reports (fitted with that seed).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

CLUSTER_SEED = 1337  # the committed source audit's seed (reports/audit/sources.json settings)
SEP = "|"  # between source and class in a group name


def split_sources(split, config) -> pd.Series:
    """The source of each row of ``split`` (index as ``split.rows``). In the pooled task a
    source holds one modality: named collections get the modality as a prefix
    (``mri-sartaj``), as clusters already have it (``ct-c0``)."""
    from ..audit.sources import row_sources

    source = row_sources(split.rows, config, split.root, seed=CLUSTER_SEED)
    if split.task.name == "pooled":
        modality = split.rows["modality"].str.lower()
        named = ~pd.Series([s.startswith(f"{m}-") for s, m in zip(source, modality)], index=source.index)
        source = source.where(~named, modality + "-" + source)
    return source


def split_groups(split, config) -> pd.Series:
    """``source|class`` of each row of ``split`` (class by name, e.g. ``sartaj|tumor``)."""
    classes = np.asarray(split.task.classes)
    return split_sources(split, config) + SEP + pd.Series(classes[split.y], index=split.rows.index)
