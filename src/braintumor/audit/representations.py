"""What the shortcut probes fit on: image variants (border only, outside / inside the head),
representations (pooled backbone features, thumbnails, image statistics), burned-in text
counts, and the on-disk cache that keeps them between runs (``data/cache/probes/``,
keyed by content).
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..files import atomic_path
from ..parallel import parallel_map
from ..preprocess.glyphs import scan_glyphs
from ..preprocess.head import head_mask

# Bump when a representation (FEATURE_VERSION) or the text detector's verdict
# (TEXT_DETECTION_VERSION) changes: the cached results are then recomputed.
FEATURE_VERSION = "v3"
TEXT_DETECTION_VERSION = "v1"


# ------------------------------------------------------------------ image variants
def blank_centre(images: np.ndarray, centre: float = 0.70) -> np.ndarray:
    """Border-only images: the middle ``centre`` share of each side set to black."""
    out = np.array(images, copy=True)
    size_h, size_w = out.shape[1:3]
    mh, mw = round(size_h * (1 - centre) / 2), round(size_w * (1 - centre) / 2)
    out[:, mh:size_h - mh, mw:size_w - mw] = 0
    return out


HEAD_VIEWS = ("outside_head", "head_only")


def head_views(image: np.ndarray, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A prepared image as the ``outside_head`` and ``head_only`` probes see it.

    The head region (:func:`braintumor.preprocess.head.head_mask`, grown by ``margin`` pixels) is
    found on the image the probe sees, raw or crop-mask, and blanked (outside view) or
    kept alone (head view). Text on the head's rim is part of what the head region shows,
    so it is not masked in the head view.
    """
    image = np.asarray(image)
    head = head_mask(image, margin)
    outside, inside = np.array(image, copy=True), np.array(image, copy=True)
    outside[head] = 0
    inside[~head] = 0
    return outside, inside


def all_head_views(images: np.ndarray, margin: int = 3, progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`head_views` of every image: ``{view: uint8 (N, size, size, 3)}``."""
    out = {view: np.empty(images.shape, dtype=np.uint8) for view in HEAD_VIEWS}
    for i in tqdm(range(len(images)), desc="head views", disable=not progress, unit="img"):
        out["outside_head"][i], out["head_only"][i] = head_views(images[i], margin)
    return out


# ----------------------------------------------------------------- representations
def thumbnails(images: np.ndarray, size: int = 16) -> np.ndarray:
    """``(N, size * size)`` grey thumbnails in 0-1 (area-averaged, so no aliasing)."""
    from PIL import Image

    out = np.empty((len(images), size * size), dtype=np.float32)
    for i, img in enumerate(images):
        grey = Image.fromarray(np.asarray(img)).convert("L").resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(grey, dtype=np.float32).ravel() / 255.0
    return out


def image_statistics(rows: pd.DataFrame, index: pd.DataFrame, images: np.ndarray) -> np.ndarray:
    """Width, height, aspect, log file bytes, format and mode (one-hot, from the index),
    and mean / std grey intensity of the images the probe sees."""
    info = rows[["path"]].merge(index[["path", "width", "height", "bytes", "format", "mode"]],
                                on="path", how="left", validate="one_to_one")
    grey = np.asarray(images, dtype=np.float32).mean(axis=3).reshape(len(images), -1)
    numeric = np.column_stack([
        info["width"], info["height"], info["width"] / info["height"], np.log(info["bytes"]),
        grey.mean(axis=1), grey.std(axis=1),
    ]).astype(np.float32)
    # Categories in a fixed order (the whole index's), so every split gets the same columns.
    onehot = [(info[col] == value).to_numpy(np.float32)[:, None]
              for col in ("format", "mode") for value in sorted(index[col].unique())]
    return np.hstack([numeric, *onehot])


def backbone_features(images: np.ndarray, backbone: str, image_size: int, batch_size: int = 64,
                      progress: bool = False, cache_dir: Path | None = None) -> np.ndarray:
    """Global-average-pooled features of a frozen ImageNet backbone, ``(N, channels)``: the
    features phase 1 of training fits its head on
    (:func:`braintumor.models.classifier.extract_features`)."""
    from ..models.classifier import extract_features

    return extract_features(_feature_model(backbone, image_size, cache_dir), images, batch_size,
                            progress=progress)


_MODELS: dict[tuple[str, int], object] = {}


def _feature_model(backbone: str, image_size: int, cache_dir: Path | None = None):
    """:func:`braintumor.models.classifier.pretrained_feature_model`, built once per process."""
    from ..models.classifier import pretrained_feature_model

    key = (backbone, image_size)
    if key not in _MODELS:
        _MODELS[key] = pretrained_feature_model(backbone, image_size, cache_dir)
    return _MODELS[key]


def _cache_key(rows: pd.DataFrame, *parts, version: str = FEATURE_VERSION) -> str:
    text = "\n".join(rows["sha256"]) + "\n" + "\n".join(map(str, (*parts, version)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, saved at ``path`` (``.npy``) and loaded from there next time."""
    if path is not None and path.is_file():
        return np.load(path)
    value = compute()
    if path is not None:
        with atomic_path(path, suffix=".npy") as tmp:
            np.save(tmp, value)
    return value


# ------------------------------------------------------------------- text detection
def _scan_file(path: str) -> tuple[int, int, bool]:
    from ..data.images import load_rgb

    scan = scan_glyphs(load_rgb(path))
    return scan.n_glyphs, scan.n_inner, scan.has_text


def text_detection(root: Path, rows: pd.DataFrame, cache_dir: Path | None, workers: int = 1,
                   progress: bool = True) -> pd.DataFrame:
    """Per image: glyphs found (apart from the head / over it) and whether it has text.

    Runs :func:`braintumor.preprocess.glyphs.scan_glyphs` on the decoded originals; cached by SHA-256.
    """
    key = _cache_key(rows, "text", version=TEXT_DETECTION_VERSION)
    cache = cache_dir / f"text-detection-{key}.parquet" if cache_dir else None
    if cache is not None and cache.is_file():
        return pd.read_parquet(cache)
    paths = [str(Path(root) / p) for p in rows["path"]]
    results = list(parallel_map(_scan_file, paths, workers, desc="text detection", progress=progress))
    out = pd.DataFrame(results, columns=["n_glyphs", "n_glyphs_over_head", "has_text"])
    out.insert(0, "path", rows["path"].to_numpy())
    if cache is not None:
        with atomic_path(cache) as tmp:
            out.to_parquet(tmp, index=False)
    return out


def text_counts(rows: pd.DataFrame, detected: pd.DataFrame) -> dict:
    """``{"CT healthy": {"images": n, "with_text": k, "share": k / n}, ...}``."""
    both = rows[["path", "modality", "label"]].merge(detected, on="path", validate="one_to_one")
    out = {}
    for (modality, label), part in both.groupby(["modality", "label"], sort=True):
        k = int(part["has_text"].sum())
        out[f"{modality} {label}"] = {"images": int(len(part)), "with_text": k,
                                      "share": k / len(part) if len(part) else math.nan}
    return out
