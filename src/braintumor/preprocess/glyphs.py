"""Burned-in annotation around the head: bright components, which of them are glyphs,
and how they line up (:func:`scan_glyphs`).

Text is found as bright components outside the head that are glyph-sized, drawn on dark
ground at full contrast and standing in lines; text written over the head in the image
margins when the head fills the frame; coloured marks. :mod:`braintumor.preprocess.text`
builds the mask to remove from these scans. Sizes are for a 256-px image (see
:mod:`braintumor.preprocess.head`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from . import morphology
from .head import STROKE_RADIUS, Levels, _disc, _grey, _scale, head_core, intensity_levels



# Glyphs and short words: the short side of their bounding box is at most this (256-px
# scale); a line of burned-in text at the dataset's resolutions is 5-10 px tall.
GLYPH_MAX_SHORT_SIDE = 14
GLYPH_MAX_LONG_SIDE = 90  # a long merged word; frame lines and arcs are longer
GLYPH_MIN_PIXELS = 3  # smaller specks are JPEG noise
# Text is brighter than this share of the dynamic range; CT soft tissue is darker.
TEXT_LEVEL_FRACTION = 0.45
# Lines of text merged into one component: across the line at least this thick (256-px
# scale; drawn rules are 1-3 px) and filling at most this share of its bounding box.
BLOCK_MIN_SHORT_SIDE = 4
BLOCK_MAX_FILL = 0.7
GLYPH_MIN_DARK = 0.5  # share of a glyph's neighbourhood that is background
# A glyph's brightest pixel is at least this far above the background (grey levels), and
# at least this fraction of the image's dynamic range.
GLYPH_MIN_PEAK = 50.0
GLYPH_PEAK_FRACTION = 0.2
# Glyphs within this reach (256-px scale) of a tissue region of at least this area are
# not counted as evidence of text: the head's openings shave off glyph-sized tissue.
ANATOMY_REACH = 6
ANATOMY_MIN_AREA = 400
# An image "has text" when at least this many glyph components are found: a date alone
# has more, while a lone speck or the end of an arc does not make a line of text.
MIN_GLYPHS_FOR_TEXT = 4
# Text drawn over the head (tight frames) is looked for in this outer share of each side,
# as strokes of at least this contrast (grey levels; share of the dynamic range).
TEXT_ZONE = 0.2
INNER_MIN_CONTRAST = 60.0
INNER_CONTRAST_FRACTION = 0.3
INNER_MIN_LINE = 5  # glyphs chained in one line
INNER_MIN_HEIGHT, INNER_MAX_HEIGHT = 4, 12  # glyph height (256-px scale)
# Coloured marks (arrows, coloured text) in these grey scans: a pixel whose channels
# differ by more than this; an image with at least MIN_COLOUR_PIXELS of them is annotated.
COLOUR_SPREAD = 60
COLOUR_FRINGE_SPREAD = 20  # weaker colour, kept where it touches a mark
MIN_COLOUR_PIXELS = 20


# ------------------------------------------------------------------ burned-in text
@dataclass(frozen=True)
class GlyphScan:
    """The bright components around the head of one image, and which of them are text.

    Per-component arrays are indexed by label (index 0 = no component).
    """

    core: np.ndarray  # bool (H, W): the head core the scan was made around
    labels: np.ndarray  # int (H, W): connected components of bright pixels outside the core
    boxes: np.ndarray  # int (n + 1, 4): bounding box (top, bottom, left, right) per label
    is_thin: np.ndarray  # short side at most a line of text (text, rulers, arcs)
    is_glyph: np.ndarray  # a letter or word: thin, short, on dark ground, full contrast
    is_block: np.ndarray  # lines of text merged into one long component (not a thin rule)
    line: np.ndarray  # int8: 1 in a horizontal line of glyphs, 2 in a vertical one, else 0
    touches_core: np.ndarray  # touching the head core
    apart: np.ndarray  # clear of all anatomy (the head and any other large tissue)
    colour: np.ndarray  # bool (H, W): strongly coloured pixels (arrows, coloured text)
    inner: np.ndarray  # bool (H, W): glyphs in lines drawn over the head (tight frames)
    inner_boxes: np.ndarray  # int (m, 5): their boxes (top, bottom, left, right, line)

    @property
    def text_glyphs(self) -> np.ndarray:
        """Per label: a glyph standing in a line of glyphs."""
        return self.is_glyph & (self.line > 0)

    @property
    def n_glyphs(self) -> int:
        """Text glyphs clear of anatomy: the evidence that an image has text.

        Glyphs near the head are left out of the count because the openings in
        :func:`head_core` also shave small anatomy (scalp, ear tips, nose, facial fat)
        that can look glyph-sized and happen to line up; they are still masked.
        """
        return int((self.text_glyphs & self.apart).sum())

    @property
    def n_colour_pixels(self) -> int:
        return int(self.colour.sum())

    @property
    def n_inner(self) -> int:
        return len(self.inner_boxes)

    @property
    def has_text(self) -> bool:
        return (self.n_glyphs >= MIN_GLYPHS_FOR_TEXT or self.n_inner >= MIN_GLYPHS_FOR_TEXT
                or self.n_colour_pixels >= MIN_COLOUR_PIXELS)


def scan_glyphs(rgb: np.ndarray, core: np.ndarray | None = None) -> GlyphScan:
    """Find the bright connected components outside the head core and classify them."""
    grey = _grey(rgb)
    core = head_core(rgb) if core is None else core
    levels = intensity_levels(grey)
    labels, boxes = _components(grey, core, levels)
    n = len(boxes) - 1
    s = _scale(grey.shape)
    is_thin, short_enough = _glyph_shape(labels, boxes, s)
    like_text = is_thin & _drawn_like_text(grey, labels, levels)
    is_glyph = like_text & short_enough
    is_block = like_text & ~short_enough & _textured(labels, boxes, s)
    line = np.zeros(n + 1, dtype=np.int8)
    glyphs = np.flatnonzero(is_glyph)
    if glyphs.size:
        line[glyphs] = _text_line_direction(boxes[glyphs])
    touches_core = np.zeros(n + 1, dtype=bool)
    if core.any():
        touches_core[np.unique(labels[morphology.binary_dilation(core, np.ones((3, 3)))])] = True
    apart = np.ones(n + 1, dtype=bool)
    apart[np.unique(labels[_anatomy(grey, levels)])] = False
    touches_core[0] = apart[0] = False
    inner, inner_boxes = _text_over_head(grey, core, levels)
    return GlyphScan(core, labels, boxes, is_thin, is_glyph, is_block, line, touches_core, apart,
                     coloured_marks(rgb), inner, inner_boxes)


def _strokes(grey: np.ndarray, contrast: float, kinds: str = "light dark") -> np.ndarray:
    """Thin marks standing out from what is under them by ``contrast`` grey levels.

    Light text on tissue is brighter than a small grey opening of the image (white
    top-hat, ``"light"``); grey text on the white skull is darker than a small closing
    (black top-hat, ``"dark"``). Structures wider than the stroke disc (skull, brain)
    answer neither.
    """
    disc = _disc(round(STROKE_RADIUS * _scale(grey.shape)))
    out = np.zeros(grey.shape, dtype=bool)
    if "light" in kinds:
        out |= morphology.white_tophat(grey, disc) > contrast
    if "dark" in kinds:
        out |= morphology.black_tophat(grey, disc) > contrast
    return out


def _text_over_head(grey: np.ndarray, core: np.ndarray, levels: Levels) -> tuple[np.ndarray, np.ndarray]:
    """Glyphs drawn over the head itself, for images where the head fills the frame and
    the viewer's text has nowhere else to go.

    Viewers write in the margins of the image, so only the outer :data:`TEXT_ZONE` of
    each side is searched: high-contrast strokes inside the core that form glyph-sized
    components standing in lines (:func:`_text_line_direction`). Returns their pixels and
    their boxes ``(top, bottom, left, right, line direction)``.
    """
    h, w = grey.shape
    s = _scale(grey.shape)
    zone = np.ones((h, w), dtype=bool)
    zh, zw = round(TEXT_ZONE * h), round(TEXT_ZONE * w)
    zone[zh:h - zh, zw:w - zw] = False
    contrast = max(INNER_MIN_CONTRAST,
                   INNER_CONTRAST_FRACTION * (float(np.percentile(grey, 99)) - levels.background))
    labels, n = ndimage.label(_strokes(grey, contrast) & core & zone, structure=np.ones((3, 3)))
    boxes = _boxes(labels, n)
    thin, short_enough = _glyph_shape(labels, boxes, s)
    glyphs = np.flatnonzero(thin & short_enough)
    keep = np.zeros(n + 1, dtype=bool)
    found = []
    for direction, (a0, a1, b0, b1) in ((1, (0, 1, 2, 3)), (2, (2, 3, 0, 1))):
        g = boxes[glyphs]
        member = _long_text_lines(g[:, a0], g[:, a1], g[:, b0], g[:, b1], s) & ~keep[glyphs]
        keep[glyphs[member]] = True
        found += [(*g[i], direction) for i in np.flatnonzero(member)]
    return keep[labels], np.array(found, dtype=np.int64).reshape(-1, 5)


def _long_text_lines(a0, a1, b0, b1, s: float, min_line: int = 0) -> np.ndarray:
    """Which boxes (given across / along a line) belong to a chain of at least
    ``min_line`` (default :data:`INNER_MIN_LINE`) glyphs of text height with aligned tops and bottoms and
    letter-sized gaps: much stricter than :func:`_text_line_direction`, because over
    tissue, texture offers many more candidates to line up by chance."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    min_line = min_line or INNER_MIN_LINE
    h = a1 - a0
    sized = (h >= INNER_MIN_HEIGHT * s) & (h <= INNER_MAX_HEIGHT * s)
    if sized.sum() < min_line:
        return np.zeros(len(h), dtype=bool)
    small, big = np.minimum(h[:, None], h[None]), np.maximum(h[:, None], h[None])
    aligned = ((np.abs(a0[:, None] - a0[None]) <= 0.25 * big)
               & (np.abs(a1[:, None] - a1[None]) <= 0.25 * big) & (big <= 1.5 * small))
    gap = np.maximum(b0[:, None], b0[None]) - np.minimum(b1[:, None], b1[None])
    linked = aligned & (gap <= big) & sized[:, None] & sized[None]
    np.fill_diagonal(linked, False)
    _, chain = connected_components(csr_matrix(linked), directed=False)
    return sized & (np.bincount(chain)[chain] >= min_line)


def _components(grey: np.ndarray, core: np.ndarray, levels: Levels) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of bright pixels outside the core, and their bounding boxes
    ``(top, bottom, left, right)`` (row 0 stands for the background).

    Thin, anti-aliased text downscaled from 512 px only just clears a low threshold, so
    components are found at a low one. A component too large to be text there may be
    text joined to the soft tissue around the skull (CT scalp); it is split again at a
    level above soft tissue, where the text stands on its own.
    """
    s = _scale(grey.shape)
    labels, n = ndimage.label((grey > _bright_threshold(levels)) & ~core, structure=np.ones((3, 3)))
    thin, _ = _glyph_shape(labels, _boxes(labels, n), s)
    merged = ~thin[labels] & (labels > 0)
    if merged.any():
        top = float(np.percentile(grey, 99))
        text_level = levels.background + TEXT_LEVEL_FRACTION * (top - levels.background)
        parts, m = ndimage.label(merged & (grey > text_level), structure=np.ones((3, 3)))
        kept, k = ndimage.label((labels > 0) & ~merged, structure=np.ones((3, 3)))
        labels = np.where(parts > 0, parts + k, kept).astype(np.int32)
        n = k + m
    return labels, _boxes(labels, n)


def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    boxes = np.zeros((n + 1, 4), dtype=np.int64)
    for k, sl in enumerate(ndimage.find_objects(labels, max_label=n), start=1):
        if sl is not None:
            boxes[k] = (sl[0].start, sl[0].stop, sl[1].start, sl[1].stop)
    return boxes


def _bright_threshold(levels: Levels) -> float:
    # Annotation is drawn to be read: it stands clearly above the background.
    return levels.background + max(25.0, 0.6 * (levels.foreground - levels.background))


def _glyph_shape(labels: np.ndarray, boxes: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Per label: thin (short side at most a line of text, not a speck) and short (long
    side at most a long word: frame lines, rulers and head-holder arcs are longer)."""
    sizes = np.bincount(labels.ravel(), minlength=len(boxes))
    extent = np.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], axis=1)
    short, long_ = extent.min(axis=1), extent.max(axis=1)
    thin = (sizes >= GLYPH_MIN_PIXELS * s * s) & (short <= GLYPH_MAX_SHORT_SIDE * s)
    thin[0] = False
    return thin, long_ <= GLYPH_MAX_LONG_SIDE * s


def _textured(labels: np.ndarray, boxes: np.ndarray, s: float) -> np.ndarray:
    """Per label: a band of letters rather than a rule: thicker than a drawn line and
    full of gaps (a line of text fills well under its bounding box; a rule fills it)."""
    sizes = np.bincount(labels.ravel(), minlength=len(boxes))
    extent = np.stack([boxes[:, 1] - boxes[:, 0], boxes[:, 3] - boxes[:, 2]], axis=1)
    area = np.maximum(1, extent.prod(axis=1))
    return (extent.min(axis=1) >= BLOCK_MIN_SHORT_SIDE * s) & (sizes <= BLOCK_MAX_FILL * area)


def _drawn_like_text(grey: np.ndarray, labels: np.ndarray, levels: Levels) -> np.ndarray:
    """Per label: on dark ground and at full contrast, as a viewer draws its text.

    Text is drawn on empty background, so most of a glyph's neighbourhood is dark, while
    bits of anatomy left outside the core (fat, ear, nose) sit against tissue. Strokes
    reach well above the background, while noise specks only just clear the threshold.
    """
    n = int(labels.max())
    out = np.zeros(n + 1, dtype=bool)
    if n == 0:
        return out
    s = _scale(grey.shape)
    index = np.arange(1, n + 1)
    window = 2 * max(1, round(GLYPH_MAX_SHORT_SIDE * s / 3)) + 1
    dark = ndimage.uniform_filter((grey <= levels.foreground).astype(np.float32), size=window)
    on_dark = np.asarray(ndimage.mean(dark, labels, index=index)) >= GLYPH_MIN_DARK
    top = float(np.percentile(grey, 99))
    peak = morphology.label_maxima(grey, labels, n)[1:] >= levels.background + max(
        GLYPH_MIN_PEAK, GLYPH_PEAK_FRACTION * (top - levels.background))
    out[1:] = on_dark & peak
    return out


def _text_line_direction(boxes: np.ndarray) -> np.ndarray:
    """For glyph bounding boxes ``(top, bottom, left, right)``: 1 if a glyph has a
    neighbour in a horizontal line of text, else 2 if in a vertical one (rotated viewer
    text), else 0.

    Neighbours overlap across the line by at least half the smaller height, have heights
    within a factor of two, and are at most one and a half heights apart along it. Bits
    of anatomy and noise rarely line up like that; letters and words always do.
    """
    def has_neighbour(a0, a1, b0, b1):  # (across-line start, end, along-line start, end)
        h = a1 - a0
        overlap = np.minimum(a1[:, None], a1[None]) - np.maximum(a0[:, None], a0[None])
        small, big = np.minimum(h[:, None], h[None]), np.maximum(h[:, None], h[None])
        gap = np.maximum(b0[:, None], b0[None]) - np.minimum(b1[:, None], b1[None])
        ok = (overlap >= 0.5 * small) & (big <= 2 * small) & (gap <= 1.5 * big)
        np.fill_diagonal(ok, False)
        return ok.any(axis=1)

    t, b, l, r = boxes.T.astype(np.int64)
    horizontal, vertical = has_neighbour(t, b, l, r), has_neighbour(l, r, t, b)
    return np.where(horizontal, 1, np.where(vertical, 2, 0)).astype(np.int8)


def _anatomy(grey: np.ndarray, levels: Levels) -> np.ndarray:
    """Boolean ``(H, W)``: everywhere within reach of tissue (head, face, neck, fat).

    Foreground opened with the stroke disc (so text cannot count as tissue), components
    of at least :data:`ANATOMY_MIN_AREA`, grown by :data:`ANATOMY_REACH`.
    """
    s = _scale(grey.shape)
    solid = morphology.binary_opening(grey > levels.foreground, _disc(round(STROKE_RADIUS * s)))
    labels, n = ndimage.label(solid)
    if n == 0:
        return solid
    large = np.bincount(labels.ravel(), minlength=n + 1) >= ANATOMY_MIN_AREA * s * s
    large[0] = False
    return morphology.binary_dilation(large[labels], _disc(round(ANATOMY_REACH * s)))


def coloured_marks(rgb: np.ndarray) -> np.ndarray:
    """Boolean ``(H, W)``: strongly coloured marks (arrows, coloured text), in full.

    The scans are grey, so a pixel whose channels differ widely is annotation. Marks are
    grown into their weakly coloured fringe (anti-aliasing, JPEG chroma bleeding) by
    hysteresis, so no tinted outline is left behind.
    """
    a = np.asarray(rgb, dtype=np.int16)
    if a.ndim != 3:
        return np.zeros(a.shape[:2], dtype=bool)
    spread = a.max(axis=2) - a.min(axis=2)
    strong = spread > COLOUR_SPREAD
    if not strong.any():
        return strong
    return ndimage.binary_propagation(strong, structure=np.ones((3, 3)),
                                      mask=spread > COLOUR_FRINGE_SPREAD)
