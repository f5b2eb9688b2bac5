"""Group-aware, stratified train / validation / test splits and the split manifest.

Whole duplicate groups are assigned to one split, stratified by modality × label ×
sub-type. Groups whose images carry both labels (the same picture filed as healthy and
as tumour) are excluded and listed: no label is right for them.

The manifest (``data/splits/<name>.csv``) is committed, so every model in the project is
evaluated on the same test images; it holds paths and hashes, never pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import DatasetError
from ..files import sha256_file

SPLITS = ("train", "val", "test")
MANIFEST_COLUMNS = ["path", "sha256", "modality", "label", "subtype", "group", "split"]
STRATUM_COLUMNS = ["modality", "label", "subtype"]


def label_conflict_groups(df: pd.DataFrame) -> list[str]:
    """Groups whose members carry more than one label, sorted."""
    n_labels = df.groupby("group")["label"].nunique()
    return sorted(n_labels[n_labels > 1].index)


def _integer_targets(n: int, fractions: tuple[float, ...]) -> np.ndarray:
    """Split ``n`` into integers proportional to ``fractions`` (largest remainder)."""
    raw = np.asarray(fractions, dtype=float) / sum(fractions) * n
    base = np.floor(raw).astype(int)
    order = np.argsort(-(raw - base), kind="stable")
    base[order[: n - base.sum()]] += 1
    return base


def check_fractions(fractions) -> None:
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"split fractions must be three non-negative numbers, got {tuple(fractions)}")


def group_aware_split(df: pd.DataFrame, fractions=(0.70, 0.15, 0.15), seed: int = 1337,
                      stratify=STRATUM_COLUMNS) -> pd.DataFrame:
    """Assign every readable, non-conflicting image to train/val/test.

    Each duplicate group is placed whole. Groups are shuffled with ``seed`` and placed
    largest first into the split whose per-stratum targets the group's images are
    relatively furthest below (a group may mix strata, e.g. a typed and an untyped copy of one MRI
    tumour), so every stratum lands within about one image of the fractions.
    Returns the manifest: the input's rows minus unreadable and label-conflict images,
    with a ``split`` column, sorted by path.
    """
    check_fractions(fractions)
    usable = df[(df["status"] == "ok") & ~df["group"].isin(label_conflict_groups(df))]
    usable = usable.sort_values("path").reset_index(drop=True)
    stratum = usable[list(stratify)].astype(str).agg("|".join, axis=1)
    # counts[g, s]: images of group g in stratum s
    counts = pd.crosstab(usable["group"], stratum)
    targets = np.stack([_integer_targets(int(n), fractions) for n in counts.sum(axis=0)])
    filled = np.zeros_like(targets)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(counts))
    sizes = counts.to_numpy().sum(axis=1)
    order = order[np.argsort(-sizes[order], kind="stable")]  # large groups first, else random
    matrix = counts.to_numpy()
    assignment = np.empty(len(counts), dtype=object)
    # Deficits are relative to each split's target: with absolute deficits every large
    # group would land in train (the largest target), leaving val/test with only images
    # that have no copies, a different mix of source collections than train.
    scale = np.where(targets > 0, targets, 1).astype(float)
    for gi in order:
        c = matrix[gi]
        k = int(np.argmax(c @ ((targets - filled) / scale)))  # ties go to the earlier split
        assignment[gi] = SPLITS[k]
        filled[:, k] += c
    split_of = pd.Series(assignment, index=counts.index)
    out = usable.assign(split=usable["group"].map(split_of))
    return out[[c for c in MANIFEST_COLUMNS if c in out.columns]]


def split_summary(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per stratum and split, with each split's share of the stratum."""
    counts = (manifest.groupby(STRATUM_COLUMNS + ["split"]).size()
              .unstack("split", fill_value=0).reindex(columns=list(SPLITS), fill_value=0))
    counts["total"] = counts.sum(axis=1)
    for s in SPLITS:
        counts[f"{s} %"] = (100 * counts[s] / counts["total"]).round(1)
    return counts.reset_index()


def check_no_group_leak(manifest: pd.DataFrame) -> None:
    """Raise if any duplicate group appears in more than one split."""
    spread = manifest.groupby("group")["split"].nunique()
    leaking = spread[spread > 1]
    if len(leaking):
        raise AssertionError(f"{len(leaking)} duplicate groups cross splits, e.g. {list(leaking.index[:5])}")


def write_manifest(manifest: pd.DataFrame, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    manifest[MANIFEST_COLUMNS].sort_values("path").to_csv(path, index=False, lineterminator="\n")
    return path


def read_manifest(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"split manifest not found: {path}; create it with `braintumor split`")
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = set(MANIFEST_COLUMNS) - set(df.columns)
    if missing:
        raise DatasetError(f"{path}: not a split manifest (missing columns {sorted(missing)})")
    df.attrs["manifest_sha256"] = sha256_file(path)
    return df
