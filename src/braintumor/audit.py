"""Image operations of the shortcut audit: where is the head, what is burned-in text, and
the ``crop-mask`` preprocessing that removes both as cues.

CT tumour images in this dataset carry burned-in viewer text (dates, hospital, patient
names) around the head; healthy CT images carry head-holder arcs instead; MRI sources
differ in background noise and framing. None of that is anatomy, and all of it lets a
classifier tell the classes (sources) apart. Everything here works on decoded ``uint8``
RGB arrays ``(H, W, 3)`` and is deterministic:

* :func:`head_mask` / :func:`head_bbox` / :func:`crop_to_head` find the head: pixels
  above the background level (median-filtered first when the background is noisy),
  opened so that thin strokes (text, frame lines, head-holder arcs) fall away, the
  largest component closed and filled, then trimmed by a wider opening that cuts off
  text blobs stuck to the skull (:func:`head_core`).
* :func:`detect_overlay_text` finds burned-in annotation: bright components outside
  the head that are glyph-sized, drawn on dark ground at full contrast and standing in
  lines; the continuation of those lines onto the head (:func:`text_in_head`); text
  written over the head in the image margins when the head fills the frame; coloured
  marks. :func:`mask_overlay_text` blanks it; :func:`scan_glyphs` says what was found.
* :func:`crop_mask` is the mitigation: text on the head painted over with the tissue
  around it, everything outside the head blanked, the image cropped to the head.
  :mod:`braintumor.pipeline` registers it as ``"crop-mask"``, so training, evaluation
  and predict all apply it when a model was trained with it.

Sizes (structuring elements, glyph limits) are given for a 256-px image, the longer side
of every image in the shared mirror, and scaled with the image, so originals up to
1,446 px behave the same way.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

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
CROP_MARGIN = 4  # pixels of black kept around the head by crop_mask (256-px scale)
CANVAS_PASSES = 4  # head searches on crop-mask's own result, until it stops changing


# --------------------------------------------------------------------------- helpers
def _grey(rgb: np.ndarray) -> np.ndarray:
    """Float grey image; the channel maximum, so coloured annotation counts as bright."""
    a = np.asarray(rgb)
    return a.max(axis=2).astype(np.float32) if a.ndim == 3 else a.astype(np.float32)


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
    head = _largest_component(ndimage.binary_opening(fg, structure=small))
    if not head.any():  # nothing survived the opening: a tiny or nearly empty image
        return _largest_component(fg)
    head = ndimage.binary_fill_holes(ndimage.binary_closing(head, structure=small, border_value=0))
    trimmed = _largest_component(
        ndimage.binary_opening(head, structure=_disc(max(1, round(TRIM_RADIUS * s)))))
    return trimmed if trimmed.any() else head


def head_mask(rgb: np.ndarray, margin: int = 3) -> np.ndarray:
    """Boolean ``(H, W)`` mask of the head, grown by ``margin`` pixels.

    Text glyphs are small and separate from the skull (or are cut off it by the
    openings in :func:`head_core`), so they fall outside the mask.
    """
    return _grown(head_core(rgb), margin)


def _grown(mask: np.ndarray, margin: int) -> np.ndarray:
    if margin > 0 and mask.any():
        return ndimage.binary_dilation(mask, structure=_disc(margin))
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


def blank_outside_head(rgb: np.ndarray, margin: int = 3, mask_text: bool = True) -> np.ndarray:
    """The image with everything outside :func:`head_mask` set to black.

    With ``mask_text`` (the default, for any picture shown to people) burned-in text
    found on the head's rim or over it (:func:`detect_overlay_text`) is blanked too, so
    a line of text crossing the skull cannot leave a patient's name readable.
    """
    out = np.array(rgb, copy=True)
    core = head_core(rgb)
    hide = ~_grown(core, margin)
    if mask_text:
        hide |= detect_overlay_text(rgb, core)
    out[hide] = 0
    return out


def blank_head(rgb: np.ndarray, margin: int = 3) -> np.ndarray:
    """The image with the head (:func:`head_mask`) set to black: only what surrounds it."""
    out = np.array(rgb, copy=True)
    out[head_mask(rgb, margin)] = 0
    return out


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
        touches_core[np.unique(labels[ndimage.binary_dilation(core, structure=np.ones((3, 3)))])] = True
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
        out |= ndimage.white_tophat(grey, footprint=disc) > contrast
    if "dark" in kinds:
        out |= ndimage.black_tophat(grey, footprint=disc) > contrast
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
    peak = np.asarray(ndimage.maximum(grey, labels, index=index)) >= levels.background + max(
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
    solid = ndimage.binary_opening(grey > levels.foreground, structure=_disc(round(STROKE_RADIUS * s)))
    labels, n = ndimage.label(solid)
    if n == 0:
        return solid
    large = np.bincount(labels.ravel(), minlength=n + 1) >= ANATOMY_MIN_AREA * s * s
    large[0] = False
    return ndimage.binary_dilation(large[labels], structure=_disc(round(ANATOMY_REACH * s)))


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
    return ndimage.binary_dilation(mask, structure=_disc(round(_scale(mask.shape))))


def has_overlay_text(rgb: np.ndarray) -> bool:
    return scan_glyphs(rgb).has_text


def mask_overlay_text(rgb: np.ndarray, text: np.ndarray | None = None) -> np.ndarray:
    """The image with detected text (or the given ``text`` mask) set to black."""
    out = np.array(rgb, copy=True)
    out[detect_overlay_text(rgb) if text is None else text] = 0
    return out


def fill_from_surroundings(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The image with ``mask`` pixels replaced by a smooth average of the pixels around them.

    A normalised convolution (Gaussian-weighted mean over unmasked neighbours), widened
    where a mark is too large for its neighbours to reach. Text removed from the head
    thus leaves tissue, not black glyph-shaped holes, which would be a text cue of their own.
    """
    out = np.array(rgb, copy=True)
    if not mask.any():
        return out
    valid = (~mask).astype(np.float32)
    values = out.astype(np.float32) * valid[..., None]
    todo = mask.copy()
    for sigma in (2.0, 4.0, 8.0, 16.0):
        sigma *= _scale(mask.shape)
        weight = ndimage.gaussian_filter(valid, sigma)
        reached = todo & (weight > 1e-3)
        for c in range(out.shape[2]):
            smooth = ndimage.gaussian_filter(values[..., c], sigma)
            out[..., c][reached] = np.clip(np.round(smooth[reached] / weight[reached]), 0, 255)
        todo &= ~reached
        if not todo.any():
            break
    out[todo] = 0
    return out


# --------------------------------------------------------------------- mitigation
def crop_mask(rgb: np.ndarray) -> np.ndarray:
    """The ``crop-mask`` preprocessing: remove text, blank outside the head, crop to it.

    What is returned holds the head core only, on black, cropped with a small margin, so
    neither text nor frame, head holder, background noise nor head size and position
    survive as cues. Text on the head is replaced by the surrounding tissue
    (:func:`fill_from_surroundings`). An image with no head found is returned with its
    text blanked, uncropped. A module-level function, so
    :func:`braintumor.pipeline.prepare_arrays` can run it in worker processes.
    """
    canvas, core = crop_mask_canvas(rgb)
    box = crop_box(core)
    if box is None:
        return canvas
    top, bottom, left, right = box
    return np.ascontiguousarray(canvas[top:bottom, left:right])


def crop_box(core: np.ndarray) -> tuple[int, int, int, int] | None:
    """The crop :func:`crop_mask` takes around a head core: its box plus a small margin."""
    return bbox_of(core, max(1, round(CROP_MARGIN * _scale(core.shape))))


def crop_mask_canvas(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`crop_mask` before the crop: ``(image, head core)`` at the input's size,
    with text removed and everything outside the core black.

    Kept at full size so that anything measured on it (the audit's probes) works at the
    same scale as on the original image.
    """
    core = head_core(rgb)
    text = detect_overlay_text(rgb, core)
    if not core.any():
        return mask_overlay_text(rgb, text), core
    out = fill_from_surroundings(rgb, text & core)
    # Blank right up to the core: a band around it would keep the roots of text lines.
    out[~core] = 0
    # Once the surroundings are black, a piece joined to the head only through them (a
    # scalp arc beyond MRI's dark skull, a jaw joined by thin bone) can stand apart; it
    # goes too, until the head found again in the result is the whole result.
    for _ in range(CANVAS_PASSES):
        again = head_core(out)
        if not again.any() or np.array_equal(again, core):
            break
        out[~again] = 0
        core = again
    return out, core
