"""Preprocessing: what happens to a decoded image before the model sees it.

Every image goes through :func:`prepare_image` (optional shortcut-removing preprocessing,
then an aspect-preserving resize with black padding), in training, evaluation and
:mod:`braintumor.inference` alike. Preprocessors are registered by name; models record
the name in their model card, so predict serves images exactly as the model was trained
on them.

* :mod:`~braintumor.preprocess.head` finds the head,
* :mod:`~braintumor.preprocess.glyphs` and :mod:`~braintumor.preprocess.text` find
  burned-in annotation,
* :mod:`~braintumor.preprocess.crop_mask` removes both (the ``crop-mask`` preprocessing),
* :mod:`~braintumor.preprocess.zscore` also standardises the head's intensities
  (``crop-mask-zscore``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..data.images import load_rgb, resize_pad
from ..errors import BrainTumorError
from . import crop_mask as _crop_mask  # the modules; their functions are registered below
from . import zscore as _zscore


def _unchanged(rgb: np.ndarray) -> np.ndarray:
    return rgb


PREPROCESSORS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"none": _unchanged}


def register_preprocessor(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    PREPROCESSORS[name] = fn


# Registered here, where the registry lives, so every process that prepares images
# (training, predict, pool workers) has it.
register_preprocessor("crop-mask", _crop_mask.crop_mask)
register_preprocessor("crop-mask-zscore", _zscore.crop_mask_zscore)


def get_preprocessor(name: str) -> Callable[[np.ndarray], np.ndarray]:
    try:
        return PREPROCESSORS[name]
    except KeyError:
        raise BrainTumorError(
            f"unknown preprocessing {name!r}; available: {sorted(PREPROCESSORS)}") from None


def prepare_image(rgb: np.ndarray, size: int, preprocess: str = "none") -> np.ndarray:
    """Decoded RGB → ``uint8 (size, size, 3)``: preprocessing, then resize and pad."""
    return resize_pad(get_preprocessor(preprocess)(rgb), size)


def load_prepared(path: str | Path, size: int, preprocess: str = "none") -> np.ndarray:
    """Read, decode and prepare one image file (:func:`prepare_image`)."""
    return prepare_image(load_rgb(path), size, preprocess)
