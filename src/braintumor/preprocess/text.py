"""Burned-in text as a mask: the glyphs of :func:`~braintumor.preprocess.glyphs.scan_glyphs`,
the continuation of their lines onto the head (:func:`text_in_head`) and coloured marks.

:func:`detect_overlay_text` gives the mask, :func:`mask_overlay_text` blanks it and
:func:`has_overlay_text` says whether an image shows text at all.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .glyphs import (GLYPH_MIN_PIXELS, GlyphScan, _boxes, _glyph_shape, _long_text_lines, _strokes,
                     scan_glyphs)
from . import morphology
from .head import _disc, _grey, _scale, _within, intensity_levels

# A line of text is followed this far (256-px scale) beyond each of its glyphs onto the
# head, where its strokes are thin marks at least this much brighter than the tissue
# under them (grey levels, and as a fraction of the image's dynamic range).
LINE_REACH = 45
STROKE_MIN_CONTRAST = 45.0
STROKE_CONTRAST_FRACTION = 0.18
# Fainter strokes further along a line count when they chain into glyphs (see
# text_in_head): contrast in grey levels, and as a share of the dynamic range.
FAINT_MIN_CONTRAST = 25.0
FAINT_CONTRAST_FRACTION = 0.1
FAINT_MIN_LINE = 3  # words chained in a known line of text
TEXT_REACH = 32  # a thin mark this close (256-px scale) to text glyphs is part of their text


def text_in_head(rgb: np.ndarray, scan: GlyphScan) -> np.ndarray:
    """Strokes of text lines that continue onto the head.

    Where a line of text crosses the scalp, skull or brain, its glyphs lie inside the
    head core, where no component analysis can tell them from tissue. Each text glyph
    (outside the head, or over it in the margins) and each thin mark running into the
    head next to such glyphs defines a band along its line (its rows for horizontal
    text, its columns for vertical text). Inside the core, thin marks
    (:func:`_strokes`) within :data:`LINE_REACH` along the band are the line's
    continuation; further along, only fainter strokes that chain into a row of glyphs
    of the line's height (a name written across the brain in a tight frame).
    """
    grey = _grey(rgb)
    s = _scale(grey.shape)
    text = scan.text_glyphs | scan.is_block
    lines = [(*scan.boxes[k], scan.line[k] if scan.text_glyphs[k] else 0) for k in np.flatnonzero(text)]
    lines += [tuple(b) for b in scan.inner_boxes]
    # Thin marks touching the head next to text: the first letters of a line that runs
    # into it. Elsewhere such marks are scalp or bone shaved off by the head's openings.
    near_text = _within(text[scan.labels] | scan.inner, TEXT_REACH * s)
    entering = np.zeros(len(scan.is_thin), dtype=bool)
    entering[np.unique(scan.labels[near_text & (scan.is_thin & scan.touches_core)[scan.labels]])] = True
    entering[0] = False
    marks = [(*scan.boxes[k], 0) for k in np.flatnonzero(entering)]
    if not lines and not marks:
        return scan.inner.copy()
    near, rows, cols = _line_bands(grey.shape, lines, marks, s)
    levels = intensity_levels(grey)
    span = float(np.percentile(grey, 99)) - levels.background
    # Next to a glyph, any stroke in the band is the line's continuation; specks of a
    # pixel or two are texture (noise, vessels), not strokes.
    labels, n = ndimage.label(_strokes(grey, max(STROKE_MIN_CONTRAST, STROKE_CONTRAST_FRACTION * span))
                              & near & scan.core, structure=np.ones((3, 3)))
    large_enough = np.bincount(labels.ravel(), minlength=n + 1) >= GLYPH_MIN_PIXELS * s * s
    large_enough[0] = False
    found = large_enough[labels] | scan.inner
    # Light and dark strokes are taken apart: text on the skull answers both (dark
    # letters, light gaps between them), which together would fuse a line into one blob.
    faint = max(FAINT_MIN_CONTRAST, FAINT_CONTRAST_FRACTION * span)
    for kind in ("light", "dark"):
        strokes = _strokes(grey, faint, kind) & scan.core
        found |= _chained_glyphs(strokes & rows, s, horizontal=True)
        found |= _chained_glyphs(strokes & cols, s, horizontal=False)
    return found


def _line_bands(shape: tuple[int, int], lines: list, marks: list, s: float):
    """Boolean ``(near, rows, cols)`` bands for :func:`text_in_head`: ``near`` reaches
    :data:`LINE_REACH` along the line beyond each box of ``lines`` and ``marks``;
    ``rows`` / ``cols`` span the whole image along the horizontal / vertical ``lines``.
    Boxes are ``(top, bottom, left, right, direction)``; direction 0 = by their shape."""
    h, w = shape
    near, rows, cols = (np.zeros((h, w), dtype=bool) for _ in range(3))
    pad, reach = max(1, round(2 * s)), round(LINE_REACH * s)
    for box, whole in [(b, True) for b in lines] + [(b, False) for b in marks]:
        t, b, l, r, direction = box
        horizontal = direction == 1 if direction else (r - l) >= (b - t)
        if horizontal:
            near[max(0, t - pad):b + pad, max(0, l - reach):r + reach] = True
            rows[max(0, t - pad):b + pad, :] |= whole
        else:
            near[max(0, t - reach):b + reach, max(0, l - pad):r + pad] = True
            cols[:, max(0, l - pad):r + pad] |= whole
    return near, rows, cols


def _chained_glyphs(strokes: np.ndarray, s: float, horizontal: bool) -> np.ndarray:
    """The components of ``strokes`` that are glyph-sized and chain into a line of at
    least :data:`FAINT_MIN_LINE` along the given direction."""
    labels, n = ndimage.label(strokes, structure=np.ones((3, 3)))
    if n == 0:
        return np.zeros(strokes.shape, dtype=bool)
    boxes = _boxes(labels, n)
    thin, short_enough = _glyph_shape(labels, boxes, s)
    across_along = (0, 1, 2, 3) if horizontal else (2, 3, 0, 1)
    chained = np.zeros(n + 1, dtype=bool)
    chained[1:] = (_long_text_lines(*(boxes[1:, i] for i in across_along), s, FAINT_MIN_LINE)
                   & (thin & short_enough)[1:])
    return chained[labels]


def detect_overlay_text(rgb: np.ndarray, core: np.ndarray | None = None) -> np.ndarray:
    """Boolean ``(H, W)`` mask of burned-in annotation, slightly grown; empty when the
    image shows no text (fewer than :data:`MIN_GLYPHS_FOR_TEXT` glyphs in lines apart
    from the head, and no coloured marks), so specks of noise are not called text.

    The mask covers the glyphs outside the head core, thin marks touching the head
    (a line of text or a ruler running into it), the continuation of text lines inside
    the head (:func:`text_in_head`), and every strongly coloured pixel (arrows and
    coloured text, inside the head too: the scans themselves are grey). It is grown by
    about a pixel to cover the anti-aliased, JPEG-ringing halo around each stroke.
    """
    scan = scan_glyphs(rgb, core)
    if not scan.has_text:
        return np.zeros(scan.labels.shape, dtype=bool)
    mask = (scan.text_glyphs | scan.is_block | (scan.is_thin & scan.touches_core))[scan.labels]
    mask |= text_in_head(rgb, scan) | scan.colour
    return morphology.binary_dilation(mask, _disc(round(_scale(mask.shape))))


def has_overlay_text(rgb: np.ndarray) -> bool:
    return scan_glyphs(rgb).has_text


def mask_overlay_text(rgb: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """The image with detected text (or the given ``text`` mask) set to black."""
    out = np.array(rgb, copy=True)
    out[detect_overlay_text(rgb) if text is None else text] = 0
    return out
