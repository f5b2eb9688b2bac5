"""Where the head is: background levels, the head region, masks and crops around it.

CT tumour images in this dataset carry burned-in viewer text (dates, hospital, patient
names) around the head; healthy CT images carry head-holder arcs instead; MRI sources
differ in background noise and framing. None of that is anatomy, and all of it lets a
classifier tell the classes (sources) apart. Everything in :mod:`braintumor.preprocess`
works on decoded ``uint8`` RGB arrays ``(H, W, 3)`` and is deterministic.

:func:`head_mask` / :func:`head_bbox` / :func:`crop_to_head` find the head: pixels above
the background level (median-filtered first when the background is noisy), opened so that
thin strokes (text, frame lines, head-holder arcs) fall away, the largest component
closed and filled, then trimmed by a wider opening that cuts off text blobs stuck to the
skull (:func:`head_core`).

Sizes (structuring elements, glyph limits) are given for a 256-px image, the longer side
of every image in the shared mirror, and scaled with the image, so originals up to
1,446 px behave the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import morphology

REFERENCE_SIDE = 256  # the sizes below are tuned for this longer side and scale with it

# A thin stroke (text, frame line, head-holder arc) is narrower than a disc of this
# radius at 256 px: opening with it detaches them from the head.
STROKE_RADIUS = 2
# Text merged into solid blobs by the resolution: a disc of this radius does not fit
# inside a line of burned-in text (5-10 px tall at 256 px) but fits inside any head.
TRIM_RADIUS = 5
MEDIAN_RADIUS = 2  # median filter (5 x 5 at 256 px) before the head is thresholded...
NOISY_BACKGROUND = 2.0  # ...when the background noise is at least this (grey levels)
# A head region filling more than this share of its bounding box is a pasted rectangle.
RECTANGLE_FILL = 0.95


# --------------------------------------------------------------------------- helpers
def _grey(rgb: np.ndarray) -> np.ndarray:
    """Float grey image; the channel maximum, so coloured annotation counts as bright."""
    a = np.asarray(rgb)
    if a.ndim != 3:
        return a.astype(np.float32)
    # Pairwise maxima: the same values as a.max(axis=2), several times faster on H x W x 3.
    out = a[..., 0].astype(np.float32)
    for c in range(1, a.shape[2]):
        np.maximum(out, a[..., c], out=out)
    return out


def _scale(shape: tuple[int, ...]) -> float:
    return max(shape[0], shape[1]) / REFERENCE_SIDE


def _disc(radius: int) -> np.ndarray:
    r = max(1, int(radius))
    yy, xx = np.mgrid[-r:r + 1, -r:r + 1]
    return (yy * yy + xx * xx) <= r * r + r  # "+ r" rounds the disc like skimage's


def _within(mask: np.ndarray, distance: float) -> np.ndarray:
    """Pixels at most ``distance`` from ``mask``: a dilation by a disc, in linear time
    (a distance transform), for reaches where a disc structuring element is slow."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask) <= distance


def _largest_component(mask: np.ndarray) -> np.ndarray:
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.zeros(mask.shape, dtype=bool)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


@dataclass(frozen=True)
class Levels:
    """Grey levels that separate background from everything else in one image."""

    background: float  # typical background value (outer frame, robust)
    noise: float  # about one standard deviation of the background
    foreground: float  # pixels above this are "something": tissue, bone, text


def intensity_levels(grey: np.ndarray) -> Levels:
    """Background level from the outer frame and a foreground threshold above it.

    The frame's 10th percentile is the background even when the head fills most of the
    frame (tight crops), and its spread down to the 1st percentile is about one standard
    deviation of the background noise (some MRI sources have a grey, noisy background).
    The threshold clears that noise and sits a fixed fraction of the dynamic range above
    the background, so it follows each source's windowing.
    """
    h, w = grey.shape
    b = max(2, round(0.02 * max(h, w)))
    frame = np.concatenate([grey[:b].ravel(), grey[-b:].ravel(), grey[:, :b].ravel(), grey[:, -b:].ravel()])
    p1, p10 = np.percentile(frame, [1, 10])
    bg, noise = float(p10), float(p10 - p1)
    top = float(np.percentile(grey, 99))
    return Levels(background=bg, noise=noise, foreground=bg + max(12.0, 4.0 * noise, 0.12 * (top - bg)))


# --------------------------------------------------------------------------- the head
def head_core(rgb: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: the head without margin, with text and thin attachments cut off.

    See :func:`_head_region`. Some MRI sources paste the scan, noisy grey background and
    all, as a rectangle onto a black canvas; the region found is then that rectangle,
    and it is searched again with the rectangle's own edge as the background.
    """
    grey = _grey(rgb)
    core = _head_region(grey)
    box = bbox_of(core)
    if box is None:
        return core
    top, bottom, left, right = box
    h, w = grey.shape
    inset = top > 0 or left > 0 or bottom < h or right < w
    if inset and core.sum() > RECTANGLE_FILL * (bottom - top) * (right - left):
        inner = _head_region(grey[top:bottom, left:right])
        if inner.any():
            core = np.zeros_like(core)
            core[top:bottom, left:right] = inner
    return core


def _head_region(grey: np.ndarray) -> np.ndarray:
    """The head in one grey image, as :func:`head_core` describes.

    1. Foreground pixels are opened with a small disc: text strokes, frame lines and
       head-holder arcs are thinner than it and fall apart, so the largest remaining
       component is the head, detached from text that touches it.
    2. The head is closed (sealing small gaps in the skull outline) and its holes
       filled, so it is one solid region whatever the windowing (dark brain, ventricles).
    3. A second opening with a disc wider than a line of text cuts off text blocks that
       survived step 1 as solid blobs stuck to the skull; the largest component remains.
       Only thin protrusions are lost (ear tips, nose, a thin scalp), never the outline.
    """
    if grey.size == 0:
        return np.zeros(grey.shape, dtype=bool)
    s = _scale(grey.shape)
    small = _disc(max(1, round(STROKE_RADIUS * s)))
    # A noisy background is median-filtered first: in low-SNR MRI sources the noise
    # reaches the level of grey matter pixel by pixel, but not over a neighbourhood (a
    # median, unlike a blur, erases thin text strokes instead of smearing text into
    # blobs). A clean background is left alone, which keeps head detection on an image
    # already blanked around its head (crop-mask's output) from shaving it further.
    levels = intensity_levels(grey)
    if levels.noise >= NOISY_BACKGROUND:
        grey = ndimage.median_filter(grey, size=2 * max(1, round(MEDIAN_RADIUS * s)) + 1)
        levels = intensity_levels(grey)
    fg = grey > levels.foreground
    head = _largest_component(morphology.binary_opening(fg, small))
    if not head.any():  # nothing survived the opening: a tiny or nearly empty image
        return _largest_component(fg)
    head = morphology.fill_holes(morphology.binary_closing(head, small))
    trimmed = _largest_component(
        morphology.binary_opening(head, _disc(max(1, round(TRIM_RADIUS * s)))))
    return trimmed if trimmed.any() else head


def head_mask(rgb: np.ndarray, margin: int = 3) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the head, grown by ``margin`` pixels.

    Text glyphs are small and separate from the skull (or are cut off it by the
    openings in :func:`head_core`), so they fall outside the mask.
    """
    return _grown(head_core(rgb), margin)


def _grown(mask: np.ndarray, margin: int) -> np.ndarray:
    if margin > 0 and mask.any():
        return morphology.binary_dilation(mask, _disc(margin))
    return mask


def bbox_of(mask: np.ndarray, margin: int = 0) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` (bottom/right exclusive) of a mask's true pixels,
    grown by ``margin`` and clipped to the image; ``None`` for an empty mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin),
            max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin))


def head_bbox(rgb: np.ndarray, margin: int = 4) -> tuple[int, int, int, int] | None:
    """``(top, bottom, left, right)`` of the head core plus ``margin`` pixels, or ``None``."""
    return bbox_of(head_core(rgb), margin)


def crop_to_head(rgb: np.ndarray, margin: int = 4) -> np.ndarray:
    """The image cropped to :func:`head_bbox`; unchanged when no head is found."""
    box = head_bbox(rgb, margin)
    if box is None:
        return np.array(rgb, copy=True)
    top, bottom, left, right = box
    return np.array(rgb[top:bottom, left:right], copy=True)



def blank_head(rgb: np.ndarray, margin: int = 3) -> np.ndarray:
    """The image with the head (:func:`head_mask`) set to black: only what surrounds it."""
    out = np.array(rgb, copy=True)
    out[head_mask(rgb, margin)] = 0
    return out
