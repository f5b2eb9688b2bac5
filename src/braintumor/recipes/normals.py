"""The ``normals`` recipe: train on the healthy images and their synthetic anomalies only.

The self-supervised set-up of the anomaly papers the ``nsa`` and ``patches`` recipes come from
(Schlüter et al. 2022; Tan et al. 2022): a model learns "normal tissue vs tissue that does not
belong there" from normal images alone, the anomalies made from them. Here that means the real
tumour images, each of which comes from a tumour collection whose style gives the label away,
do not train at all: both classes of training are the same healthy slices, so no source cue
separates them, and the tumour class is whatever the anomaly recipe it is combined with makes
(``nsa+normals``: Poisson-blended patches of other healthy brains). Validation is unchanged
(real tumours and the anomalies, for early stopping and phase selection; thresholds and
temperature on the real validation images, as always), so the Kaggle test says what the
model loses by never seeing a real tumour in training.

Needs a recipe that adds tumour-labelled images (``synthetic``); alone it would train on one
class and says so.
"""
from __future__ import annotations

import numpy as np

DESCRIPTION = ("only the healthy training images and the synthetic anomalies of the recipe it is "
               "combined with train (no real tumour image); validation unchanged")
BINARY_ONLY = True
ANOMALY_RECIPES = ("lesions", "patches", "nsa")  # the recipes whose synthetic images are labelled tumour


def select(split, config) -> np.ndarray | None:
    """Positions of the healthy rows of the train split; ``None`` (all rows) for validation."""
    if split.name != "train":
        return None
    from . import parts

    if not set(parts(config.recipe)) & set(ANOMALY_RECIPES):
        raise ValueError(f"recipe 'normals' trains on healthy images only: combine it with a recipe that "
                         f"adds synthetic tumour images, e.g. nsa+normals ({', '.join(ANOMALY_RECIPES)} add them)")
    return np.flatnonzero(split.y == split.task.classes.index("healthy"))
