"""The crop-mask-zscore preprocessing: the head's grey levels standardised, so a global
brightness/contrast change (one collection's windowing against another's) leaves no trace."""
from __future__ import annotations

import numpy as np

from braintumor.preprocess import crop_mask as cm
from braintumor.preprocess import get_preprocessor, prepare_image, zscore


def _head(size: int = 160, level: float = 120.0, gain: float = 1.0, tint=(1.0, 1.0, 1.0)) -> np.ndarray:
    """A disc 'head' with an inner brighter 'lesion', at a given level, contrast and colour tint."""
    yy, xx = np.mgrid[:size, :size]
    rng = np.random.default_rng(0)
    grey = np.zeros((size, size), np.float32)
    disc = (yy - 80) ** 2 + (xx - 80) ** 2 <= 60 ** 2
    grey[disc] = level + gain * rng.normal(0, 12, disc.sum())
    grey[(yy - 70) ** 2 + (xx - 95) ** 2 <= 12 ** 2] += gain * 50
    rgb = np.clip(grey[..., None] * np.array(tint, np.float32), 0, 255)
    return rgb.astype(np.uint8)


def test_standardise_gives_zero_mean_unit_spread_inside_the_head_and_black_outside():
    img = _head()
    head = img[..., 0] > 0
    out = zscore.standardise(img, head)
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert (out[~head] == 0).all() and (out[head] >= 1).all()
    z = (out[head][:, 0].astype(float) - 128) / (254 / (2 * zscore.CLIP_SD))
    assert abs(z.mean()) < 0.05 and abs(z.std() - 1) < 0.1
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()  # grey


def test_level_contrast_and_tint_of_the_acquisition_do_not_survive():
    a = get_preprocessor("crop-mask-zscore")(_head(level=90, gain=0.8))
    b = get_preprocessor("crop-mask-zscore")(_head(level=150, gain=1.3, tint=(1.0, 0.9, 0.8)))
    plain_a, plain_b = cm.crop_mask(_head(level=90, gain=0.8)), cm.crop_mask(_head(level=150, gain=1.3))
    assert a.shape == b.shape == plain_a.shape  # same head, same crop as crop-mask
    assert np.abs(plain_a.astype(int) - plain_b.astype(int)).mean() > 20
    assert np.abs(a.astype(int) - b.astype(int)).mean() < 3  # what is left is rounding


def test_the_lesion_stays_brighter_than_the_tissue_around_it():
    out = get_preprocessor("crop-mask-zscore")(_head())
    grey = out[..., 0].astype(float)
    assert grey.max() == 255 or grey.max() > 200
    assert np.median(grey[grey > 0]) < 150


def test_a_flat_or_empty_image_does_not_divide_by_zero():
    blank = np.zeros((40, 50, 3), np.uint8)
    assert (get_preprocessor("crop-mask-zscore")(blank) == 0).all()
    flat = np.full((40, 50, 3), 77, np.uint8)
    out = zscore.standardise(flat, np.ones((40, 50), bool))
    assert np.isfinite(out).all() and (out == 128).all()
    assert prepare_image(flat, 32, "crop-mask-zscore").shape == (32, 32, 3)
