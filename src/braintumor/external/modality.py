"""Which modality an image is, so a CT model is not scored on MRI slices (and vice versa).

:func:`modality_check` is a stand-in with the semantics the OOD work in
:mod:`braintumor.inference` will provide (a ``modality`` column per prediction): a
logistic regression on frozen pooled ImageNet features of the model's backbone, fitted on
the Kaggle **train** split, CT against MRI (:data:`PER_MODALITY` images of each, drawn
with the config's seed). Only Kaggle data is fitted; nothing is learnt from the external
set. The fitted coefficients are cached under ``data/cache/external/``, and so are the
external images' frozen features (:func:`frozen_features`).

When ``Predictor.predict_arrays`` returns a ``modality`` column, evaluate-external uses that
instead and this function is not called.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json

import numpy as np
import pandas as pd

from ..config import Config
from ..files import write_text_atomic

PER_MODALITY = 600
TASK_MODALITY = {"ct": "CT", "mri": "MRI", "mri_subtype": "MRI", "pooled": None}


def model_modality(card: dict) -> str | None:
    """The modality a model was trained on (None: both, e.g. the pooled task)."""
    return TASK_MODALITY.get(card["task"])


@functools.lru_cache(maxsize=4)
def _frozen(backbone: str, image_size: int, cache_dir: str):
    from ..models.classifier import pretrained_feature_model

    return pretrained_feature_model(backbone, image_size, cache_dir)


def _kaggle_train(config: Config, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """Up to PER_MODALITY train-split images per modality, as the model's preprocessing gives them."""
    from ..data.tasks import stratified_subset
    from ..study import load_split

    split = load_split(config, "train", "pooled", per_class=None, progress=False)
    rows = stratified_subset(split.rows, PER_MODALITY, seed, by=("modality",))
    return rows, np.asarray(dataclasses.replace(split, rows=rows).images)


def fit_modality_classifier(card: dict, config: Config, progress: bool = False) -> dict:
    """Standardised logistic regression, P(CT) from frozen pooled features; cached."""
    from sklearn.linear_model import LogisticRegression

    from ..data.splits import read_manifest
    from ..models.classifier import extract_features

    size, preprocess, backbone = int(card["image_size"]), card["preprocess"], card["backbone"]["name"]
    seen = config.replace(image_size=size, preprocess=preprocess)
    manifest_sha = read_manifest(seen.manifest_path).attrs.get("manifest_sha256", "")
    key = hashlib.sha256(f"{backbone}\n{size}\n{preprocess}\n{manifest_sha}\n{config.seed}\n{PER_MODALITY}\nv1"
                         .encode()).hexdigest()[:20]
    cache = config.cache_path / "external" / f"modality-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    rows, images = _kaggle_train(seen, config.seed)
    feats = extract_features(_frozen(backbone, size, str(config.pretrained_path)), images, 32, progress=progress)
    mean, scale = feats.mean(axis=0), feats.std(axis=0) + 1e-6
    y = (rows["modality"] == "CT").to_numpy().astype(int)
    lr = LogisticRegression(C=0.1, max_iter=5000).fit((feats - mean) / scale, y)
    fitted = {"coef": lr.coef_[0].tolist(), "intercept": float(lr.intercept_[0]), "mean": mean.tolist(),
              "scale": scale.tolist(), "n_ct": int(y.sum()), "n_mri": int((y == 0).sum()),
              "train_accuracy": float(lr.score((feats - mean) / scale, y)), "backbone": backbone,
              "fitted_on": "Kaggle train split, CT vs MRI, frozen pooled ImageNet features"}
    write_text_atomic(cache, json.dumps(fitted) + "\n")
    return fitted


def frozen_features(images: np.ndarray, card: dict, config: Config, progress: bool = False,
                    shas=None) -> np.ndarray:
    """Pooled features of the frozen ImageNet backbone for prepared ``images``; with ``shas``
    (the images' files' SHA-256s) cached under ``data/cache/external/frozen-features-<key>.npy``,
    keyed by the files' contents, the backbone, the image size and the preprocessing (they do
    not depend on the trained model, so every run of a study reads them back)."""
    from ..models.classifier import extract_features
    from . import cache

    size, backbone = int(card["image_size"]), card["backbone"]["name"]

    def compute() -> np.ndarray:
        return extract_features(_frozen(backbone, size, str(config.pretrained_path)), images, 32, progress=progress)

    if shas is None:
        return compute()
    key = cache.content_key(shas, "frozen-features", *cache.backbone_identity(card), size, card["preprocess"], 32)
    return cache.cached_array(cache.cache_dir(config) / f"frozen-features-{key}.npy", compute)


def modality_check(images: np.ndarray, card: dict, config: Config, progress: bool = False,
                   shas=None) -> pd.DataFrame:
    """``modality`` ("CT"/"MRI") and ``p_ct`` for each prepared image (the model's size and
    preprocessing). Replaceable by the predictor's own modality column. ``shas``: the images'
    files' SHA-256s, to cache their frozen features (:func:`frozen_features`)."""
    fitted = fit_modality_classifier(card, config, progress)
    feats = frozen_features(images, card, config, progress, shas)
    z = ((feats - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])) @ np.asarray(fitted["coef"])
    p_ct = 1.0 / (1.0 + np.exp(-(z + fitted["intercept"])))
    return pd.DataFrame({"modality": np.where(p_ct >= 0.5, "CT", "MRI"), "p_ct": p_ct.round(5)})
