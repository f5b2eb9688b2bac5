"""Synthetic lesions: counterfactual training pairs that differ only in a lesion.

Healthy and tumour images of the Kaggle collection come from different sources, so a
classifier trained on their labels learns the source (scanner, sequence, view plane) and
is at chance on tumour vs tumour-free slices of the same scans. A healthy slice and the
same slice with a lesion painted into the brain share every source cue; training on such
pairs too gives the network a reason to look at the tissue. The lesions are generic —
bright, dark or ring-shaped irregular blobs with texture and an optional oedema halo —
not a model of any one tumour type or MR sequence (cf. CutPaste, Li et al. 2021; foreign
patch interpolation, Tan et al. 2022; lesion synthesis for shortcut-robust training).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage as ndi

KINDS = ("bright", "dark", "ring")
KIND_WEIGHTS = (0.5, 0.25, 0.25)
MIN_BRAIN_PIXELS = 400  # below this a slice has too little brain to hold a lesion
RADIUS_PX = (5.0, 28.0)  # lesion radius range at 224 px, scaled with the image


def brain_mask(grey: np.ndarray, erosion: int = 8) -> np.ndarray:
    """Pixels safely inside the head: above the background, holes filled, eroded so a
    lesion never touches the skull or the image edge."""
    fg = grey[grey > 0]
    level = max(10.0, float(np.percentile(fg, 5))) if fg.size else 10.0
    mask = ndi.binary_fill_holes(ndi.binary_opening(grey > level, iterations=2))
    return ndi.binary_erosion(mask, iterations=erosion)


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    noise = ndi.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma)
    return noise / (noise.std() + 1e-6)


def _blob(rng: np.random.Generator, shape, centre, radius: float) -> np.ndarray:
    """An irregular ellipse: a random rotated ellipse whose edge is perturbed by smooth noise."""
    yy, xx = np.mgrid[:shape[0], :shape[1]].astype(np.float32)
    a, b = radius * rng.uniform(0.6, 1.4, size=2)
    t = rng.uniform(0, np.pi)
    dy, dx = yy - centre[0], xx - centre[1]
    u = (dx * np.cos(t) + dy * np.sin(t)) / a
    v = (-dx * np.sin(t) + dy * np.cos(t)) / b
    return (u * u + v * v) + 0.35 * _smooth_noise(rng, shape, radius / 3) < 1


class Region(NamedTuple):
    """A random lesion-shaped region of a slice (see :func:`random_region`)."""

    weight: np.ndarray  # float32 (H, W) in [0, 1]: the smoothed region, zero outside ``mask``
    shape: np.ndarray  # bool (H, W): the sharp irregular blob before smoothing
    mask: np.ndarray  # bool (H, W): the eroded brain mask the region was placed in
    radius: float  # the blob's radius in pixels (already scaled with the image)


def random_region(grey: np.ndarray, rng: np.random.Generator,
                  radius_px: tuple[float, float] = RADIUS_PX) -> Region | None:
    """An irregular region centred on a random brain pixel of a float (H, W) slice, or None
    when the slice holds too little brain or the region barely reaches into it.

    Shared by every recipe that alters a local patch of tissue (``lesions``, ``patches``,
    ``nsa``) so they place regions alike. ``radius_px`` is the radius range at 224 px and
    scales with the image. Draws from ``rng`` in a fixed order (centre, radius, blob,
    smoothing) — changing it changes every seeded synthetic image.
    """
    scale = grey.shape[0] / 224
    mask = brain_mask(grey, erosion=max(2, round(8 * scale)))
    if mask.sum() < MIN_BRAIN_PIXELS * (grey.size / 224 ** 2):
        return None
    ys, xs = np.nonzero(mask)
    pick = rng.integers(ys.size)
    radius = rng.uniform(*radius_px) * scale
    shape = _blob(rng, grey.shape, (ys[pick], xs[pick]), radius)
    weight = ndi.gaussian_filter(shape.astype(np.float32), rng.uniform(1, 3) * scale) * mask
    if weight.max() < 0.2:
        return None
    return Region(weight, shape, mask, radius)


def add_lesion(rgb: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``(image with a lesion, lesion weight map)`` for a grey ``uint8 (H, W, 3)`` slice,
    or None when the slice holds too little brain for one."""
    grey = rgb.astype(np.float32).mean(axis=2)
    region = random_region(grey, rng)
    if region is None:
        return None
    weight, shape, mask, radius = region
    scale = grey.shape[0] / 224
    lo, hi = np.percentile(grey[mask], [5, 99])
    kind = rng.choice(KINDS, p=KIND_WEIGHTS)
    texture = 1 + 0.25 * _smooth_noise(rng, grey.shape, 1.5 * scale)
    target = hi * rng.uniform(0.85, 1.15) if kind == "bright" else lo + (hi - lo) * rng.uniform(0.05, 0.3)
    out = grey * (1 - weight) + target * texture * weight
    if kind == "ring":  # a bright rim around a dark core, as in enhancing tumours
        core = ndi.gaussian_filter(ndi.binary_erosion(shape, iterations=3).astype(np.float32), 1.5 * scale)
        ring = np.clip(weight - core, 0, 1)
        out = out * (1 - ring) + hi * rng.uniform(0.9, 1.2) * ring
    if rng.random() < 0.5:  # a faint halo, as oedema around a mass
        halo = ndi.gaussian_filter(shape.astype(np.float32), radius / 2.5) * mask * (1 - weight)
        out = out + halo * (hi - out) * rng.uniform(0.2, 0.5)
    lesioned = np.repeat(np.clip(out, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return lesioned, weight


def synthesize(images: np.ndarray, copies: int = 1, seed: int = 0,
               attempts: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` lesioned versions of each image: ``(uint8 (M, H, W, 3), source index (M,))``.

    Deterministic for ``seed``. Slices with too little brain are skipped after
    ``attempts`` tries, so M can be below ``copies * len(images)``.
    """
    rng = np.random.default_rng(seed)
    out, source = [], []
    for _ in range(copies):
        for i in range(len(images)):
            for _ in range(attempts):
                made = add_lesion(np.asarray(images[i]), rng)
                if made is not None:
                    out.append(made[0])
                    source.append(i)
                    break
    if not out:
        return np.zeros((0, *images.shape[1:]), np.uint8), np.zeros(0, int)
    return np.stack(out), np.asarray(source)
