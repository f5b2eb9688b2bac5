"""The ``nsa`` recipe: natural synthetic anomalies (Schlüter et al., "Natural synthetic
anomalies for self-supervised anomaly detection and localization", ECCV 2022), labelled tumour.

For each healthy image, a lesion-shaped patch of another healthy image of the same split is
pasted at a random place inside its brain with Poisson image editing (``cv2.seamlessClone``).
Unlike ``patches`` (alpha blending, a visible halo of mixed intensities), Poisson blending
matches the patch to its new surroundings along the border, so the anomaly has no sharp
seam to detect: the network must notice tissue whose texture does not belong there. The
region comes from :func:`braintumor.lesions.random_region`, so sizes and shapes are those
of the other local recipes. Applied to validation too, as ``lesions`` is.

Copies whose target or donor holds too little brain, or where no region fits, are retried
with another donor and region and dropped after ``ATTEMPTS`` tries, so a split can get
fewer than ``lesion_copies`` copies per healthy image.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

DESCRIPTION = ("copies of healthy images with a lesion-shaped patch of another healthy image "
               "Poisson-blended into the brain (natural synthetic anomalies), labelled tumour")
BINARY_ONLY = True
RADIUS_PX = (8.0, 36.0)  # region radius at 224 px, scaled with the image
SCALE_P = 0.5  # chance that the patch's intensity is also changed
SCALE = (0.1, 0.35)  # relative intensity change when it is (brighter or darker)
ATTEMPTS = 5  # donor/region draws per copy before a copy is dropped


def _source_point(donor_grey: np.ndarray, radius: float, rng: np.random.Generator):
    """A donor brain pixel, ``radius`` from the brain's edge where the brain allows, so the
    pasted patch is tissue rather than skull or background; None for a donor without brain."""
    from ..lesions import brain_mask

    mask = brain_mask(donor_grey, erosion=max(2, round(8 * donor_grey.shape[0] / 224)))
    if not mask.any():
        return None
    deep = ndi.distance_transform_edt(mask) >= radius
    ys, xs = np.nonzero(deep if deep.any() else mask)
    pick = rng.integers(ys.size)
    return int(ys[pick]), int(xs[pick])


def _centre(inside: np.ndarray) -> tuple[int, int]:
    """``(y, x)`` such that ``cv2.seamlessClone`` puts the mask's bounding box back where it
    is: OpenCV places the box's top-left corner at ``centre - size // 2``."""
    ys, xs = np.nonzero(inside)
    return (int(ys.min() + (ys.max() - ys.min() + 1) // 2),
            int(xs.min() + (xs.max() - xs.min() + 1) // 2))


def _poisson(target: np.ndarray, source: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Grey float slice: ``source`` Poisson-blended into ``target`` on ``inside``, ``target``
    elsewhere. NORMAL_CLONE takes the source's gradients (its texture) inside the region;
    MIXED_CLONE would keep the target's stronger edges and make the anomaly fainter."""
    import cv2

    y, x = _centre(inside)
    cloned = cv2.seamlessClone(np.ascontiguousarray(source), np.ascontiguousarray(target),
                               inside.astype(np.uint8) * 255, (x, y), cv2.NORMAL_CLONE)
    grey = target.astype(np.float32).mean(axis=2)
    return np.where(inside, cloned.astype(np.float32).mean(axis=2), grey)


def _intensity(rng: np.random.Generator) -> float:
    """Relative intensity change of the patch (0 for none). Poisson blending keeps only the
    patch's gradients, so the pasted tissue takes on the level of its surroundings; a scale
    makes some anomalies brighter or darker than the tissue around them, as tumours often are."""
    if rng.random() >= SCALE_P:
        return 0.0
    return float(rng.choice((-1.0, 1.0)) * rng.uniform(*SCALE))


def blend(target: np.ndarray, donor: np.ndarray, rng: np.random.Generator) -> np.ndarray | None:
    """``target`` (uint8 H×W×3 grey) with a patch of ``donor`` Poisson-blended into its brain,
    or None when either holds too little brain."""
    from ..lesions import random_region

    region = random_region(target.astype(np.float32).mean(axis=2), rng, RADIUS_PX)
    if region is None:
        return None
    inside = region.weight > 0.5 * region.weight.max()
    point = _source_point(donor.astype(np.float32).mean(axis=2), region.radius, rng)
    if point is None:
        return None
    centre = _centre(inside)  # the donor's point lands on the region's centre
    source = np.roll(donor, (centre[0] - point[0], centre[1] - point[1]), axis=(0, 1))
    out = _poisson(target, source, inside) * (1 + _intensity(rng) * region.weight)
    return np.repeat(np.clip(out, 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def synthetic(split, config) -> tuple[np.ndarray, np.ndarray]:
    """``config.lesion_copies`` blended copies of each healthy image of ``split``, donors drawn
    from the split's other healthy images of the same modality (a CT patch in an MRI would
    teach "foreign modality", not "anomaly"); deterministic per (seed, split name)."""
    task = split.task
    healthy = np.flatnonzero(split.y == task.classes.index("healthy"))
    rows = getattr(split, "rows", None)
    modality = (rows["modality"].to_numpy() if rows is not None and "modality" in rows
                else np.zeros(len(split.y), dtype=object))
    donors = {m: healthy[modality[healthy] == m] for m in set(modality[healthy])}
    rng = np.random.default_rng(config.seed + (20 if split.name == "train" else 21))
    out = []
    for _ in range(config.lesion_copies):
        for i in healthy:
            made = _one_copy(split.images, donors[modality[i]], i, rng)
            if made is not None:
                out.append(made)
    images = np.stack(out) if out else np.zeros((0, *split.images.shape[1:]), np.uint8)
    return images, np.full(len(images), task.classes.index("tumor"), dtype=split.y.dtype)


def _one_copy(images, healthy: np.ndarray, i: int, rng: np.random.Generator):
    """A blended copy of ``images[i]`` from up to ``ATTEMPTS`` donor/region draws, or None.
    The image is its own donor only when it is the split's sole healthy image."""
    for _ in range(ATTEMPTS):
        donor = healthy[rng.integers(healthy.size)]
        if donor == i and healthy.size > 1:
            continue
        made = blend(np.asarray(images[i]), np.asarray(images[donor]), rng)
        if made is not None:
            return made
    return None

