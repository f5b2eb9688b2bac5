"""Out-of-distribution and modality checks on the model's own pooled features.

A classifier answers every input, including a photo of a cat, a flat grey square or a CT
slice given to the MRI model. :func:`fit_ood` fits, for one trained run, what it takes to
say when an answer should not be trusted, all on the features the classifier's head reads
(its ``GlobalAveragePooling`` output, :func:`braintumor.models.classifier.feature_model`):

* **distance to the training images**: the Mahalanobis distance to the nearest class mean
  with one shared covariance (Lee et al., NeurIPS 2018), estimated with Ledoit-Wolf
  shrinkage on the **training** split; the threshold is the 99th percentile of the
  **validation** split's distances, so ~99% of in-distribution images pass;
* **modality**: a logistic regression CT vs MRI on the same features, fitted on a subsample
  of the Kaggle **training** split of both modalities (300 images per modality and class by
  default), and a second Mahalanobis distance to the CT and MRI means (thresholded the same
  way on a validation subsample) that turns the answer into ``other`` when an image looks
  like neither.

The arrays go to ``ood.npz`` beside ``model.keras`` (git-ignored like the weights); the model
card's ``ood`` entry records the thresholds, sample sizes, feature dimension, the file's
SHA-256 and the validation keep-rates. :func:`load_checks` returns None for a run without
the file (predict then leaves the columns empty and says so once).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .files import atomic_path, sha256_file

OOD_NAME = "ood.npz"
KEEP = 0.99  # share of validation images a threshold keeps
MODALITY_PER_CLASS = 300  # Kaggle training images per modality and class for the modality check
MODALITY_VAL_PER_CLASS = 100
TASK_MODALITY = {"ct": "CT", "mri": "MRI", "mri_subtype": "MRI", "pooled": None}


FLAT_WARNING = "flat image: a single grey level, nothing to classify"


def is_flat(rgb: np.ndarray, tolerance: int = 2) -> bool:
    """Whether a decoded image is one grey level (within ``tolerance``): a blank slice, a
    flat test pattern. Pooled features of such an image can sit close to the training
    images' black background, so the feature checks alone miss it."""
    a = np.asarray(rgb)
    return a.size == 0 or int(a.max()) - int(a.min()) <= tolerance


def add_flat(checked: pd.DataFrame, flat) -> pd.DataFrame:
    """Checks' rows with flat images marked out of distribution and warned about."""
    flat = np.asarray(flat, bool)
    out = checked.copy()
    out.loc[flat, "in_distribution"] = False
    out.loc[flat, "warning"] = [FLAT_WARNING + ("; " + w if w else "") for w in out.loc[flat, "warning"]]
    return out


@dataclasses.dataclass
class Checks:
    """The fitted checks of one run (the content of ``ood.npz``)."""

    class_means: np.ndarray  # (K, D) training class means
    precision: np.ndarray  # (D, D) inverse of the shared Ledoit-Wolf covariance
    threshold: float  # distances above it are out of distribution
    modality_means: np.ndarray  # (2, D): CT, MRI
    modality_precision: np.ndarray
    modality_threshold: float
    scaler_mean: np.ndarray  # standardisation before the logistic regression
    scaler_scale: np.ndarray
    coef: np.ndarray  # (D,) logistic regression, positive = CT
    intercept: float
    model_modality: str | None  # what the model is for: "CT", "MRI", or None (both)

    def save(self, path: str | Path) -> Path:
        arrays = {k: np.asarray(v if v is not None else "") for k, v in dataclasses.asdict(self).items()}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez_compressed(tmp, **arrays)
        return Path(path)

    @classmethod
    def load(cls, path: str | Path) -> "Checks":
        with np.load(path, allow_pickle=False) as z:
            d = {k: z[k] for k in z.files}
        for k in ("threshold", "modality_threshold", "intercept"):
            d[k] = float(d[k])
        d["model_modality"] = str(d["model_modality"]) or None
        return cls(**d)

    def check(self, features: np.ndarray) -> pd.DataFrame:
        """Per image: ``modality`` (CT, MRI or other), ``p_ct``, ``ood_score`` (Mahalanobis
        distance to the nearest training class), ``in_distribution`` and ``warning``."""
        f = np.asarray(features, dtype=np.float64)
        score = mahalanobis(f, self.class_means, self.precision)
        mod_score = mahalanobis(f, self.modality_means, self.modality_precision)
        z = ((f - self.scaler_mean) / self.scaler_scale) @ self.coef + self.intercept
        p_ct = 1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))
        modality = np.where(mod_score > self.modality_threshold, "other", np.where(p_ct >= 0.5, "CT", "MRI"))
        inside = score <= self.threshold
        warnings = []
        for m, ok, s in zip(modality, inside, score):
            w = []
            if m == "other":
                w.append("looks like neither CT nor MRI")
            elif self.model_modality and m != self.model_modality:
                w.append(f"looks like {m}, model is for {self.model_modality}")
            if not ok:
                w.append(f"far from the training images (OOD score {s:.1f} > {self.threshold:.1f})")
            warnings.append("; ".join(w))
        return pd.DataFrame({"modality": modality, "p_ct": p_ct, "modality_score": mod_score,
                             "ood_score": score, "in_distribution": inside, "warning": warnings})


def mahalanobis(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """Distance of each row of ``features`` to the nearest of ``means`` under ``precision``."""
    best = np.full(len(features), np.inf)
    for mu in means:
        d = features - mu
        best = np.minimum(best, np.einsum("ij,ij->i", d @ precision, d))
    return np.sqrt(np.maximum(best, 0.0))


def _shared_precision(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the inverse Ledoit-Wolf covariance of the class-centred features."""
    from sklearn.covariance import LedoitWolf

    classes = np.unique(labels)
    means = np.stack([features[labels == c].mean(axis=0) for c in classes])
    centred = features - means[np.searchsorted(classes, labels)]
    lw = LedoitWolf(assume_centered=True).fit(centred)
    return means, lw.precision_


def fit_checks(train: np.ndarray, y_train: np.ndarray, val: np.ndarray,
               mod_train: np.ndarray, is_ct_train: np.ndarray, mod_val: np.ndarray, is_ct_val: np.ndarray,
               model_modality: str | None, keep: float = KEEP) -> tuple[Checks, dict]:
    """Fit the checks on pooled features (arrays of shape ``(N, D)``); return them and the
    summary numbers the model card records."""
    from sklearn.linear_model import LogisticRegression

    train, val = np.asarray(train, np.float64), np.asarray(val, np.float64)
    means, precision = _shared_precision(train, np.asarray(y_train))
    d_val = mahalanobis(val, means, precision)
    threshold = float(np.quantile(d_val, keep))

    mod_train, mod_val = np.asarray(mod_train, np.float64), np.asarray(mod_val, np.float64)
    is_ct_train, is_ct_val = np.asarray(is_ct_train, bool), np.asarray(is_ct_val, bool)
    mod_means, mod_precision = _shared_precision(mod_train, (~is_ct_train).astype(int))  # 0 = CT, 1 = MRI
    mod_threshold = float(np.quantile(mahalanobis(mod_val, mod_means, mod_precision), keep))
    scaler_mean = mod_train.mean(axis=0)
    scaler_scale = mod_train.std(axis=0) + 1e-6
    lr = LogisticRegression(C=0.1, max_iter=5000).fit((mod_train - scaler_mean) / scaler_scale, is_ct_train)
    checks = Checks(means, precision, threshold, mod_means, mod_precision, mod_threshold, scaler_mean,
                    scaler_scale, lr.coef_[0].astype(np.float64), float(lr.intercept_[0]), model_modality)
    val_checked = checks.check(mod_val)
    summary = {
        "method": "Mahalanobis distance to the nearest training class mean, shared Ledoit-Wolf "
                  "covariance, on the classifier's pooled features; threshold = validation "
                  f"quantile {keep}",
        "feature_dim": int(train.shape[1]), "n_train": int(len(train)), "n_val": int(len(val)),
        "threshold": threshold, "val_keep_rate": float(np.mean(d_val <= threshold)),
        "modality": {
            "method": "logistic regression CT vs MRI (standardised features, C=0.1) + Mahalanobis "
                      "distance to the CT/MRI means ('other' above the validation quantile)",
            "model_modality": model_modality,
            "n_train": {"CT": int(is_ct_train.sum()), "MRI": int((~is_ct_train).sum())},
            "n_val": {"CT": int(is_ct_val.sum()), "MRI": int((~is_ct_val).sum())},
            "threshold": mod_threshold,
            "val_accuracy": float(np.mean((val_checked["p_ct"].to_numpy() >= 0.5) == is_ct_val)),
            "val_other_rate": float(np.mean(val_checked["modality"] == "other")),
        },
    }
    return checks, summary


def fit_ood(run_dir: str | Path, config: Config | None = None, progress: bool = True,
            modality_per_class: int = MODALITY_PER_CLASS,
            modality_val_per_class: int = MODALITY_VAL_PER_CLASS) -> dict:
    """Fit the checks of the run in ``run_dir`` on its own split (training split for the
    statistics, validation split for the thresholds), write ``ood.npz`` and the card's
    ``ood`` entry; return that entry. A quick (smoke) run uses its quick subsets."""
    from .data.tasks import get_task, stratified_subset
    from .external.overlap import cached_features, features_key
    from .inference import Predictor
    from .models.classifier import extract_features, feature_model
    from .models.modelcard import update_card
    from .study import load_split, quick_per_class

    config = config or Config()
    run_dir = Path(run_dir)
    predictor = Predictor.load(run_dir)
    card = predictor.card
    trained = Config.from_dict(card.get("training", {}).get("config", {}))
    seen = config.replace(image_size=int(card["image_size"]), preprocess=card["preprocess"])
    features = feature_model(predictor.model)

    def feats(split) -> np.ndarray:
        return extract_features(features, split.images, config.batch_size, progress=progress)

    task_splits = {name: load_split(seen, name, card["task"], per_class=quick_per_class(trained, name),
                                    seed=trained.seed, progress=progress) for name in ("train", "val")}
    # The external sets' overlap check caches the same model's features of the same
    # training rows under the same key (the study runs it first): reuse them.
    train = task_splits["train"]
    key = features_key(run_dir, card, train.rows["sha256"])
    f_train = cached_features(config.cache_path / "external" / f"train-features-{key}.npy", lambda: feats(train))
    f_val = feats(task_splits["val"])
    if trained.quick:
        modality_per_class = min(modality_per_class, trained.quick_per_class // 2 or 1)
        modality_val_per_class = min(modality_val_per_class, max(5, trained.quick_per_class // 6))
    pooled = get_task("pooled")
    mod = {}
    for name, per in (("train", modality_per_class), ("val", modality_val_per_class)):
        split = load_split(seen, name, pooled, per_class=None, progress=progress)
        rows = stratified_subset(split.rows, per, trained.seed, by=("modality", "y"))
        split = dataclasses.replace(split, rows=rows)
        mod[name] = (feats(split), rows["modality"].to_numpy() == "CT")
    checks, summary = fit_checks(f_train, task_splits["train"].y, f_val, *mod["train"], *mod["val"],
                                 model_modality=TASK_MODALITY.get(card["task"]))
    path = checks.save(run_dir / OOD_NAME)
    summary = {"file": OOD_NAME, "sha256": sha256_file(path), **summary}
    update_card(run_dir, ood=summary)
    return summary


def load_checks(run_dir: str | Path, card: dict) -> tuple[Checks | None, str]:
    """``(checks, '')`` for a run with a valid ``ood.npz``, else ``(None, why not)``."""
    path = Path(run_dir) / OOD_NAME
    entry = card.get("ood") or {}
    if not path.is_file():
        return None, (f"no out-of-distribution/modality checks for this model ({path.name} missing): "
                      f"the modality, p_ct, ood_score, in_distribution and warning columns are empty; "
                      f"run `braintumor fit-ood --model {run_dir}` to add them")
    if entry.get("sha256") and entry["sha256"] != sha256_file(path):
        return None, (f"{path} does not match the model card's ood.sha256 (stale or foreign file): "
                      f"checks skipped; run `braintumor fit-ood --model {run_dir}` again")
    return Checks.load(path), ""


def modality_of(run_or_predictor, images) -> pd.DataFrame:
    """The modality check for ``images``: a list of files/folders/scans (one row per image
    or slice, with ``path``, ``slice``, ``series`` and ``error``) or prepared ``uint8
    (N, S, S, 3)`` arrays (one row per image). Columns ``modality`` (CT, MRI, other),
    ``p_ct``, ``modality_score``, ``ood_score``, ``in_distribution`` and ``warning``;
    ``model_modality`` says what the model is for. ``run_or_predictor``: a run folder (or
    ``models/<task>``) or a loaded :class:`~braintumor.inference.Predictor`. Raises
    :class:`~braintumor.errors.BrainTumorError` when the run has no fitted checks.
    """
    from .errors import BrainTumorError
    from .inference import Predictor, resolve_run

    predictor = (run_or_predictor if isinstance(run_or_predictor, Predictor)
                 else Predictor.load(resolve_run(run_or_predictor)))
    if predictor.checks is None:
        raise BrainTumorError(predictor.checks_note)
    if isinstance(images, np.ndarray):
        _, pooled = predictor.logits_and_features(images)
        out = predictor.checks.check(pooled)
    else:
        rows = predictor.predict_paths(list(images), progress=False)
        keep = ["path", "slice", "series", "modality", "p_ct", "modality_score", "ood_score",
                "in_distribution", "warning", "error"]
        out = rows.reindex(columns=keep)
    out.insert(len(out.columns), "model_modality", predictor.checks.model_modality)
    return out
