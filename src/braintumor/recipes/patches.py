"""The ``patches`` recipe: foreign patch interpolation (FPI; Tan et al., "Detecting outliers
with foreign patch interpolation", MELBA 2022), labelled tumour.

For each healthy image, an irregular region inside its brain is blended with the pixels of
another healthy image at a random offset: tissue that does not belong there, with real MR
texture rather than a painted blob (the ``lesions`` recipe). Both images are healthy, so the
pair (image, its patched copy) differs only by the local anomaly and shares every source
cue of the target image. Applied to validation too, as ``lesions`` is.
"""
from __future__ import annotations

import numpy as np

DESCRIPTION = ("copies of healthy images with a region blended from another healthy image "
               "(foreign patch interpolation), labelled tumour")
BINARY_ONLY = True
RADIUS_PX = (8.0, 36.0)  # region radius at 224 px, scaled with the image
ALPHA = (0.35, 1.0)  # interpolation weight of the foreign pixels at the region's centre


def patch(target: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``target`` (uint8 H×W×3 grey) with a region blended from ``donor``, or None when the
    target holds too little brain."""
    from ..lesions import random_region

    grey = target.astype(np.float32).mean(axis=2)
    region = random_region(grey, rng, RADIUS_PX)
    if region is None:
        return None
    weight = region.weight
    # The donor's pixels from elsewhere in its head: shifted so the pasted tissue is not the
    # anatomy that belongs at this place.
    shift = rng.integers(-grey.shape[0] // 4, grey.shape[0] // 4 + 1, size=2)
    foreign = np.roll(donor.astype(np.float32).mean(axis=2), tuple(shift), axis=(0, 1))
    alpha = rng.uniform(*ALPHA) * weight
    out = grey * (1 - alpha) + foreign * alpha
    return np.repeat(np.clip(out, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def synthetic(split, config) -> tuple[np.ndarray, np.ndarray]:
    """One patched copy of each healthy image of ``split`` (donors drawn from the same split)."""
    task = split.task
    healthy = np.flatnonzero(split.y == task.classes.index("healthy"))
    rng = np.random.default_rng(config.seed + (10 if split.name == "train" else 11))
    out = []
    for i in healthy:
        for _ in range(5):
            donor = healthy[rng.integers(healthy.size)]
            if donor == i and healthy.size > 1:
                continue
            made = patch(np.asarray(split.images[i]), np.asarray(split.images[donor]), rng)
            if made is not None:
                out.append(made)
                break
    images = np.stack(out) if out else np.zeros((0, *split.images.shape[1:]), np.uint8)
    return images, np.full(len(images), task.classes.index("tumor"), dtype=split.y.dtype)

