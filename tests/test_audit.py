"""Shortcut audit: head detection, burned-in text detection, the crop-mask mitigation and
the probe harness, on synthetic heads with text planted in one class; one integration
test on real CT tumour images (which carry patient names: nothing is written out).
"""
from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

from braintumor import audit, probes
from braintumor.images import resize_pad
from braintumor.pipeline import PREPROCESSORS, get_preprocessor, prepare_image

SIZE = 160  # small synthetic images keep the tests fast
TEXT_LINES = ("DOE JOHN 48Y", "2019 MAY 21", "ACQ 12:05:56", "HOSP CENTRAL")


def synthetic_head(rng: np.random.Generator, text: bool, size: int = SIZE) -> np.ndarray:
    """A CT-like slice: bright skull ellipse, noisy grey brain, random size and position;
    with ``text``, viewer-style lines burned into the top-left corner."""
    yy, xx = np.mgrid[:size, :size].astype(float)
    cy, cx = size / 2 + rng.uniform(-6, 6, 2)
    ry, rx = size * rng.uniform(0.30, 0.36), size * rng.uniform(0.26, 0.32)
    grey = np.zeros((size, size))
    grey[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = 250
    brain = ((yy - cy) / (ry - 5)) ** 2 + ((xx - cx) / (rx - 5)) ** 2 <= 1
    grey[brain] = rng.uniform(80, 120) + rng.normal(0, 6, brain.sum())
    img = Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8)).convert("RGB")
    if text:
        draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=8)
        for i, line in enumerate(TEXT_LINES[:3]):
            draw.text((2, 1 + 8 * i), line, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def text_pixels(size: int = SIZE) -> np.ndarray:
    """Where the planted text is (drawn alone on black)."""
    img = Image.new("L", (size, size))
    draw, font = ImageDraw.Draw(img), ImageFont.load_default(size=8)
    for i, line in enumerate(TEXT_LINES[:3]):
        draw.text((2, 1 + 8 * i), line, fill=255, font=font)
    return np.asarray(img) > 100


@pytest.fixture(scope="module")
def images():
    """60 images per class: class 1 carries text, class 0 does not; heads alike."""
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 60)
    return [synthetic_head(rng, bool(label)) for label in y], y


def probe_rows(y: np.ndarray) -> pd.DataFrame:
    """Manifest-like rows: 30/15/15 per class in train/val/test, every image its own group."""
    split = np.tile(np.array(["train"] * 30 + ["val"] * 15 + ["test"] * 15), 2)
    return pd.DataFrame({"path": [f"img{i}" for i in range(len(y))], "y": y,
                         "group": [f"g{i}" for i in range(len(y))], "split": split})


# ------------------------------------------------------------------------------ head
def test_crop_to_head_finds_a_planted_disc():
    size, (cy, cx), r = 200, (90, 120), 40
    yy, xx = np.mgrid[:size, :size]
    img = np.zeros((size, size, 3), np.uint8)
    img[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = 180
    top, bottom, left, right = audit.head_bbox(img, margin=0)
    assert abs(top - (cy - r)) <= 1 and abs(bottom - (cy + r + 1)) <= 1
    assert abs(left - (cx - r)) <= 1 and abs(right - (cx + r + 1)) <= 1
    crop = audit.crop_to_head(img, margin=4)
    assert crop.shape[:2] == (bottom - top + 8, right - left + 8)
    mask = audit.head_mask(img, margin=0)
    assert abs(int(mask.sum()) - np.pi * r * r) < 0.03 * np.pi * r * r


def test_head_mask_leaves_out_text_and_blank_outside_head_removes_it(images):
    imgs, y = images
    img = imgs[np.flatnonzero(y == 1)[0]]
    text = text_pixels()
    assert not (audit.head_mask(img) & text).any()
    assert audit.blank_outside_head(img)[text].max() == 0
    assert audit.blank_head(img)[audit.head_mask(img)].max() == 0


def test_empty_image_has_no_head():
    blank = np.zeros((50, 60, 3), np.uint8)
    assert not audit.head_mask(blank).any()
    assert audit.head_bbox(blank) is None
    assert audit.crop_to_head(blank).shape == blank.shape
    assert audit.crop_mask(blank).shape == blank.shape


# ------------------------------------------------------------------------------ text
def test_text_detector_finds_planted_text_and_nothing_on_clean_images(images):
    imgs, y = images
    found = np.array([audit.has_overlay_text(img) for img in imgs])
    assert found[y == 1].all()
    assert not found[y == 0].any()
    text = text_pixels()
    for img in (imgs[i] for i in np.flatnonzero(y == 1)[:5]):
        mask = audit.detect_overlay_text(img)
        assert mask[text].mean() > 0.9  # nearly every stroke pixel covered
        core = audit.head_core(img)
        assert (mask & core).sum() < 0.002 * core.sum()  # and next to nothing of the head
        assert audit.mask_overlay_text(img)[text].max() == 0


def test_coloured_marks_count_as_annotation():
    rng = np.random.default_rng(1)
    img = synthetic_head(rng, text=False).copy()
    img[70:80, 60:75] = (255, 220, 0)  # a yellow arrow over the brain
    assert audit.has_overlay_text(img)
    filled = audit.crop_mask(img)
    spread = filled.astype(int).max(axis=2) - filled.astype(int).min(axis=2)
    assert spread.max() < audit.COLOUR_SPREAD  # painted over with the grey around it


def test_fill_from_surroundings_uses_the_neighbourhood():
    img = np.full((40, 40, 3), 100, np.uint8)
    img[18:22, 10:30] = 255
    mask = np.zeros((40, 40), bool)
    mask[18:22, 10:30] = True
    out = audit.fill_from_surroundings(img, mask)
    assert np.abs(out[mask].astype(int) - 100).max() <= 1
    assert (out[~mask] == img[~mask]).all()


# ------------------------------------------------------------------------ mitigation
def test_crop_mask_keeps_only_the_head(images):
    imgs, y = images
    img = imgs[np.flatnonzero(y == 1)[0]]
    canvas, core = audit.crop_mask_canvas(img)
    assert canvas[~core].max() == 0
    assert canvas[text_pixels()].max() == 0
    out = audit.crop_mask(img)
    top, bottom, left, right = audit.crop_box(core)
    assert out.shape[:2] == (bottom - top, right - left)
    assert not audit.has_overlay_text(out)


def test_crop_mask_is_registered_and_used_by_prepare_image(images):
    imgs, _ = images
    assert get_preprocessor("crop-mask") is audit.crop_mask is PREPROCESSORS["crop-mask"]
    assert pickle.loads(pickle.dumps(audit.crop_mask)) is audit.crop_mask  # process pools
    img = imgs[-1]
    prepared = prepare_image(img, 64, "crop-mask")
    assert prepared.shape == (64, 64, 3)
    assert np.array_equal(prepared, resize_pad(audit.crop_mask(img), 64))
    assert not np.array_equal(prepared, prepare_image(img, 64, "none"))


# ------------------------------------------------------------------------------ probes
def border_features(imgs, preprocess: str) -> np.ndarray:
    prepared = np.stack([prepare_image(img, SIZE, preprocess) for img in imgs])
    return probes.thumbnails(probes.blank_centre(prepared, 0.70), 32)


def test_border_probe_separates_on_text_and_drops_to_chance_after_masking(images):
    imgs, y = images
    rows = probe_rows(y)
    settings = probes.ProbeSettings(n_resamples=200, c_grid=(0.01, 0.1, 1.0))
    raw = probes.run_probe(border_features(imgs, "none"), rows, settings)
    mitigated = probes.run_probe(border_features(imgs, "crop-mask"), rows, settings)
    assert raw["accuracy"]["value"] >= 0.9
    assert mitigated["accuracy"]["value"] <= 0.65
    assert mitigated["roc_auc"]["value"] <= 0.75


def test_outside_head_view_is_empty_after_mitigation(images):
    imgs, y = images
    for img in (imgs[0], imgs[-1]):
        raw_outside, raw_head = probes.head_views(prepare_image(img, SIZE, "none"))
        outside, head = probes.head_views(prepare_image(img, SIZE, "crop-mask"))
        assert outside.max() == 0 and head.max() > 0 and raw_head.max() > 0
    assert raw_outside.max() > 200  # the text of the last image (class 1) is outside the head


def test_permutation_control_lands_at_chance():
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 60)
    x = rng.normal(size=(120, 20)) + 2.0 * y[:, None]  # perfectly learnable
    rows = probe_rows(y)
    settings = probes.ProbeSettings(n_resamples=200, c_grid=(0.01, 1.0))
    honest = probes.run_probe(x, rows, settings)
    control = probes.permutation_control(x, rows, settings)
    assert honest["accuracy"]["value"] >= 0.95
    assert 0.35 <= control["accuracy"]["value"] <= 0.65  # mean over the shufflings
    assert len(control["permutations"]) == settings.n_permutations == 5
    singles = [r["accuracy"]["value"] for r in control["permutations"]]
    assert len(set(singles)) > 1  # each shuffle differs
    assert control["accuracy"]["low"] == min(singles) and control["accuracy"]["high"] == max(singles)


def test_random_split_keeps_sizes_and_counts_leaks():
    rows = pd.DataFrame({"group": ["a", "a", "b", "b", "c", "d"],
                         "split": ["train", "train", "val", "val", "test", "test"]})
    random = probes.random_split_like(rows, seed=0)
    assert random.value_counts().to_dict() == rows["split"].value_counts().to_dict()
    assert probes.leaked_test_images(rows, rows["split"]) == 0
    leaky = pd.Series(["train", "test", "train", "val", "val", "test"])
    assert probes.leaked_test_images(rows, leaky) == 1


def test_image_statistics_columns_are_fixed_by_the_index():
    index = pd.DataFrame({"path": ["a", "b", "c"], "width": [256, 200, 256], "height": [256, 180, 256],
                          "bytes": [1000, 2000, 3000], "format": ["JPEG", "PNG", "JPEG"],
                          "mode": ["RGB", "L", "RGBA"]})
    images = np.zeros((2, 8, 8, 3), np.uint8)
    x = probes.image_statistics(index.iloc[[2, 0]].reset_index(drop=True), index, images)
    assert x.shape == (2, 6 + 2 + 3)  # 6 numeric, 2 formats, 3 modes


# --------------------------------------------------------------------- real CT tumours
@pytest.mark.integration
def test_mitigation_removes_text_from_real_ct_tumour_images(real_dataset):
    from braintumor.images import load_rgb

    folder = real_dataset / "Brain Tumor CT scan Images" / "Tumor"
    paths = sorted(folder.iterdir())
    picks = [paths[i] for i in np.random.default_rng(0).choice(len(paths), 24, replace=False)]
    with_text = 0
    for path in picks:
        rgb = load_rgb(path)
        with_text += audit.has_overlay_text(rgb)
        canvas, core = audit.crop_mask_canvas(rgb)
        assert canvas[~core].max() == 0, path.name
        # Found again on the result, the head holds everything but the odd boundary
        # pixel (the median filter and openings of head detection are not exactly
        # idempotent): no component of even glyph size outside it, and no line of text.
        outside = (canvas.max(axis=2) > 0) & ~audit.head_mask(canvas, margin=1)
        labels, n = ndimage.label(outside, structure=np.ones((3, 3)))
        assert n == 0 or np.bincount(labels.ravel())[1:].max() < audit.GLYPH_MIN_PIXELS, path.name
        assert not audit.has_overlay_text(audit.crop_mask(rgb)), path.name
    assert with_text >= 0.7 * len(picks)
