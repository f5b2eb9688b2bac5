"""Tables over slices and per-slice predictions (pure pandas)."""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .base import Slice


def slice_table(slices: Iterable[Slice]) -> pd.DataFrame:
    """One row per slice (no pixels): source, series, index, label and the main metadata,
    the columns per-slice prediction rows are joined on."""
    rows = []
    for s in slices:
        m = s.meta
        window = m.get("window") or {}
        rows.append({
            "source": s.source, "series": s.series, "index": s.index, "label": s.label,
            "format": m.get("format"), "modality": m.get("modality"),
            "window": window.get("kind"), "height": s.rgb.shape[0], "width": s.rgb.shape[1],
            "slice_location": m.get("slice_location"),
            "warnings": "; ".join(m.get("warnings") or []),
        })
    return pd.DataFrame(rows, columns=["source", "series", "index", "label", "format", "modality",
                                       "window", "height", "width", "slice_location", "warnings"])


def series_summary(slices: Iterable[Slice]) -> pd.DataFrame:
    """One row per series/volume: how many slices, modality, how they were ordered, the
    slice spacing along the normal (DICOM, median of gaps) and the warnings."""
    groups: dict[str, list[Slice]] = {}
    for s in slices:
        groups.setdefault(s.series, []).append(s)
    rows = []
    for key, group in groups.items():
        m = group[0].meta
        locs = np.array([g.meta.get("slice_location") for g in group
                         if g.meta.get("slice_location") is not None], dtype=float)
        gaps = np.diff(np.sort(locs)) if locs.size > 1 else np.array([])
        warnings = list(dict.fromkeys(w for g in group for w in (g.meta.get("warnings") or [])))
        rows.append({
            "series": key, "format": m.get("format"), "modality": m.get("modality"),
            "n_slices": len(group), "first_index": min(g.index for g in group),
            "last_index": max(g.index for g in group),
            "n_files": len({g.source for g in group}),
            "height": group[0].rgb.shape[0], "width": group[0].rgb.shape[1],
            "series_uid": m.get("series_uid"), "description": m.get("series_description"),
            "sorted_by": m.get("sorted_by") or ("volume axis" if m.get("format") == "nifti" else None),
            "slice_spacing": float(np.median(gaps)) if gaps.size else None,
            "orientation_original": m.get("orientation_original"),
            "window": (m.get("window") or {}).get("kind"),
            "warnings": "; ".join(warnings),
        })
    return pd.DataFrame(rows)


def summarise_volume(rows: pd.DataFrame, prob_col: str, *, series_col: str = "series",
                     label_col: str = "label", top_k: int = 3) -> pd.DataFrame:
    """Per-series/volume summary of per-slice predictions.

    ``rows``: one row per slice with ``prob_col`` (a probability), ``series_col`` (falls back
    to ``source`` when absent) and ``label_col``. Rows without a series (plain images) are
    left out; rows whose probability is missing (slices that failed) are counted in
    ``n_slices`` but not scored. Returns one row per series, in first-seen order:
    ``n_slices``, ``n_scored``, ``max_<prob_col>``, ``mean_<prob_col>``, ``top_slices``
    (the ``top_k`` highest-scoring labels, best first, comma-separated) and ``top_probs``.
    """
    if prob_col not in rows.columns:
        raise KeyError(f"no column {prob_col!r} in the prediction rows")
    if series_col not in rows.columns:
        if "source" not in rows.columns:
            raise KeyError(f"prediction rows need a {series_col!r} or 'source' column")
        series_col = "source"
    df = rows[rows[series_col].notna()].copy()
    df["_p"] = pd.to_numeric(df[prob_col], errors="coerce")
    df["_label"] = (df[label_col] if label_col in df.columns else df.get("source", df.index)).astype(str)
    out = []
    for key, group in df.groupby(series_col, sort=False):
        scored = group.dropna(subset=["_p"]).sort_values("_p", ascending=False, kind="stable")
        top = scored.head(top_k)
        out.append({
            series_col: key,
            "n_slices": len(group),
            "n_scored": len(scored),
            f"max_{prob_col}": scored["_p"].max() if len(scored) else np.nan,
            f"mean_{prob_col}": scored["_p"].mean() if len(scored) else np.nan,
            "top_slices": ", ".join(top["_label"]),
            "top_probs": ", ".join(f"{p:.3f}" for p in top["_p"]),
        })
    return pd.DataFrame(out, columns=[series_col, "n_slices", "n_scored", f"max_{prob_col}",
                                      f"mean_{prob_col}", "top_slices", "top_probs"])
