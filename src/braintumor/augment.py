"""Training augmentation: Keras preprocessing layers, with the geometric part fused.

Imported lazily (it imports Keras); :func:`braintumor.pipeline.augmentation_layers` is the
usual entry point.
"""
from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="braintumor")
class RandomAffine(keras.layers.Layer):
    """Horizontal flip, rotation, zoom and translation as **one** affine warp per image.

    Keras' ``RandomFlip`` → ``RandomRotation`` → ``RandomZoom`` → ``RandomTranslation``
    resample every image three times (three interpolations, three passes over memory);
    composing the four into one matrix resamples once: the same family of transforms, a
    sharper result and a fraction of the time. ``rotation`` is a fraction of a full turn,
    ``zoom`` and ``translation`` fractions of the image size, as in the Keras layers.
    """

    def __init__(self, rotation=0.04, zoom=0.10, translation=0.05, flip=True, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rotation, self.zoom, self.translation, self.flip = rotation, zoom, translation, flip
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=True):
        if not training:
            return images
        ops = keras.ops
        n = ops.shape(images)[0]
        h, w = images.shape[1], images.shape[2]

        def uniform(limit):
            return keras.random.uniform((n,), -limit, limit, seed=self.seed_generator)

        theta = uniform(self.rotation * 2.0 * np.pi)
        scale = 1.0 + uniform(self.zoom)  # > 1 samples a wider area: zoom out
        tx, ty = uniform(self.translation * w), uniform(self.translation * h)
        sign = (ops.where(keras.random.uniform((n,), seed=self.seed_generator) < 0.5, -1.0, 1.0)
                if self.flip else ops.ones((n,)))
        cos, sin = ops.cos(theta) * scale, ops.sin(theta) * scale
        # Output pixel p maps to input  c + F R s (p - c - t)  (c the centre, F the flip):
        a00, a01, a10, a11 = sign * cos, -sign * sin, sin, cos
        cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
        ox, oy = cx + tx, cy + ty  # the centre after translation
        transform = ops.stack([a00, a01, cx - a00 * ox - a01 * oy,
                               a10, a11, cy - a10 * ox - a11 * oy,
                               ops.zeros((n,)), ops.zeros((n,))], axis=1)
        return ops.image.affine_transform(images, ops.cast(transform, "float32"),
                                          interpolation="bilinear", fill_mode="constant")

    def get_config(self):
        return {**super().get_config(), "rotation": self.rotation, "zoom": self.zoom,
                "translation": self.translation, "flip": self.flip, "seed": self.seed}


def augmentation_layers(seed: int, strength: float = 1.0):
    """The training augmentation as a Keras ``Sequential`` of preprocessing layers.

    Mild on purpose: slices are already centred and scaled by the scanner; horizontal
    flips are anatomically plausible (left/right hemispheres), vertical ones are not.
    """
    s = strength
    return keras.Sequential([
        RandomAffine(rotation=0.04 * s, zoom=0.10 * s, translation=0.05 * s, flip=True, seed=seed),
        keras.layers.RandomContrast(0.15 * s, seed=seed + 4),
        keras.layers.RandomBrightness(0.10 * s, value_range=(0.0, 255.0), seed=seed + 5),
    ], name="augmentation")


def keras_augmentation_layers(seed: int, strength: float = 1.0):
    """The same augmentation written with one Keras layer per transform, as the Keras
    examples do (three resamplings per image): the baseline the benchmarks compare with."""
    s = strength
    return keras.Sequential([
        keras.layers.RandomFlip("horizontal", seed=seed),
        keras.layers.RandomRotation(0.04 * s, fill_mode="constant", seed=seed + 1),
        keras.layers.RandomZoom(0.10 * s, fill_mode="constant", seed=seed + 2),
        keras.layers.RandomTranslation(0.05 * s, 0.05 * s, fill_mode="constant", seed=seed + 3),
        keras.layers.RandomContrast(0.15 * s, seed=seed + 4),
        keras.layers.RandomBrightness(0.10 * s, value_range=(0.0, 255.0), seed=seed + 5),
    ], name="keras_augmentation")
