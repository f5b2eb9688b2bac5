"""What each task selects from the manifest and which classes it predicts.

Every task yields the same record shape: the manifest's rows plus an integer ``y``
indexing ``classes``, so the pipeline, training and evaluation never special-case tasks.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from .dataset import SUBTYPES


@dataclass(frozen=True)
class Task:
    name: str
    description: str
    classes: tuple[str, ...]  # output order of the model
    class_column: str  # manifest column the class names come from
    select: Callable[[pd.DataFrame], pd.Series]  # boolean mask over the manifest

    @property
    def binary(self) -> bool:
        return len(self.classes) == 2

    def rows(self, manifest: pd.DataFrame, split: str | None = None) -> pd.DataFrame:
        """The task's rows (optionally one split) with the integer label ``y``."""
        rows = manifest[self.select(manifest)]
        if split is not None:
            rows = rows[rows["split"] == split]
        y = rows[self.class_column].map({c: i for i, c in enumerate(self.classes)})
        if y.isna().any():
            bad = sorted(set(rows.loc[y.isna(), self.class_column]))
            raise ValueError(f"task {self.name}: rows with classes {bad} outside {self.classes}")
        return rows.assign(y=y.astype(int)).reset_index(drop=True)


TASKS: dict[str, Task] = {t.name: t for t in [
    Task("ct", "CT: healthy vs tumour", ("healthy", "tumor"), "label",
         lambda m: m["modality"] == "CT"),
    Task("mri", "MRI: healthy vs tumour", ("healthy", "tumor"), "label",
         lambda m: m["modality"] == "MRI"),
    Task("mri_subtype", "MRI tumour sub-type (untyped MRI tumours excluded)",
         SUBTYPES, "subtype",
         lambda m: (m["modality"] == "MRI") & m["subtype"].isin(SUBTYPES)),
    Task("pooled", "CT and MRI pooled: healthy vs tumour", ("healthy", "tumor"), "label",
         lambda m: m["modality"].isin(["CT", "MRI"])),
]}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; choose one of {sorted(TASKS)}") from None


def stratified_subset(rows: pd.DataFrame, per_class: int, seed: int, by=("y",)) -> pd.DataFrame:
    """At most ``per_class`` rows of each class (each combination of the ``by`` columns),
    drawn reproducibly, in their original order within each class (for quick runs)."""
    rng = np.random.default_rng(seed)
    parts = []
    for _, part in rows.groupby(list(by), sort=True):
        take = min(per_class, len(part))
        parts.append(part.iloc[np.sort(rng.choice(len(part), size=take, replace=False))])
    return pd.concat(parts).reset_index(drop=True)


def label_targets(y: np.ndarray, n_classes: int) -> np.ndarray:
    """What the model's output is trained against: ``float32 (N, 1)`` for a binary task
    (one sigmoid unit), one-hot ``float32 (N, K)`` otherwise (softmax; Keras' AUC metric then
    gives a macro one-vs-rest AUC)."""
    y = np.asarray(y, dtype=np.int64)
    return y.astype(np.float32)[:, None] if n_classes == 2 else np.eye(n_classes, dtype=np.float32)[y]


def class_weights(y: np.ndarray, n_classes: int) -> dict[int, float]:
    """Inverse-frequency weights (mean 1 over samples), as Keras ``class_weight`` expects."""
    counts = np.bincount(np.asarray(y, dtype=int), minlength=n_classes).astype(float)
    return {i: (len(y) / (n_classes * c) if c else 0.0) for i, c in enumerate(counts)}
