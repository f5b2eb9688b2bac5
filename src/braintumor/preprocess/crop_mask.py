"""The ``crop-mask`` mitigation: text on the head painted over with the tissue around it,
everything outside the head blanked, the image cropped to the head.

:mod:`braintumor.preprocess` registers :func:`crop_mask` as ``"crop-mask"``, so training,
evaluation and predict all apply it when a model was trained with it.
:func:`blank_outside_head` is the de-identification every picture shown to people goes
through (raw CT tumour images carry patient names).
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .head import _grown, _scale, bbox_of, head_core
from .text import detect_overlay_text, mask_overlay_text

CROP_MARGIN = 4  # pixels of black kept around the head by crop_mask (256-px scale)
CANVAS_PASSES = 4  # head searches on crop-mask's own result, until it stops changing


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
