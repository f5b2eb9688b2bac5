"""The ``crop-mask-zscore`` preprocessing: ``crop-mask``, then intensity standardisation
inside the head (issue 14's first recipe against the source shortcut).

Each MRI collection in the Kaggle set has its own scanner, sequence, windowing and export,
so its grey levels have their own mean, spread and tint, and a classifier can tell the
collections (and so the classes) apart from the intensity histogram alone. Standardising
every image's grey level to zero mean and unit variance over its own head pixels (the usual
z-score normalisation of brain MRI) removes the level and spread, keeps the contrast
between tissues, and makes the image grey (tint is not anatomy). Computed per image from
the image alone, so training, evaluation and predict apply it identically and nothing is
fitted on any data set.
"""
from __future__ import annotations

import numpy as np

from .crop_mask import crop_box, crop_mask_canvas

CLIP_SD = 3.0  # z-scores beyond this (bright fat, flow artefacts) are clipped
# Head pixels map to [1, 255] (z = -CLIP_SD → 1, 0 → 128, +CLIP_SD → 255); 0 stays the
# black outside the head, so the head outline crop-mask keeps is unchanged.
HEAD_LOW, HEAD_HIGH = 1.0, 255.0


def standardise(rgb: np.ndarray, head: np.ndarray) -> np.ndarray:
    """``rgb``'s grey level z-scored over the ``head`` pixels, clipped to ±:data:`CLIP_SD`,
    as ``uint8`` grey RGB; pixels outside ``head`` are black. With no head found, the
    image's non-black pixels stand in for it (an all-black image stays black)."""
    grey = np.asarray(rgb, dtype=np.float32).mean(axis=2)
    inside = head if head.any() else grey > 0
    if not inside.any():
        return np.zeros(grey.shape + (3,), np.uint8)
    values = grey[inside]
    sd = float(values.std())
    z = (grey - float(values.mean())) / sd if sd > 0 else np.zeros_like(grey)
    scaled = HEAD_LOW + (np.clip(z, -CLIP_SD, CLIP_SD) + CLIP_SD) * (HEAD_HIGH - HEAD_LOW) / (2 * CLIP_SD)
    out = np.where(inside, np.round(scaled), 0).astype(np.uint8)
    return np.repeat(out[..., None], 3, axis=2)


def crop_mask_zscore(rgb: np.ndarray) -> np.ndarray:
    """:func:`~braintumor.preprocess.crop_mask.crop_mask` with the head's grey levels
    standardised (:func:`standardise`). A module-level function, so pool workers can run it."""
    canvas, core = crop_mask_canvas(rgb)
    out = standardise(canvas, core)
    box = crop_box(core)
    if box is None:
        return out
    top, bottom, left, right = box
    return np.ascontiguousarray(out[top:bottom, left:right])
