"""The ``balanced`` recipe: source-balanced sampling of the training rows (group balancing).

Healthy and tumour images come from different collections, so a model can tell the classes
apart by the source. Group balancing (the upsampling baseline of Sagawa et al. 2020, group
DRO; "simple data balancing" of Idrissi et al. 2022) makes every group ``(source, class)``
equally frequent in training, so a group that is all healthy (``br35h_no``) or nearly all
tumour (``mri-c0``) weighs no more than the healthy and tumour images of a mixed source:
the source alone no longer predicts the label as well as it does in the raw mix.

Sources are the source audit's (:mod:`braintumor.recipes._sources`). For the training split,
with ``n`` rows in ``G`` groups that exist, every group gets ``m = round(n / G)`` rows, so the
total stays about ``n`` (an epoch costs what it did) and each group's count is exactly equal.
A group's rows are drawn with repetition but stratified: each row ``m // n_g`` times, plus
``m mod n_g`` of its rows drawn without replacement (seeded by ``config.seed``). That has the
expectation of ``m`` draws with replacement with less variance: an upsampled group keeps
every image, a downsampled one keeps ``m`` distinct images. Groups smaller than
:data:`MIN_GROUP` rows are kept once each and left out of ``G`` (a handful of images repeated
hundreds of times teaches those images, not the group); none is that small in the Kaggle data,
where the smallest (figshare tumours, about 15 training rows) is repeated about 25 times.

Validation is unchanged (``select`` returns ``None``): early stopping and phase selection see
the real Kaggle validation distribution, as every other arm's do, so arms stay comparable and
the test report (Kaggle and external) says what balancing buys.

Works for any task and class set (groups are ``(source, class)`` with the task's classes).
"""
from __future__ import annotations

import warnings

import numpy as np

DESCRIPTION = "training rows resampled so every (source, class) group is equally frequent"
BINARY_ONLY = False
DEPENDS = ("recipes/_sources.py", "audit/sources.py", "audit/representations.py", "audit/probes.py")
MIN_GROUP = 5  # groups with fewer training rows are kept once each, not resampled


def select(split, config) -> np.ndarray | None:
    """Positions into ``split.rows`` (repeats allowed, sorted) for train; ``None`` for val."""
    if split.name != "train":
        return None
    from ._sources import split_groups

    return balanced_positions(split_groups(split, config).to_numpy(), config.seed)


def balanced_positions(groups: np.ndarray, seed: int, min_group: int = MIN_GROUP) -> np.ndarray:
    """Positions that give every group of ``groups`` (one label per row) the same count."""
    groups = np.asarray(groups)
    names, counts = np.unique(groups, return_counts=True)  # sorted: deterministic order
    small = names[counts < min_group]
    if len(small):
        warnings.warn(f"balanced: groups with fewer than {min_group} rows kept once each: "
                      f"{', '.join(map(str, small))}", stacklevel=2)
    kept = [np.flatnonzero(groups == g) for g in small]
    large = names[counts >= min_group]
    if not len(large):
        return np.arange(len(groups))
    m = max(1, round((len(groups) - sum(map(len, kept))) / len(large)))
    rng = np.random.default_rng(seed)
    for g in large:
        rows = np.flatnonzero(groups == g)
        whole, rest = divmod(m, len(rows))
        kept.append(np.concatenate([np.tile(rows, whole), rng.choice(rows, rest, replace=False)]))
    return np.sort(np.concatenate(kept))
