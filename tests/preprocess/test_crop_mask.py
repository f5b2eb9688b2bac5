"""Preprocessing: head detection, burned-in text detection and the crop-mask mitigation,
on synthetic heads with text planted in one class; one integration test on real CT tumour
images (which carry patient names: nothing is written out).
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest
from scipy import ndimage

from braintumor.data.images import resize_pad
import braintumor.preprocess.crop_mask as cm
import braintumor.preprocess.text as ot
from braintumor.preprocess import PREPROCESSORS, get_preprocessor, glyphs, head, prepare_image
from heads import images, synthetic_head, text_pixels  # noqa: F401 - images is a fixture


# ------------------------------------------------------------------------------ head
def test_crop_to_head_finds_a_planted_disc():
    size, (cy, cx), r = 200, (90, 120), 40
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3), np.uint8)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 180
    top, bottom, left, right = head.head_bbox(img, margin=0)
    assert abs(top - (cy - r)) <= 1 and abs(bottom - (cy + r + 1)) <= 1
    assert abs(left - (cx - r)) <= 1 and abs(right - (cx + r + 1)) <= 1
    crop = head.crop_to_head(img, margin=4)
    assert crop.shape[:2] == (bottom - top + 8, right - left + 8)
    mask = head.head_mask(img, margin=0)
    assert abs(int(mask.sum()) - np.pi * r * r) < 0.03 * np.pi * r * r


def test_head_mask_leaves_out_text_and_blank_outside_head_removes_it(images):
    imgs, y = images
    img = imgs[np.flatnonzero(y == 1)[0]]
    text = text_pixels()
    assert not (head.head_mask(img) & text).any()
    assert cm.blank_outside_head(img)[text].max() == 0
    assert head.blank_head(img)[head.head_mask(img)].max() == 0


def test_empty_image_has_no_head():
    blank = np.zeros((50, 60, 3), np.uint8)
    assert not head.head_mask(blank).any()
    assert head.head_bbox(blank) is None
    assert head.crop_to_head(blank).shape == blank.shape
    assert cm.crop_mask(blank).shape == blank.shape


# ------------------------------------------------------------------------------ text
def test_text_detector_finds_planted_text_and_nothing_on_clean_images(images):
    imgs, y = images
    found = np.array([ot.has_overlay_text(img) for img in imgs])
    assert found[y == 1].all()
    assert not found[y == 0].any()
    text = text_pixels()
    for img in (imgs[i] for i in np.flatnonzero(y == 1)[:5]):
        mask = ot.detect_overlay_text(img)
        assert mask[text].mean() > 0.9  # nearly every stroke pixel covered
        core = head.head_core(img)
        assert (mask & core).sum() < 0.002 * core.sum()  # and next to nothing of the head
        assert ot.mask_overlay_text(img)[text].max() == 0


def test_coloured_marks_count_as_annotation():
    rng = np.random.default_rng(1)
    img = synthetic_head(rng, text=False).copy()
    img[70:80, 60:75] = (255, 220, 0)  # a yellow arrow over the brain
    assert ot.has_overlay_text(img)
    filled = cm.crop_mask(img)
    spread = filled.astype(int).max(axis=2) - filled.astype(int).min(axis=2)
    assert spread.max() < glyphs.COLOUR_SPREAD  # painted over with the grey around it


def test_fill_from_surroundings_uses_the_neighbourhood():
    img = np.full((40, 40, 3), 100, np.uint8)
    img[18:22, 10:30] = 255
    mask = np.zeros((40, 40), bool)
    mask[18:22, 10:30] = True
    out = cm.fill_from_surroundings(img, mask)
    assert np.abs(out[mask].astype(int) - 100).max() <= 1
    assert (out[~mask] == img[~mask]).all()


# ------------------------------------------------------------------------ mitigation
def test_crop_mask_keeps_only_the_head(images):
    imgs, y = images
    img = imgs[np.flatnonzero(y == 1)[0]]
    canvas, core = cm.crop_mask_canvas(img)
    assert canvas[~core].max() == 0
    assert canvas[text_pixels()].max() == 0
    out = cm.crop_mask(img)
    top, bottom, left, right = cm.crop_box(core)
    assert out.shape[:2] == (bottom - top, right - left)
    assert not ot.has_overlay_text(out)


def test_crop_mask_is_registered_and_used_by_prepare_image(images):
    imgs, _ = images
    assert get_preprocessor("crop-mask") is cm.crop_mask is PREPROCESSORS["crop-mask"]
    assert pickle.loads(pickle.dumps(cm.crop_mask)) is cm.crop_mask  # process pools
    img = imgs[-1]
    prepared = prepare_image(img, 64, "crop-mask")
    assert prepared.shape == (64, 64, 3)
    assert np.array_equal(prepared, resize_pad(cm.crop_mask(img), 64))
    assert not np.array_equal(prepared, prepare_image(img, 64, "none"))


@pytest.mark.integration
def test_mitigation_removes_text_from_real_ct_tumour_images(real_dataset):
    from braintumor.data.images import load_rgb

    folder = real_dataset / "Brain Tumor CT scan Images" / "Tumor"
    paths = sorted(folder.iterdir())
    picks = [paths[i] for i in np.random.default_rng(0).choice(len(paths), 24, replace=False)]
    with_text = 0
    for path in picks:
        rgb = load_rgb(path)
        with_text += ot.has_overlay_text(rgb)
        canvas, core = cm.crop_mask_canvas(rgb)
        assert canvas[~core].max() == 0, path.name
        # Found again on the result, the head holds everything but the odd boundary
        # pixel (the median filter and openings of head detection are not exactly
        # idempotent): no component of even glyph size outside it, and no line of text.
        outside = (canvas.max(axis=2) > 0) & ~head.head_mask(canvas, margin=1)
        labels, n = ndimage.label(outside, structure=np.ones((3, 3)))
        assert n == 0 or np.bincount(labels.ravel())[1:].max() < glyphs.GLYPH_MIN_PIXELS, path.name
        assert not ot.has_overlay_text(cm.crop_mask(rgb)), path.name
    assert with_text >= 0.7 * len(picks)
