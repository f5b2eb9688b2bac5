"""``braintumor evaluate-external``: a trained run on an external test set, evaluation only.

Order: read the set (:mod:`.inputs`); decode and prepare its images in parallel with the
model card's size and preprocessing (cached by the files' contents, :mod:`.cache`); predict
with :class:`braintumor.inference.Predictor` (the card's temperature), in one pass that also
gives the pooled features the overlap check compares; drop images that overlap the model's
training images (:mod:`.overlap`) or are of another modality (the predictor's ``modality``
column, else :func:`.modality.modality_check`); report the rest at the card's decision threshold with
group-bootstrap intervals, within-group AUC and strata (:mod:`.analysis`). Nothing is fitted
on the external images: no threshold, no temperature, no recalibration.

Output: ``reports/external/<name>/<run folder>/`` with ``metrics.json``, ``predictions.csv``
(no pixels) and figures.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .. import metrics
from ..config import Config
from ..errors import BrainTumorError
from ..inference import Predictor
from ..models.modelcard import training_schedule
from ..study import Split
from . import analysis, cache, overlap
from .inputs import ExternalSet, load_external
from .modality import model_modality, modality_check


@dataclass
class Options:
    """What ``evaluate-external`` was asked for, besides the model and the data."""

    name: str
    label_map: dict = field(default_factory=dict)
    group_col: str | None = None
    strata: list = field(default_factory=list)  # "column" or "column:edge,edge"
    label_col: str = "label"
    n_resamples: int = 1000
    seed: int = 0
    similarity: float | None = None  # feature-overlap threshold; None = calibrated on training pairs
    workers: int | None = None
    figures: bool = True
    progress: bool = True


def report_dir(config: Config, name: str, run_dir: str | Path) -> Path:
    return config.reports_path / "external" / name / Path(run_dir).name


def operating_point(card: dict, run_dir: Path) -> dict | None:
    """The card's decision threshold as chosen on Kaggle validation (None for multi-class);
    an error if ``braintumor evaluate`` has not set it: nothing is refitted here."""
    if "temperature" not in card or (len(card["classes"]) == 2 and card.get("decision_threshold") is None):
        raise BrainTumorError(f"{run_dir}: the model card has no decision threshold or temperature yet; run "
                              f"`braintumor evaluate --model {run_dir}` first (they are set on Kaggle "
                              "validation, never on external data)")
    if len(card["classes"]) != 2:
        return None
    chosen = dict(card.get("threshold_rule") or {})
    chosen["threshold"] = float(card["decision_threshold"])
    chosen.setdefault("rule", "model card")
    return chosen


PREDICT_BATCH = 32  # the batch size of Predictor.predict_arrays, which evaluate-external used to call


def predict_images(predictor: Predictor, images: np.ndarray) -> tuple[pd.DataFrame, np.ndarray]:
    """``p_<class>`` per image and the model's pooled features, from one pass over the network
    (:meth:`Predictor.logits_and_features`).

    The probabilities are those of :meth:`Predictor.predict_arrays` (the same logits layer,
    batch size and temperature calibration, :func:`braintumor.inference.probabilities_from_logits`)
    and the features those of :func:`braintumor.models.classifier.feature_model` (the same
    ``pool`` layer), so the overlap check needs no second pass; ``tests/test_external.py``
    checks both are equal bit for bit. Should ``predict_arrays`` ever give more than
    probabilities (a ``modality`` column), that test fails and this must follow it.
    """
    from ..inference import probabilities_from_logits

    logits, pooled = predictor.logits_and_features(images, batch_size=PREDICT_BATCH)
    probs = probabilities_from_logits(logits, predictor.temperature, predictor.binary)
    return pd.DataFrame(np.asarray(probs), columns=[f"p_{c}" for c in predictor.card["classes"]]), pooled


def _training_reference(config: Config, card: dict) -> tuple[pd.DataFrame, Split]:
    """The task's whole train split with each image's pHash (from the index), and the rows
    the model actually trained on (a quick run's subset) for the feature check."""
    from ..data.index import load_index
    from ..study import load_split, quick_per_class

    trained = Config.from_dict(card.get("training", {}).get("config", {}))
    seen = config.replace(image_size=int(card["image_size"]), preprocess=card["preprocess"])
    full = load_split(seen, "train", card["task"], per_class=None, progress=False)
    index = load_index(seen, progress=False)[["path", "phash"]]
    ref = full.rows.merge(index, on="path", how="left", validate="one_to_one")
    ref = ref[ref["phash"].fillna("") != ""].reset_index(drop=True)
    used = load_split(seen, "train", card["task"], per_class=quick_per_class(trained, "train"),
                      seed=trained.seed, progress=False)
    used.rows = used.rows.merge(index, on="path", how="left", validate="one_to_one")
    return ref, used


def check_overlap(predictor: Predictor, images: np.ndarray, ext: ExternalSet, config: Config,
                  opts: Options, ext_features: np.ndarray | None = None,
                  shas: list[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """pHash and feature nearest neighbours of every external image among the training images.

    ``ext_features``: the model's pooled features of ``images`` if already computed
    (:func:`predict_images`, at batch size ``config.batch_size``); ``shas``: the files'
    SHA-256s, to cache their pHashes (:func:`.cache.phashes`)."""
    from ..models.classifier import extract_features, feature_model

    card = predictor.card
    ref, used = _training_reference(config, card)
    features = feature_model(predictor.model)
    key = overlap.features_key(predictor.run_dir, card, used.rows["sha256"])
    train_feats = overlap.cached_features(config.cache_path / "external" / f"train-features-{key}.npy",
                                          lambda: extract_features(features, used.images, config.batch_size,
                                                                   progress=opts.progress))
    calibration = overlap.calibrate_similarity(train_feats, overlap.hash_ints(used.rows["phash"].fillna("0")),
                                               used.rows["sha256"])
    if opts.similarity is not None:
        calibration.update(threshold=float(opts.similarity), source="--dup-similarity")
    files = list(ext.rows["file"])
    hashes = (overlap.phashes(files, opts.workers, opts.progress) if shas is None
              else cache.phashes(files, shas, config, opts.workers, opts.progress))
    ext_feats = (extract_features(features, images, config.batch_size, progress=opts.progress)
                 if ext_features is None else ext_features)
    table = overlap.near_duplicates(hashes, ext_feats, ref, train_feats, used.rows, calibration["threshold"])
    info = {"phash_max_distance": overlap.PHASH_MAX_DISTANCE, "phash_reference_images": int(len(ref)),
            "feature_reference_images": int(len(used.rows)), "feature_similarity": calibration,
            "n_phash": int(table["overlap_phash"].sum()), "n_feature": int(table["overlap_feature"].sum()),
            "n_overlap": int(table["overlap"].sum())}
    return table, info


def _by_class(mask: np.ndarray, labels: pd.Series) -> dict:
    return {str(k): int(v) for k, v in labels[mask].value_counts().sort_index().items()}


def exclusions(preds: pd.DataFrame, dup: pd.DataFrame, ext: ExternalSet, card: dict,
               source: str) -> tuple[np.ndarray, dict]:
    """Which images stay, and how many of each class each check removed."""
    labels = ext.rows["label"]
    wanted = model_modality(card)
    other = (preds["modality"] != wanted).to_numpy() if wanted else np.zeros(len(preds), bool)
    dup_mask = dup["overlap"].to_numpy()
    keep = ~dup_mask & ~other
    info = {
        "overlap": _by_class(dup_mask, labels),
        "modality": {"model_modality": wanted or "any", "source": source,
                     "excluded": _by_class(other & ~dup_mask, labels),
                     "predicted": {str(k): int(v) for k, v in preds["modality"].value_counts().items()}},
        "n_images": int(len(labels)), "n_kept": int(keep.sum()), "kept": _by_class(keep, labels),
    }
    if "in_distribution" in preds:
        info["out_of_distribution"] = _by_class(~preds["in_distribution"].astype(bool).to_numpy(), labels)
    return keep, info


def score(ext: ExternalSet, probs: pd.DataFrame, keep: np.ndarray, chosen: dict | None, opts: Options) -> dict:
    """Headline metrics, within-group AUC and strata on the kept images."""
    rows = ext.rows[keep].reset_index(drop=True)
    y, groups = rows["y"].to_numpy(), rows["group"].to_numpy()
    ev = dict(n_resamples=opts.n_resamples, seed=opts.seed)
    if chosen is None:
        q = probs[[f"p_{c}" for c in ext.classes]].to_numpy()[keep]
        return {"test": metrics.evaluate_multiclass(y, q, list(ext.classes), groups, **ev)}
    p = probs[f"p_{ext.classes[1]}"].to_numpy()
    if not 0 < y.sum() < y.size:
        raise BrainTumorError(f"{ext.source}: {len(y)} of {len(keep)} images are left after the overlap and "
                              f"modality checks ({int(y.sum())} tumour); AUC, sensitivity and specificity need "
                              "both classes (see predictions.csv, column excluded)")
    out = {"test": metrics.evaluate_binary(y, p[keep], groups, threshold=chosen, **ev),
           "auc_all_images": analysis.safe_auc(ext.rows["y"], p)}
    if ext.group_col:
        out["within_group_auc"] = analysis.within_group_auc(y, p[keep], groups, **ev)
    if opts.strata:
        out["strata"] = analysis.by_stratum(rows, analysis.parse_strata(opts.strata), p[keep],
                                            chosen["threshold"], **ev)
    return out


def _model_info(predictor: Predictor, chosen: dict | None) -> dict:
    card = predictor.card
    return {"run_id": card.get("run_id", predictor.run_dir.name), "run_folder": predictor.run_dir.name,
            "task": card["task"], "classes": list(card["classes"]), "backbone": card["backbone"].get("name"),
            "preprocess": card["preprocess"], "recipe": card.get("recipe", "none"),
            "image_size": int(card["image_size"]),
            "quick": bool(card.get("training", {}).get("config", {}).get("quick")),
            "schedule": training_schedule(card), "threshold": chosen, "temperature": predictor.temperature}


def evaluate_external(run_dir: str | Path, data: str | Path, opts: Options, config: Config | None = None) -> dict:
    """Evaluate ``run_dir`` on the external set ``data``; write and return the report."""
    config = config or Config()
    run_dir = Path(run_dir)
    predictor = Predictor.load(run_dir)
    card = predictor.card
    chosen = operating_point(card, run_dir)
    strata = list(analysis.parse_strata(opts.strata))
    ext = load_external(data, card["classes"], opts.label_map, opts.group_col, strata, opts.label_col)
    files = list(ext.rows["file"])
    shas = cache.file_hashes(files)  # the key of every cache of model-independent results
    images = cache.prepared_images(files, shas, int(card["image_size"]), card["preprocess"], config,
                                   workers=opts.workers, progress=opts.progress)
    probs, pooled = predict_images(predictor, images)
    source = "predictor"
    if "modality" not in probs:
        probs = probs.join(modality_check(images, card, config, opts.progress, shas=shas))
        source = "modality_check (frozen-feature logistic regression, Kaggle train split CT vs MRI)"
    # the pooled features of the pass above, unless the overlap check is to batch differently
    ext_features = pooled if config.batch_size == PREDICT_BATCH else None
    dup, dup_info = check_overlap(predictor, images, ext, config, opts, ext_features, shas)
    keep, excl = exclusions(probs, dup, ext, card, source)
    excl["overlap_check"] = dup_info
    out = report_dir(config, opts.name, run_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_predictions(out / "predictions.csv", ext, probs, dup, keep, chosen, opts)
    report = {"set": opts.name, "data": str(ext.source), "model": _model_info(predictor, chosen),
              "inputs": {"label_col": opts.label_col, "label_map": ext.label_map, "dropped_labels": ext.n_dropped,
                         "group_col": ext.group_col, "strata": list(opts.strata),
                         "n_groups": int(ext.rows["group"].nunique())},
              "exclusions": excl,
              "evaluation_only": "threshold and temperature from the model card (Kaggle validation); "
                                 "nothing fitted on this set",
              **score(ext, probs, keep, chosen, opts)}
    report = metrics.jsonable(report)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    if opts.figures:
        write_figures(out, ext, probs, keep, report)
    return report


def write_predictions(path: Path, ext: ExternalSet, probs: pd.DataFrame, dup: pd.DataFrame, keep: np.ndarray,
                      chosen: dict | None, opts: Options) -> Path:
    """One row per image: path, label, group, probabilities, decision, checks; no pixels."""
    rows = ext.rows.drop(columns=["file", "y"]).reset_index(drop=True)
    if chosen is not None:
        rows["p"] = probs[f"p_{ext.classes[1]}"].round(6)
        rows["predicted"] = np.where(rows["p"] >= chosen["threshold"], ext.classes[1], ext.classes[0])
    else:
        for c in ext.classes:
            rows[f"p_{c}"] = probs[f"p_{c}"].round(6)
        rows["predicted"] = np.asarray(ext.classes)[probs[[f"p_{c}" for c in ext.classes]].to_numpy().argmax(1)]
    extra = [c for c in probs.columns if not c.startswith("p_") or c == "p_ct"]
    rows = pd.concat([rows, probs[extra], dup.drop(columns=["phash"])], axis=1)
    strata = analysis.parse_strata(opts.strata)
    if strata:
        rows = pd.concat([rows, analysis.stratum_labels(ext.rows.reset_index(drop=True), strata)], axis=1)
    rows["excluded"] = np.where(dup["overlap"], "overlap", np.where(keep, "", "modality"))
    rows.to_csv(path, index=False)
    return path


def write_figures(out: Path, ext: ExternalSet, probs: pd.DataFrame, keep: np.ndarray, report: dict) -> None:
    from ..reporting import plots
    from . import figures

    m = report["model"]
    title = f"{report['set']} — {m['task']} {m['preprocess']} ({m['run_id']})"
    if report["model"]["threshold"] is None:
        return
    y = ext.rows["y"].to_numpy()[keep]
    p = probs[f"p_{ext.classes[1]}"].to_numpy()[keep]
    plots.save(plots.roc_pr_curves(y, p, report["model"]["threshold"]["threshold"], title), out / "roc_pr.png")
    if report.get("within_group_auc", {}).get("n_groups"):
        plots.save(figures.within_group_auc_plot(report["within_group_auc"], title=f"Within-patient AUC — {title}"),
                   out / "within_group_auc.png")
    if report.get("strata"):
        plots.save(figures.strata_plot(report["strata"], title=f"Per stratum — {title}"), out / "strata.png")
