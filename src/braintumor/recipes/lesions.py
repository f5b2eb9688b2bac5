"""The ``lesions`` recipe: lesioned copies of the split's healthy images, labelled tumour.

Each pair (healthy slice, same slice with a lesion) shares every source cue, so it can
only be told apart by the lesion (the synthesis is :mod:`braintumor.lesions`). Applied to
validation too, so early stopping and phase selection reward seeing lesions, not only
the source.
"""
from __future__ import annotations

import numpy as np

DESCRIPTION = "synthetic-lesion copies of healthy training and validation images, labelled tumour"
BINARY_ONLY = True


def synthetic(split, config) -> tuple[np.ndarray, np.ndarray]:
    from ..lesions import synthesize

    task = split.task
    healthy = np.flatnonzero(split.y == task.classes.index("healthy"))
    seed = config.seed + (0 if split.name == "train" else 1)
    images, _ = synthesize(split.images[healthy], config.lesion_copies, seed)
    return images, np.full(len(images), task.classes.index("tumor"), dtype=split.y.dtype)

