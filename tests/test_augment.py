"""The fused geometric augmentation: identity, centre convention, flips, bounds, serialisation."""
from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from braintumor.augment import RandomAffine, augmentation_layers, keras_augmentation_layers  # noqa: E402


def centred_disk(n=8, size=64, radius=15.0):
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    disk = (((yy - c) ** 2 + (xx - c) ** 2) < radius ** 2).astype("float32") * 255
    return np.repeat(disk[None, ..., None], n, axis=0)


def test_no_transform_is_the_identity():
    x = np.random.default_rng(0).uniform(0, 255, (4, 20, 30, 3)).astype("float32")
    layer = RandomAffine(rotation=0, zoom=0, translation=0, flip=False, seed=0)
    np.testing.assert_array_equal(np.asarray(layer(x)), x)


def test_rotation_turns_about_the_image_centre():
    # A centred disk is unchanged by any rotation about the centre; an off-centre pivot moves it.
    disk = centred_disk()
    out = np.asarray(RandomAffine(rotation=0.5, zoom=0, translation=0, flip=False, seed=3)(disk))
    assert np.abs(out - disk).mean() < 3.0  # interpolation at the rim only
    assert out.sum() == pytest.approx(disk.sum(), rel=0.01)


def test_flip_mirrors_left_right_and_only_some_images():
    x = np.random.default_rng(1).uniform(0, 1, (32, 8, 10, 1)).astype("float32")
    out = np.asarray(RandomAffine(rotation=0, zoom=0, translation=0, flip=True, seed=3)(x))
    flipped = [np.allclose(o, a[:, ::-1], atol=1e-5) for o, a in zip(out, x)]
    same = [np.allclose(o, a, atol=1e-5) for o, a in zip(out, x)]
    assert all(f or s for f, s in zip(flipped, same))
    assert 4 < sum(flipped) < 28


def test_translation_and_zoom_stay_within_their_ranges():
    disk = centred_disk(n=64, size=96, radius=12.0)
    moved = np.asarray(RandomAffine(rotation=0, zoom=0, translation=0.1, flip=False, seed=5)(disk))
    cols = np.arange(96)
    centres = (moved[..., 0].sum(axis=1) * cols).sum(axis=1) / moved[..., 0].sum(axis=(1, 2))
    assert np.abs(centres - 47.5).max() <= 0.1 * 96 + 0.5
    assert np.abs(centres - 47.5).max() > 2  # and it does move them
    zoomed = np.asarray(RandomAffine(rotation=0, zoom=0.2, translation=0, flip=False, seed=5)(disk))
    ratio = zoomed.sum(axis=(1, 2, 3)) / disk.sum(axis=(1, 2, 3))
    assert ratio.min() >= 1 / 1.2 ** 2 - 0.03 and ratio.max() <= 1 / 0.8 ** 2 + 0.03
    assert ratio.max() - ratio.min() > 0.2


def test_not_training_returns_the_input_and_seeds_repeat():
    x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype("float32")
    np.testing.assert_array_equal(np.asarray(augmentation_layers(7)(x, training=False)), x)
    a = np.asarray(augmentation_layers(7)(x, training=True))
    b = np.asarray(augmentation_layers(7)(x, training=True))
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert not np.allclose(a, x)


def test_layer_round_trips_through_keras_serialisation():
    layer = RandomAffine(rotation=0.1, zoom=0.05, translation=0.02, flip=False, seed=4)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert isinstance(clone, RandomAffine)
    assert (clone.rotation, clone.zoom, clone.translation, clone.flip) == (0.1, 0.05, 0.02, False)


def test_fused_and_per_layer_augmentation_keep_the_same_brightness_scale():
    # Same transform family: mean intensity of a large batch agrees within a few percent.
    x = np.random.default_rng(3).uniform(50, 200, (64, 48, 48, 3)).astype("float32")
    fused = np.asarray(augmentation_layers(1)(x, training=True))
    per_layer = np.asarray(keras_augmentation_layers(1)(x, training=True))
    assert fused.mean() == pytest.approx(per_layer.mean(), rel=0.05)
