"""Exploratory views of the index: counts, sizes, intensities and de-identified samples.

Images shown to a reader always pass through :func:`braintumor.preprocess.crop_mask.crop_mask` (head
crop with overlay text masked): raw CT tumour images carry patient names.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .preprocess.crop_mask import crop_mask
from .data.images import load_rgb, resize_pad


def class_counts(index: pd.DataFrame) -> pd.DataFrame:
    """Images per modality × label × sub-type, as a wide table."""
    return (index.groupby(["modality", "label", "subtype"]).size()
            .rename("images").reset_index())


def storage_summary(index: pd.DataFrame) -> pd.DataFrame:
    """Formats, colour modes and size ranges per modality × label: the source fingerprint."""
    return (index.groupby(["modality", "label"])
            .agg(formats=("format", lambda s: dict(s.value_counts())),
                 modes=("mode", lambda s: dict(s.value_counts())),
                 width_median=("width", "median"), height_median=("height", "median"),
                 kbytes_median=("bytes", lambda s: round(s.median() / 1024, 1)))
            .reset_index())


def _sample(index: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    ok = index[index["status"] == "ok"]
    return pd.concat(g.sample(min(per_class, len(g)), random_state=seed)
                     for _, g in ok.groupby(["modality", "label"], sort=True))


def intensity_histograms(root: str | Path, index: pd.DataFrame, per_class: int = 60,
                         seed: int = 0) -> pd.DataFrame:
    """Grey-level histograms (32 bins, share of pixels) of a sample per modality × label."""
    rows = []
    edges = np.linspace(0, 256, 33)
    for _, r in _sample(index, per_class, seed).iterrows():
        grey = load_rgb(Path(root) / r["path"]).mean(axis=2)
        hist, _ = np.histogram(grey, bins=edges)
        rows += [{"modality": r["modality"], "label": r["label"], "grey": int(edges[i]),
                  "share": h / grey.size} for i, h in enumerate(hist)]
    return pd.DataFrame(rows)


def deidentified_samples(root: str | Path, index: pd.DataFrame, per_class: int = 4, size: int = 160,
                         seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Sample images per modality × label (× sub-type for MRI tumours), crop-masked."""
    images, titles = [], []
    for _, r in _sample(index, per_class, seed).iterrows():
        images.append(resize_pad(crop_mask(load_rgb(Path(root) / r["path"])), size))
        sub = f" ({r['subtype']})" if r["subtype"] not in ("none", "unspecified") else ""
        titles.append(f"{r['modality']} {r['label']}{sub}")
    return images, titles
