"""The ``acquisition`` recipe: phase-2 augmentation that randomises how an image was acquired.

Healthy and tumour images of the Kaggle set come from different collections, so a model can
separate them by scanner contrast, bias field, sharpness, noise, resolution and JPEG quality
instead of by the tumour. This recipe randomises each of those per image, independently of
the label, so none of them predicts it any more; anatomy and lesions are left where they are
(no geometry, no local intensity change larger than the transforms below).

Per image, each transform is applied with probability :data:`PROBABILITY` (0.5), so every
cue is seen both perturbed and clean for both classes, in this order (the order of a real
acquisition: coil, optics, detector, resampling, display window, storage):

==================  =====================================================================
bias field          smooth multiplicative field ``exp(a·g)``, ``g`` a random 4×4 grid in
                    [−1, 1] upsampled bicubically, ``a ~ U(0, 0.25)``: ×0.78–1.28
blur                Gaussian, ``sigma ~ U(0, 1.5)`` px (separable, reflect padding)
noise               additive, ``sigma ~ U(0, 8)`` grey levels, the same for R, G and B;
                    Gaussian or (half the time) Rician (magnitude of a complex signal)
resolution          downsample by ``f ~ U(0.4, 1)`` (area), upsample back (bilinear)
gamma               ``255·(x/255)^g``, ``g`` log-uniform in [0.6, 1.6]
window              ``255·(x − lo)/(hi − lo)`` clipped, ``lo ~ U(0, 0.08)·255``,
                    ``hi ~ U(0.85, 1.25)·255``: contrast ×0.8–1.3, never lifts black
JPEG                re-encoded at quality ``~ U{30, …, 95}``
==================  =====================================================================

**Black stays black.** The crop-mask images have an exactly black background, and real test
images never have anything else there, so the transforms must not paint a texture into it
(that would be a train/test mismatch and would blur the "this is the head" edge crop-mask
draws). Each transform keeps a flat background flat: gamma, window, blur, resolution and JPEG
map a constant to (nearly) a constant by construction; the bias field and the noise act on
the signal *above the image's black level*, taken as the image's minimum (``0`` for a
crop-mask image, but the usual augmentation's ``RandomBrightness``/``RandomContrast`` run
first and may lift the whole background to a constant up to ~25 grey levels, so ``0`` cannot
be assumed). The noise amplitude ramps from 0 at the black level to full strength 8 grey
levels above it, so noise never starts at a hard edge. Blur and resampling do spread the
head's edge a few pixels into the background, as a blurrier scanner would.

**Phase 1 is left clean** (:func:`synthetic` returns ``None``): phase 1 fits a linear head on
features of the frozen backbone, extracted once; a perturbed copy of the training split would
double that extraction (the dominant cost of phase 1, minutes per task on a CPU), and
phase 2, where the recipe acts, fine-tunes from that head anyway. The benefit is not
measured; a head-only run (``--epochs-finetune 0``) with this recipe is the plain run.

The layers need the TensorFlow backend (JPEG coding is ``tf.image``), as ``tf.data`` does.
Keras is imported on first use of a layer (:func:`augmentation` or an attribute such as
``acquisition.RandomJpeg``), not when the recipe is listed or checked; the layer classes
live in this module so that a study's code fingerprint of an ``acquisition`` arm counts them
(:func:`braintumor.studies.spec.code_fingerprint`) and other arms' does not.
"""
from __future__ import annotations

import functools
import math

DESCRIPTION = ("per-image random acquisition (bias field, blur, noise, resolution, gamma, "
               "window, JPEG quality) in phase-2 augmentation")
BINARY_ONLY = False

PROBABILITY = 0.5  # of each transform, per image
LAYERS = ("RandomBiasField", "RandomBlur", "RandomNoise", "RandomResolution", "RandomGamma",
          "RandomWindow", "RandomJpeg")  # in the order augmentation() applies them


def augmentation(seed: int) -> list:
    """The seven acquisition layers, each seeded from ``seed`` (its own stream per layer)."""
    classes = _layer_classes()
    return [classes[name](probability=PROBABILITY, seed=_layer_seed(seed, i))
            for i, name in enumerate(LAYERS)]


def _layer_seed(seed: int, i: int) -> int:
    # Far from seed .. seed+5, the usual augmentation's seeds, and from other seeds' layers.
    return int(seed) * 1000 + 100 + i


def __getattr__(name: str):
    if name in LAYERS or name == "AcquisitionLayer":
        return _layer_classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.cache
def _layer_classes() -> dict[str, type]:
    """Define (and register with Keras) the layer classes, once, on first use."""
    import keras
    import tensorflow as tf

    register = keras.saving.register_keras_serializable(package="braintumor")

    class AcquisitionLayer(keras.layers.Layer):
        """Base: float32 ``(N, H, W, C)`` images in 0–255 in and out; with probability
        ``probability`` per image the transform is applied, else the image passes unchanged.
        ``training=False`` is the identity."""

        def __init__(self, probability=PROBABILITY, seed=None, **kwargs):
            kwargs.setdefault("dtype", "float32")  # image arithmetic, also under mixed precision
            super().__init__(**kwargs)
            self.probability, self.seed = float(probability), seed
            self.seed_generator = keras.random.SeedGenerator(seed)

        def call(self, images, training=True):
            if not training:
                return images
            images = tf.convert_to_tensor(images, tf.float32)
            chosen = tf.where(self.uniform(tf.shape(images)[0]) < self.probability)[:, 0]

            def transformed():
                # Only the chosen images are transformed (half the work at p = 0.5).
                some = tf.gather(images, chosen)
                out = tf.clip_by_value(self.transform(some, tf.shape(some)[0]), 0.0, 255.0)
                return tf.tensor_scatter_nd_update(images, chosen[:, None], out)

            return tf.cond(tf.size(chosen) > 0, transformed, lambda: images)

        def transform(self, images, n):
            """The transform of every one of the ``n`` images (float32, 0–255)."""
            raise NotImplementedError

        def uniform(self, shape, low=0.0, high=1.0):
            shape = (shape,) if not isinstance(shape, (tuple, list)) else shape
            return keras.random.uniform(shape, low, high, seed=self.seed_generator)

        def normal(self, shape):
            return keras.random.normal(shape, seed=self.seed_generator)

        def compute_output_shape(self, input_shape):
            return input_shape

        def get_config(self):
            return {**super().get_config(), "probability": self.probability, "seed": self.seed}

    def black_level(images):
        """Per-image black level ``(N, 1, 1, 1)``: the image's minimum (see module docstring)."""
        return tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)

    @register
    class RandomBiasField(AcquisitionLayer):
        """Smooth multiplicative intensity field (coil sensitivity, beam hardening):
        ``exp(a·g)``, ``g`` a ``grid × grid`` array of uniform values in [−1, 1] upsampled
        bicubically to the image, ``a ~ U(0, amplitude)``. Multiplies the signal above the
        black level, so a flat background stays flat. (A grid rather than a polynomial:
        a polynomial normalised to a maximum peaks in the corners, outside the head.)"""

        def __init__(self, amplitude=0.25, grid=4, **kwargs):
            super().__init__(**kwargs)
            self.amplitude, self.grid = float(amplitude), int(grid)

        def transform(self, images, n):
            coarse = self.uniform((n, self.grid, self.grid, 1), -1.0, 1.0)
            g = tf.image.resize(coarse, tf.shape(images)[1:3], method="bicubic")
            a = self.uniform(n, 0.0, self.amplitude)[:, None, None, None]
            black = black_level(images)
            return black + (images - black) * tf.exp(a * g)

        def get_config(self):
            return {**super().get_config(), "amplitude": self.amplitude, "grid": self.grid}

    @register
    class RandomBlur(AcquisitionLayer):
        """Gaussian blur, ``sigma ~ U(0, max_sigma)`` px per image, as one separable depthwise
        convolution over the whole batch (each image's channels get that image's kernel)."""

        def __init__(self, max_sigma=1.5, **kwargs):
            super().__init__(**kwargs)
            self.max_sigma = float(max_sigma)

        def transform(self, images, n):
            radius = max(1, int(round(3.0 * self.max_sigma)))
            sigma = tf.maximum(self.uniform(n, 0.0, self.max_sigma), 1e-3)
            t = tf.range(-radius, radius + 1, dtype=tf.float32)
            k = tf.exp(-0.5 * (t[None, :] / sigma[:, None]) ** 2)
            k /= tf.reduce_sum(k, axis=1, keepdims=True)  # (N, K)
            shape = tf.shape(images)
            h, w, c = shape[1], shape[2], images.shape[-1]
            k = tf.repeat(k, c, axis=0)  # (N*C, K), image-major
            # (N, H, W, C) -> (1, H, W, N*C): every image-channel becomes one depthwise channel.
            x = tf.reshape(tf.transpose(images, [1, 2, 0, 3]), (1, h, w, n * c))
            x = tf.pad(x, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
            kt = tf.transpose(k)  # (K, N*C)
            x = tf.nn.depthwise_conv2d(x, kt[None, :, :, None], [1, 1, 1, 1], "VALID")
            x = tf.nn.depthwise_conv2d(x, kt[:, None, :, None], [1, 1, 1, 1], "VALID")
            return tf.transpose(tf.reshape(x, (h, w, n, c)), [2, 0, 1, 3])

        def get_config(self):
            return {**super().get_config(), "max_sigma": self.max_sigma}

    @register
    class RandomNoise(AcquisitionLayer):
        """Additive noise, ``sigma ~ U(0, max_sigma)`` grey levels per image, one noise
        image for all channels (grey stays grey). With probability ``rician`` per image it
        is Rician — ``sqrt((x + s·n1)² + (s·n2)²)``, the magnitude noise of MRI — else
        Gaussian. Only on the signal: the amplitude ramps from 0 at the image's black level
        to full at ``ramp`` grey levels above it, so a flat background stays flat."""

        def __init__(self, max_sigma=8.0, rician=0.5, ramp=8.0, **kwargs):
            super().__init__(**kwargs)
            self.max_sigma, self.rician, self.ramp = float(max_sigma), float(rician), float(ramp)

        def transform(self, images, n):
            shape = (n, tf.shape(images)[1], tf.shape(images)[2], 1)
            sigma = self.uniform(n, 0.0, self.max_sigma)[:, None, None, None]
            signal = tf.reduce_mean(images, axis=-1, keepdims=True) - black_level(images)
            s = sigma * tf.clip_by_value(signal / self.ramp, 0.0, 1.0)
            n1, n2 = s * self.normal(shape), s * self.normal(shape)
            gaussian = images + n1
            rician = tf.sqrt(tf.square(images + n1) + tf.square(n2))
            use_rician = (self.uniform(n) < self.rician)[:, None, None, None]
            return tf.where(use_rician, rician, gaussian)

        def get_config(self):
            return {**super().get_config(), "max_sigma": self.max_sigma, "rician": self.rician,
                    "ramp": self.ramp}

    @register
    class RandomResolution(AcquisitionLayer):
        """Downsample by ``f ~ U(min_factor, 1)`` (area averaging, i.e. anti-aliased) and
        upsample back to the input size (bilinear): a lower-resolution acquisition or a
        smaller original file. Per image (``tf.map_fn``)."""

        def __init__(self, min_factor=0.4, **kwargs):
            super().__init__(**kwargs)
            self.min_factor = float(min_factor)

        def transform(self, images, n):
            factor = self.uniform(n, self.min_factor, 1.0)
            size = tf.shape(images)[1:3]

            def one(args):
                image, f = args
                small = tf.maximum(tf.cast(tf.round(tf.cast(size, tf.float32) * f), tf.int32), 1)
                down = tf.image.resize(image, small, method="area")
                return tf.ensure_shape(tf.image.resize(down, size, method="bilinear"), image.shape)

            return tf.map_fn(one, (images, factor), fn_output_signature=tf.float32)

        def get_config(self):
            return {**super().get_config(), "min_factor": self.min_factor}

    @register
    class RandomGamma(AcquisitionLayer):
        """``255·(x/255)^g``, ``g`` log-uniform in [min_gamma, max_gamma]: keeps black and
        white, bends the grey levels between (a different contrast curve)."""

        def __init__(self, min_gamma=0.6, max_gamma=1.6, **kwargs):
            super().__init__(**kwargs)
            self.min_gamma, self.max_gamma = float(min_gamma), float(max_gamma)

        def transform(self, images, n):
            g = tf.exp(self.uniform(n, math.log(self.min_gamma), math.log(self.max_gamma)))
            x = tf.clip_by_value(images, 0.0, 255.0) / 255.0
            return 255.0 * tf.pow(x, g[:, None, None, None])

        def get_config(self):
            return {**super().get_config(), "min_gamma": self.min_gamma, "max_gamma": self.max_gamma}

    @register
    class RandomWindow(AcquisitionLayer):
        """A different display window: ``255·(x − lo)/(hi − lo)``, clipped, with
        ``lo ~ U(0, max_low)·255`` and ``hi ~ U(min_high, max_high)·255``. ``lo ≥ 0`` so black
        stays black (a window below 0 would lift the background); ``hi > 255`` lowers the
        contrast, ``hi < 255`` raises it and saturates the brightest levels."""

        def __init__(self, max_low=0.08, min_high=0.85, max_high=1.25, **kwargs):
            super().__init__(**kwargs)
            self.max_low, self.min_high, self.max_high = float(max_low), float(min_high), float(max_high)

        def transform(self, images, n):
            lo = self.uniform(n, 0.0, self.max_low * 255.0)[:, None, None, None]
            hi = self.uniform(n, self.min_high * 255.0, self.max_high * 255.0)[:, None, None, None]
            return 255.0 * (images - lo) / (hi - lo)

        def get_config(self):
            return {**super().get_config(), "max_low": self.max_low, "min_high": self.min_high,
                    "max_high": self.max_high}

    @register
    class RandomJpeg(AcquisitionLayer):
        """JPEG re-encoding at a quality drawn uniformly from ``min_quality .. max_quality``
        per image (``tf.image.adjust_jpeg_quality`` in ``tf.map_fn``; runs in graph mode, so
        inside ``tf.data``). Needs 1 or 3 channels; rounds to whole grey levels."""

        def __init__(self, min_quality=30, max_quality=95, **kwargs):
            super().__init__(**kwargs)
            self.min_quality, self.max_quality = int(min_quality), int(max_quality)

        def transform(self, images, n):
            quality = tf.cast(tf.floor(self.uniform(n, self.min_quality, self.max_quality + 1)), tf.int32)
            quality = tf.minimum(quality, self.max_quality)
            pixels = tf.cast(tf.round(tf.clip_by_value(images, 0.0, 255.0)), tf.uint8)

            def one(args):
                image, q = args
                return tf.ensure_shape(tf.image.adjust_jpeg_quality(image, q), image.shape)

            coded = tf.map_fn(one, (pixels, quality), fn_output_signature=tf.uint8)
            return tf.cast(coded, tf.float32)

        def get_config(self):
            return {**super().get_config(), "min_quality": self.min_quality,
                    "max_quality": self.max_quality}

    classes = {c.__name__: c for c in (RandomBiasField, RandomBlur, RandomNoise, RandomResolution,
                                       RandomGamma, RandomWindow, RandomJpeg)}
    for c in classes.values():
        c.__module__, c.__qualname__ = __name__, c.__name__
    return {**classes, "AcquisitionLayer": AcquisitionLayer}
