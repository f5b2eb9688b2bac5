"""Duplicate groups: images that are the same picture, byte-for-byte or perceptually.

Two images are in one group when they share a SHA-256, or their perceptual hashes
(pHash, 64 bits) differ in at most ``phash_threshold`` bits; groups are the connected
components of that relation. Splits keep every group whole, so a test image never has
a copy in training.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .dataset import SUBTYPES


def phash_bits(phashes) -> np.ndarray:
    """64-bit pHash hex strings as ``uint64`` (empty strings → 0; callers mask them)."""
    return np.array([int(h, 16) if h else 0 for h in phashes], dtype=np.uint64)


def _edges_equal(keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Edges joining each row to the first row with the same non-empty key."""
    keys = keys.reset_index(drop=True)
    valid = keys != ""
    first = keys[valid].groupby(keys[valid]).transform(lambda s: s.index[0])
    idx = first.index.to_numpy()
    return idx, first.to_numpy(dtype=np.int64)


def _edges_hamming(bits: np.ndarray, valid: np.ndarray, threshold: int,
                   block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (i < j) of valid hashes within ``threshold`` bits, blockwise."""
    pos = np.flatnonzero(valid)
    b = bits[pos]
    src, dst = [], []
    for start in range(0, len(b), block):
        chunk = b[start:start + block]
        dist = np.bitwise_count(chunk[:, None] ^ b[None, :])
        i, j = np.nonzero(dist <= threshold)
        i = i + start
        keep = i < j
        src.append(pos[i[keep]])
        dst.append(pos[j[keep]])
    if not src:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(src), np.concatenate(dst)


def assign_groups(df: pd.DataFrame, phash_threshold: int = 0) -> pd.Series:
    """A group id per row (``g`` + the first 12 hex digits of the group's smallest SHA-256).

    The id depends only on the group's content, not on row order or file names, so it
    is stable across machines and re-indexing.
    """
    n = len(df)
    sha = df["sha256"].fillna("").astype(str).reset_index(drop=True)
    ph = df["phash"].fillna("").astype(str).reset_index(drop=True)
    edges = [_edges_equal(sha)]
    if phash_threshold <= 0:
        edges.append(_edges_equal(ph))
    else:
        edges.append(_edges_hamming(phash_bits(ph), (ph != "").to_numpy(), phash_threshold))
    src = np.concatenate([e[0] for e in edges])
    dst = np.concatenate([e[1] for e in edges])
    graph = coo_matrix((np.ones(len(src), np.int8), (src, dst)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    # Rows without any hash (unreadable, no bytes) are named by a hash of their path.
    path_hash = df["path"].reset_index(drop=True).astype(str).map(
        lambda p: hashlib.sha256(p.encode()).hexdigest())
    name = sha.where(sha != "", path_hash)
    ids = "g" + name.groupby(component).transform("min").str[:12]
    ids.index = df.index
    return ids


def duplicate_report(df: pd.DataFrame, group_col: str = "group") -> dict:
    """The figures a reader needs to judge leakage risk, as plain Python values."""
    sizes = df.groupby(group_col)["path"].transform("size")
    in_dups = df[sizes > 1]
    per_group = df.groupby(group_col).agg(
        n=("path", "size"),
        labels=("label", lambda s: tuple(sorted(set(s)))),
        modalities=("modality", lambda s: tuple(sorted(set(s)))),
        subtypes=("subtype", lambda s: tuple(sorted(set(s)))),
    )
    conflicts = per_group[per_group["labels"].map(len) > 1]
    cross_modal = per_group[per_group["modalities"].map(len) > 1]
    tumour_subtypes = per_group["subtypes"].map(
        lambda t: len(set(t) & set(SUBTYPES)) > 1)

    def members(groups) -> list[dict]:
        rows = df[df[group_col].isin(groups)].sort_values([group_col, "path"])
        return [{"group": g, "paths": list(r["path"]), "labels": sorted(set(r["label"])),
                 "modalities": sorted(set(r["modality"]))}
                for g, r in rows.groupby(group_col, sort=True)]

    by_class = (df.assign(dup=sizes > 1)
                .groupby(["modality", "label"])["dup"].agg(["size", "sum"])
                .rename(columns={"size": "images", "sum": "in_duplicate_groups"}))
    return {
        "n_images": int(len(df)),
        "n_groups": int(df[group_col].nunique()),
        "n_groups_size_gt1": int((per_group["n"] > 1).sum()),
        "images_in_groups_size_gt1": int(len(in_dups)),
        "largest_group": int(per_group["n"].max()) if len(per_group) else 0,
        "by_class": {f"{m} {lab}": {k: int(v) for k, v in row.items()}
                     for (m, lab), row in by_class.iterrows()},
        "label_conflict_groups": members(conflicts.index),
        "cross_modality_groups": members(cross_modal.index),
        "subtype_conflict_groups": int(tumour_subtypes.sum()),
    }


def threshold_comparison(df: pd.DataFrame, thresholds=(0, 2, 4)) -> pd.DataFrame:
    """How the grouping changes with a looser pHash threshold (one row per threshold)."""
    rows = []
    for t in thresholds:
        groups = assign_groups(df, phash_threshold=t)
        rep = duplicate_report(df.assign(group=groups))
        rows.append({
            "phash_threshold": t,
            "groups": rep["n_groups"],
            "images_in_dup_groups": rep["images_in_groups_size_gt1"],
            "largest_group": rep["largest_group"],
            "label_conflict_groups": len(rep["label_conflict_groups"]),
            "cross_modality_groups": len(rep["cross_modality_groups"]),
            **{f"dup {k}": v["in_duplicate_groups"] for k, v in rep["by_class"].items()},
        })
    return pd.DataFrame(rows)
