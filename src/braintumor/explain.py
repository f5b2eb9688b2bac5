"""Grad-CAM: where in the image the evidence for a class comes from.

Works for every classifier built by :func:`braintumor.models.classifier.build_classifier`, whatever
the backbone: the backbone's output is its last convolutional feature map, so the map is
taken there (the standard Grad-CAM layer) and the head (pooling + logits) is replayed
on it under a ``tf.GradientTape``.
"""
from __future__ import annotations

import numpy as np


def _parts(model):
    """(backbone, logits dense layer) of a braintumor classifier."""
    import keras

    backbone = next((layer for layer in model.layers if isinstance(layer, keras.Model)), None)
    if backbone is None:
        raise ValueError("Grad-CAM needs a braintumor classifier (a model with a nested backbone)")
    return backbone, model.get_layer("logits")


def gradcam(model, images: np.ndarray, class_index: int | np.ndarray | None = None) -> np.ndarray:
    """Grad-CAM heat-maps in ``[0, 1]``, shape ``(N, H, W)`` at the input resolution.

    ``images`` are prepared ``uint8``/float 0–255 arrays ``(N, H, W, 3)``. ``class_index``
    is the class to explain (default: the predicted one). For a binary (sigmoid) head,
    class 1 follows the tumour logit and class 0 its negative.
    """
    import tensorflow as tf

    backbone, dense = _parts(model)
    x = tf.convert_to_tensor(np.asarray(images, dtype=np.float32))
    with tf.GradientTape() as tape:
        fmap = backbone(x, training=False)
        tape.watch(fmap)
        logits = dense(tf.reduce_mean(fmap, axis=(1, 2)))
        logits = tf.cast(logits, tf.float32)
        binary = logits.shape[-1] == 1
        if class_index is None:
            idx = (tf.cast(logits[:, 0] > 0, tf.int32) if binary
                   else tf.argmax(logits, axis=-1, output_type=tf.int32))
        else:
            idx = tf.broadcast_to(tf.constant(class_index, tf.int32), [tf.shape(x)[0]])
        if binary:
            target = tf.where(idx == 1, logits[:, 0], -logits[:, 0])
        else:
            target = tf.gather(logits, idx, axis=1, batch_dims=1)
    grads = tape.gradient(target, fmap)
    weights = tf.reduce_mean(tf.cast(grads, tf.float32), axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * tf.cast(fmap, tf.float32), axis=-1))
    cam = tf.image.resize(cam[..., None], x.shape[1:3], method="bilinear")[..., 0].numpy()
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1)
    return np.where(peak > 0, cam / np.where(peak > 0, peak, 1), 0.0)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """The heat-map blended over the image, ``uint8 (H, W, 3)``."""
    from matplotlib import colormaps

    colours = colormaps[cmap](np.clip(heatmap, 0, 1))[..., :3] * 255.0
    blended = (1 - alpha) * np.asarray(image, dtype=np.float32) + alpha * colours
    return np.clip(blended, 0, 255).astype(np.uint8)
