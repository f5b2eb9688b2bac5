"""What evaluate-external reports, from labels, scores and groups: nothing here is fitted.

* :func:`within_group_auc`: the AUC inside each group (patient) that holds both classes —
  on a same-scan set, the only comparison no scanner or source difference can explain;
* :func:`stratum_bins` / :func:`by_stratum`: the images of each stratum (e.g. tumour size bin),
  with sensitivity (specificity for healthy-only bins) and the AUC against the other class;
* the headline metrics are :func:`braintumor.metrics.evaluate_binary` with the model card's
  threshold, bootstrapped over groups.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from .. import metrics
from ..errors import BrainTumorError

MAX_CATEGORIES = 12  # a numeric stratum with at most this many values is kept as categories


def within_group_auc(y, p, groups, n_resamples: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """Per-group ROC-AUC where a group holds both classes: median, mean with a
    bootstrap-over-groups percentile interval, and each group's value."""
    df = pd.DataFrame({"y": np.asarray(y), "p": np.asarray(p, float), "g": np.asarray(groups)})
    per_group = {}
    for g, part in df.groupby("g", sort=True):
        if 0 < part["y"].sum() < len(part):
            per_group[str(g)] = {"auc": float(roc_auc_score(part["y"], part["p"])),
                                 "n_tumor": int(part["y"].sum()), "n_healthy": int((part["y"] == 0).sum())}
    aucs = np.array([v["auc"] for v in per_group.values()])
    out = {"n_groups": int(aucs.size), "n_groups_total": int(df["g"].nunique()),
           "median": None, "mean": None, "share_above_half": None, "per_group": per_group}
    if aucs.size:
        rng = np.random.default_rng(seed)
        means = aucs[rng.integers(0, aucs.size, size=(n_resamples, aucs.size))].mean(axis=1)
        low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
        out.update(median=float(np.median(aucs)),
                   mean={"value": float(aucs.mean()), "low": float(low), "high": float(high)},
                   share_above_half=float((aucs > 0.5).mean()))
    return out


def parse_strata(specs: Sequence[str]) -> dict[str, list[float] | None]:
    """``["mask_pixels:1000,4000", "subtype"]`` → ``{"mask_pixels": [1000.0, 4000.0], "subtype": None}``."""
    out: dict[str, list[float] | None] = {}
    for spec in specs or ():
        name, _, edges = str(spec).partition(":")
        try:
            out[name.strip()] = sorted(float(e) for e in edges.split(",") if e.strip()) if edges else None
        except ValueError:
            raise BrainTumorError(f"--strata {spec!r}: bin edges must be numbers, e.g. mask_pixels:1000,4000"
                                  ) from None
    return out


def _fmt(x: float) -> str:
    return f"{x:g}" if abs(x) < 1e5 else f"{x:.3g}"


def stratum_bins(values: pd.Series, edges: Sequence[float] | None) -> pd.Series:
    """Each image's bin label: given edges → ``<a``, ``a–b``, ``≥b``; a numeric column with
    many values and no edges → tertile edges; anything else → its values as categories."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_numeric = numeric.notna().all()
    if not is_numeric or (edges is None and numeric.nunique() <= MAX_CATEGORIES):
        return values.astype(str)
    if edges is None:
        edges = sorted(set(np.quantile(numeric, [1 / 3, 2 / 3]).round(3).tolist()))
    edges = list(edges)
    labels = [f"<{_fmt(edges[0])}"] + [f"{_fmt(a)}–{_fmt(b)}" for a, b in zip(edges, edges[1:])]
    labels += [f"≥{_fmt(edges[-1])}"]
    idx = np.searchsorted(np.asarray(edges, float), numeric.to_numpy(float), side="right")
    return pd.Series([labels[i] for i in idx], index=values.index)


def _order(labels: pd.Series) -> list[str]:
    """Bins in a readable order: numeric categories by value, the rest by first appearance of
    the edge-labelled bins, else alphabetically."""
    uniq = list(dict.fromkeys(labels))
    try:
        return sorted(uniq, key=float)
    except ValueError:
        pass
    if any(u.startswith("<") for u in uniq):
        return sorted(uniq, key=lambda u: (0, u) if u.startswith("<") else (2, u) if u.startswith("≥")
                      else (1, float(u.split("–")[0])))
    return sorted(uniq)


def _bin_entry(y, p, groups, in_bin, threshold, n_resamples, seed) -> dict:
    """Sensitivity (or specificity, for a healthy-only bin) and the AUC against the other class."""
    pos, neg = in_bin & (y == 1), in_bin & (y == 0)
    entry = {"n": int(in_bin.sum()), "n_tumor": int(pos.sum()), "n_healthy": int(neg.sum())}
    ev = dict(threshold=threshold, n_resamples=n_resamples, seed=seed)
    if pos.any():
        own = metrics.evaluate_binary(y[pos], p[pos], groups[pos], **ev)["metrics"]
        entry["sensitivity"] = own["sensitivity"]
        vs = pos | (y == 0)  # this bin's tumours against every healthy image
        entry["auc_vs_all_healthy"] = metrics.evaluate_binary(y[vs], p[vs], groups[vs], **ev)["metrics"]["roc_auc"]
    if neg.any():
        own = metrics.evaluate_binary(y[neg], p[neg], groups[neg], **ev)["metrics"]
        entry["specificity"] = own["specificity"]
        vs = neg | (y == 1)  # every tumour against this bin's healthy images
        entry["auc_vs_all_tumor"] = metrics.evaluate_binary(y[vs], p[vs], groups[vs], **ev)["metrics"]["roc_auc"]
    return entry


def by_stratum(rows: pd.DataFrame, strata: Mapping[str, list[float] | None], p, threshold: float,
               n_resamples: int = 1000, seed: int = 0) -> dict:
    """``{column: {"edges", "bins": {bin: entry}}}`` for every stratum column (binary models)."""
    y, p, groups = rows["y"].to_numpy(), np.asarray(p, float), rows["group"].to_numpy()
    out = {}
    for col, edges in strata.items():
        labels = stratum_bins(rows[col], edges)
        bins = {b: _bin_entry(y, p, groups, (labels == b).to_numpy(), threshold, n_resamples, seed)
                for b in _order(labels)}
        out[col] = {"edges": edges, "bins": bins}
    return out


def stratum_labels(rows: pd.DataFrame, strata: Mapping[str, list[float] | None]) -> pd.DataFrame:
    """The bin of each image for each stratum column (for predictions.csv)."""
    return pd.DataFrame({f"{c}_bin": stratum_bins(rows[c], e) for c, e in strata.items()}, index=rows.index)


def safe_auc(y, p) -> float:
    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if 0 < y.sum() < y.size else math.nan
