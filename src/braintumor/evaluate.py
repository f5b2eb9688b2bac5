"""Evaluate a trained run once on the held-out test split.

Order matters and is enforced here: temperature and decision threshold are fitted on the
**validation** split, written into the model card, and only then applied unchanged to the
test split, which is read exactly once to report. Every headline number carries a 95%
confidence interval from a bootstrap over duplicate groups. How the threshold is chosen
and how many resamples are drawn is ``Config.evaluation``.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics
from .config import Config, result_name
from .data.tasks import get_task
from .errors import BrainTumorError
from .inference import Predictor
from .models.modelcard import HISTORY_NAME, training_schedule, update_card
from .reporting import plots
from .study import Split, load_split, quick_per_class


def report_dir(config: Config, card: dict) -> Path:
    """``reports/<task>/`` for raw-image models, ``reports/<task>-<preprocess>/`` otherwise."""
    return config.reports_path / result_name(card["task"], card["preprocess"], card.get("recipe", "none"))


def _split(config: Config, card: dict, name: str, progress: bool) -> Split:
    """The card's task rows of split ``name``, as its model saw images; a quick (smoke) run
    is evaluated on the quick subset its own training config implies."""
    trained = Config.from_dict(card.get("training", {}).get("config", {}))
    seen = config.replace(image_size=int(card["image_size"]), preprocess=card["preprocess"])
    return load_split(seen, name, card["task"], per_class=quick_per_class(trained, name), seed=trained.seed,
                      progress=progress)


def _logits(predictor: Predictor, split: Split, batch_size: int) -> np.ndarray:
    z = np.asarray(predictor.model.predict(np.asarray(split.images, np.float32), batch_size=batch_size,
                                           verbose=0), dtype=np.float64)
    return z.reshape(-1) if predictor.binary else z


def _calibration(y_val, p_val_raw, p_val, y_test, p_test_raw, p_test, temperature: float) -> dict:
    ece = metrics.expected_calibration_error
    return {"temperature": temperature,
            "val_ece_before": ece(y_val, p_val_raw), "val_ece_after": ece(y_val, p_val),
            "test_ece_before": ece(y_test, p_test_raw), "test_ece_after": ece(y_test, p_test)}


PREDICTIONS_NAME = "predictions.csv"  # per-image test predictions beside metrics.json (no pixels)


def write_predictions(out: Path, rows: pd.DataFrame, classes: list[str], probs: np.ndarray,
                      pred: np.ndarray, cluster: str = "group") -> Path:
    """``predictions.csv``: one row per test image — path, duplicate group (and the bootstrap
    cluster when another column), label ``y``, calibrated ``p`` = P(tumour) (binary) or
    ``p_<class>`` per class, and the decision ``pred`` — for paired comparisons
    (``braintumor compare``)."""
    df = pd.DataFrame({"path": rows["path"].to_numpy(), "group": rows["group"].to_numpy()})
    if cluster != "group":
        df["cluster"] = rows[cluster].to_numpy()
    df["y"] = rows["y"].to_numpy()
    if probs.ndim == 1:
        df["p"] = probs
    else:
        for k, name in enumerate(classes):
            df[f"p_{name}"] = probs[:, k]
    df["pred"] = pred
    path = out / PREDICTIONS_NAME
    df.to_csv(path, index=False, float_format="%.6g")
    return path


def evaluate_run(run_dir: str | Path, config: Config | None = None, figures: bool = True,
                 progress: bool = True, out: str | Path | None = None) -> dict:
    """Calibrate and threshold on validation, report on test, write ``metrics.json`` and
    ``predictions.csv`` to ``out`` (default :func:`report_dir`)."""
    config = config or Config()
    settings = config.evaluation
    run_dir = Path(run_dir)
    predictor = Predictor.load(run_dir)
    card = predictor.card
    task = get_task(card["task"])
    val = _split(config, card, "val", progress)
    expected = card.get("data", {}).get("split_manifest_sha256")
    if expected and expected != val.manifest.sha256:
        raise BrainTumorError(f"{config.manifest_path} differs from the manifest {run_dir} was trained "
                              "with; evaluating on another split would leak training images into test")
    binary, y_val = task.binary, val.y

    # 1. Calibration and operating point: validation only.
    z_val = _logits(predictor, val, config.batch_size)
    temperature = metrics.fit_temperature(z_val, y_val, binary, kind="logits")
    p_val_raw = metrics.apply_temperature(z_val, 1.0, binary, kind="logits")
    p_val = metrics.apply_temperature(z_val, temperature, binary, kind="logits")
    chosen = (metrics.choose_threshold(y_val, p_val, rule=settings.rule, target=settings.target)
              if binary else None)
    update_card(run_dir, temperature=temperature,
                decision_threshold=chosen["threshold"] if chosen else None,
                threshold_rule=chosen)

    # 2. The test split, read once.
    test = _split(config, card, "test", progress)
    z_test = _logits(predictor, test, config.batch_size)
    # The bootstrap's resampling unit: duplicate groups, or a coarser cluster column.
    if settings.cluster not in test.rows:
        raise BrainTumorError(f"bootstrap cluster {settings.cluster!r} is not a manifest column "
                              f"(have: {', '.join(test.rows.columns)})")
    y_test, groups = test.y, test.rows[settings.cluster].astype(str).to_numpy()
    p_test_raw = metrics.apply_temperature(z_test, 1.0, binary, kind="logits")
    p_test = metrics.apply_temperature(z_test, temperature, binary, kind="logits")
    if binary:
        evaluate = functools.partial(metrics.evaluate_binary, threshold=chosen,
                                     n_resamples=settings.n_resamples, seed=settings.seed)
    else:
        evaluate = functools.partial(metrics.evaluate_multiclass, classes=list(task.classes),
                                     n_resamples=settings.n_resamples, seed=settings.seed)
    report = {
        "run_id": card["run_id"], "task": task.name, "classes": list(task.classes),
        "backbone": card["backbone"].get("name"), "weights": card["backbone"].get("weights"),
        "preprocess": card["preprocess"], "recipe": card.get("recipe", "none"),
        "image_size": int(card["image_size"]),
        "quick": bool(card.get("training", {}).get("config", {}).get("quick")),
        "schedule": training_schedule(card),
        "calibration": _calibration(y_val, p_val_raw, p_val, y_test, p_test_raw, p_test, temperature),
        "threshold": chosen,
        "n_val": int(len(y_val)),
        "test": evaluate(y_test, p_test, groups=groups),
    }
    if settings.cluster != "group":
        report["test"]["bootstrap"]["unit"] = f"cluster ({settings.cluster})"
    pred = (p_test >= chosen["threshold"]).astype(int) if binary else np.asarray(p_test).argmax(axis=1)
    if task.name == "pooled":
        report["test_by_modality"] = metrics.breakdown_by(
            evaluate, test.rows["modality"].to_numpy(), y_test, p_test, groups)
    out = Path(out) if out is not None else report_dir(config, card)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    write_predictions(out, test.rows, list(task.classes), np.asarray(p_test), pred, settings.cluster)
    shown = out.relative_to(config.root_path) if out.is_relative_to(config.root_path) else out
    update_card(run_dir, evaluation_report=str(shown / "metrics.json"))
    if figures:
        write_figures(out, run_dir, report, predictor, test.images, test.rows,
                      probs={"val_raw": p_val_raw, "val": p_val, "test_raw": p_test_raw, "test": p_test},
                      y_val=y_val)
    return report


def write_figures(out: Path, run_dir: Path, report: dict, predictor: Predictor, x_test: np.ndarray,
                  test_rows: pd.DataFrame, probs: dict[str, np.ndarray], y_val: np.ndarray) -> None:
    """ROC/PR, confusion matrix, reliability, training curves and a Grad-CAM grid."""
    task = get_task(report["task"])
    y_test, p_test = test_rows["y"].to_numpy(), probs["test"]
    name = f"{task.name} — {report['backbone']} ({report['preprocess']})"
    if task.binary:
        plots.save(plots.roc_pr_curves(y_test, p_test, report["threshold"]["threshold"], name),
                   out / "roc_pr.png")
        cm = report["test"]["confusion_matrix"]
        matrix = [[cm["tn"], cm["fp"]], [cm["fn"], cm["tp"]]]
    else:
        matrix = report["test"]["confusion_matrix"]
    plots.save(plots.confusion_heatmap(matrix, list(task.classes), f"Test confusion matrix — {name}"),
               out / "confusion_matrix.png")
    curves = {
        "validation, raw": metrics.reliability_curve(y_val, probs["val_raw"]),
        "validation, calibrated": metrics.reliability_curve(y_val, probs["val"]),
        "test, raw": metrics.reliability_curve(y_test, probs["test_raw"]),
        "test, calibrated": metrics.reliability_curve(y_test, p_test),
    }
    plots.save(plots.reliability_diagram(curves, f"Reliability — {task.name}"), out / "reliability.png")
    history = run_dir / HISTORY_NAME
    if history.is_file():
        plots.save(plots.training_curves(pd.read_csv(history), name), out / "training_curves.png")
    plots.save(gradcam_grid(predictor, x_test, test_rows, p_test, report), out / "gradcam.png")


def gradcam_grid(predictor: Predictor, x_test: np.ndarray, rows: pd.DataFrame, p_test, report: dict,
                 per_cell: int = 2, seed: int = 0):
    """Correct and wrong test predictions per true class with Grad-CAM overlays.

    Every image is shown with everything outside the head blanked
    (:func:`braintumor.preprocess.crop_mask.blank_outside_head`): raw CT tumour images carry patient names.
    """
    from .preprocess.crop_mask import blank_outside_head
    from .explain import gradcam, overlay

    classes = list(predictor.card["classes"])
    if predictor.binary:
        pred = (np.asarray(p_test) >= report["threshold"]["threshold"]).astype(int)
    else:
        pred = np.asarray(p_test).argmax(axis=1)
    y = rows["y"].to_numpy()
    rng = np.random.default_rng(seed)
    picks, titles = [], []
    for c in range(len(classes)):
        for correct in (True, False):
            idx = np.flatnonzero((y == c) & ((pred == y) == correct))
            for i in rng.permutation(idx)[:per_cell]:
                picks.append(i)
                titles.append(f"true {classes[c]} → {classes[pred[i]]} ({'right' if correct else 'WRONG'})")
    # The map is computed on the image the model saw; only the picture shown is blanked.
    cams = gradcam(predictor.model, x_test[picks]) if picks else []
    shown = [overlay(blank_outside_head(x_test[i]), cam) for i, cam in zip(picks, cams)]
    return plots.image_grid(shown, titles, ncols=4)
