"""A pooled (CT + MRI) arm seen as an MRI model: its scores on MRI inputs only.

A pooled model answers for both modalities, so its Kaggle test mixes CT and MRI images and it
keeps the external images that the modality check calls CT (an MRI model excludes them: about
half of SARTAJ's tumour-free images look like CT). To compare it with the MRI arms on the
same footing, this re-scores the predictions its runs already wrote — no model is run —
on the MRI rows only: Kaggle test images from the MRI folder, and external images that the
modality check (fitted on the Kaggle training split) calls MRI. Nothing is fitted or chosen on
the external rows; the threshold is the run's own, from Kaggle validation.

Per seed the metrics come from :func:`braintumor.metrics.evaluate_binary` (group bootstrap:
duplicate groups on Kaggle, patients on a same-scan set); seeds are pooled by Rubin's rules
as in the study's other tables.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..data.dataset import MODALITY_FOLDERS
from ..external.analysis import within_group_auc

MODALITY = "MRI"
SHOWN = ("roc_auc", "sensitivity", "specificity")
KAGGLE = "Kaggle test"


def kaggle_rows(root: Path, record: dict, modality: str = MODALITY) -> pd.DataFrame:
    """The run's Kaggle test predictions whose image lies in ``modality``'s folder."""
    rows = pd.read_csv(root / record["report_dir"] / "predictions.csv")
    return rows[rows["path"].str.startswith(MODALITY_FOLDERS[modality] + "/")]


def external_rows(root: Path, record: dict, name: str, modality: str = MODALITY) -> pd.DataFrame | None:
    """The run's kept predictions on external set ``name`` that the modality check calls ``modality``."""
    entry = (record.get("external") or {}).get(name) or {}
    if "report_dir" not in entry:
        return None
    rows = pd.read_csv(root / entry["report_dir"] / "predictions.csv")
    kept = rows[rows["excluded"].isna() & (rows["modality"] == modality)]
    return kept.assign(y=(kept["label"] == "tumor").astype(int))


def score(rows: pd.DataFrame, threshold: float) -> dict:
    """Headline metrics with group-bootstrap intervals, and the within-group AUC median."""
    report = metrics.evaluate_binary(rows["y"].to_numpy(), rows["p"].to_numpy(float),
                                     rows["group"].astype(str).to_numpy(), threshold)
    within = within_group_auc(rows["y"], rows["p"], rows["group"].astype(str))
    return {"metrics": {k: report["metrics"][k] for k in SHOWN}, "n_images": int(len(rows)),
            "within_group_auc_median": within["median"] if within["n_groups"] else None}


def modality_view(root: Path, records: list[dict], set_names: list[str], modality: str = MODALITY) -> dict:
    """``{set: {"n_seeds", "n_images", "metrics": {metric: pooled entry}, "within_group_auc_median"}}``
    for the Kaggle test and each external set, on ``modality`` inputs only."""
    from .report import pooled_cells

    per_set: dict[str, list[dict]] = {}
    for r in records:
        threshold = float(r["threshold"]["threshold"])
        sources = {KAGGLE: kaggle_rows(root, r, modality)}
        sources |= {n: external_rows(root, r, n, modality) for n in set_names}
        for name, rows in sources.items():
            if rows is not None and rows["y"].nunique() == 2:
                per_set.setdefault(name, []).append(score(rows, threshold))
    out = {}
    for name, scores in per_set.items():
        combined = {metric: pooled_cells([s["metrics"][metric] for s in scores]) for metric in SHOWN}
        medians = [s["within_group_auc_median"] for s in scores if s["within_group_auc_median"] is not None]
        out[name] = {"n_seeds": len(scores), "n_images": int(np.mean([s["n_images"] for s in scores])),
                     "metrics": combined, "within_group_auc_median": float(np.mean(medians)) if medians else None}
    return out
