"""Evaluate a trained run once on the held-out test split.

Order matters and is enforced here: temperature and decision threshold are fitted on the
**validation** split, written into the model card, and only then applied unchanged to the
test split, which is read exactly once to report. Every headline number carries a 95%
confidence interval from a bootstrap over duplicate groups.
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics, plots
from .config import Config, result_name
from .data import locate_dataset
from .errors import BrainTumorError
from .modelcard import read_card, update_card
from .pipeline import cached_arrays
from .inference import Predictor
from .splits import read_manifest
from .tasks import get_task, stratified_subset


def report_dir(config: Config, card: dict) -> Path:
    """``reports/<task>/`` for raw-image models, ``reports/<task>-<preprocess>/`` otherwise."""
    return config.reports_path / result_name(card["task"], card["preprocess"])


def _split_rows(task, manifest, split: str, card: dict) -> pd.DataFrame:
    rows = task.rows(manifest, split)
    train_cfg = card.get("training", {}).get("config", {})
    if train_cfg.get("quick"):  # smoke runs are evaluated on a small subset too
        rows = stratified_subset(rows, max(10, int(train_cfg.get("quick_per_class", 60)) // 3),
                                 int(train_cfg.get("seed", 0)))
    return rows


def _logits(predictor: Predictor, images: np.ndarray, batch_size: int) -> np.ndarray:
    return np.asarray(predictor.model.predict(np.asarray(images, np.float32), batch_size=batch_size,
                                              verbose=0), dtype=np.float64)


def evaluate_run(run_dir: str | Path, config: Config | None = None, rule: str = "youden",
                 target: float = 0.95, n_resamples: int = 1000, seed: int = 0,
                 figures: bool = True, progress: bool = True) -> dict:
    """Calibrate and threshold on validation, report on test, write ``metrics.json``."""
    config = config or Config()
    run_dir = Path(run_dir)
    predictor = Predictor.load(run_dir)
    card = predictor.card
    task = get_task(card["task"])
    root = locate_dataset(config=config)
    manifest = read_manifest(config.manifest_path)
    expected = card.get("data", {}).get("split_manifest_sha256")
    if expected and expected != manifest.attrs["manifest_sha256"]:
        raise BrainTumorError(f"{config.manifest_path} differs from the manifest {run_dir} was trained "
                            "with; evaluating on another split would leak training images into test")
    size, prep = int(card["image_size"]), card["preprocess"]
    val_rows, test_rows = (_split_rows(task, manifest, s, card) for s in ("val", "test"))
    x_val = cached_arrays(root, val_rows, size, prep, config.cache_path, progress)
    z_val = _logits(predictor, x_val, config.batch_size)
    y_val = val_rows["y"].to_numpy()

    # 1. Calibration and operating point: validation only.
    binary = task.binary
    z_val = z_val.reshape(-1) if binary else z_val
    temperature = metrics.fit_temperature(z_val, y_val, binary, kind="logits")
    p_val_raw = metrics.apply_temperature(z_val, 1.0, binary, kind="logits")
    p_val = metrics.apply_temperature(z_val, temperature, binary, kind="logits")
    chosen = metrics.choose_threshold(y_val, p_val, rule=rule, target=target) if binary else None
    update_card(run_dir, temperature=temperature,
                decision_threshold=chosen["threshold"] if chosen else None,
                threshold_rule=chosen)

    # 2. The test split, read once.
    x_test = cached_arrays(root, test_rows, size, prep, config.cache_path, progress)
    z_test = _logits(predictor, x_test, config.batch_size)
    z_test = z_test.reshape(-1) if binary else z_test
    y_test, groups = test_rows["y"].to_numpy(), test_rows["group"].to_numpy()
    p_test_raw = metrics.apply_temperature(z_test, 1.0, binary, kind="logits")
    p_test = metrics.apply_temperature(z_test, temperature, binary, kind="logits")
    if binary:
        evaluate = functools.partial(metrics.evaluate_binary, threshold=chosen,
                                     n_resamples=n_resamples, seed=seed)
    else:
        evaluate = functools.partial(metrics.evaluate_multiclass, classes=list(task.classes),
                                     n_resamples=n_resamples, seed=seed)
    test_report = evaluate(y_test, p_test, groups=groups)
    report = {
        "run_id": card["run_id"], "task": task.name, "classes": list(task.classes),
        "backbone": card["backbone"].get("name"), "weights": card["backbone"].get("weights"),
        "preprocess": prep, "image_size": size,
        "quick": bool(card.get("training", {}).get("config", {}).get("quick")),
        "schedule": training_schedule(card),
        "calibration": {
            "temperature": temperature,
            "val_ece_before": metrics.expected_calibration_error(y_val, p_val_raw),
            "val_ece_after": metrics.expected_calibration_error(y_val, p_val),
            "test_ece_before": metrics.expected_calibration_error(y_test, p_test_raw),
            "test_ece_after": metrics.expected_calibration_error(y_test, p_test),
        },
        "threshold": chosen,
        "n_val": int(len(y_val)),
        "test": test_report,
    }
    if task.name == "pooled":
        report["test_by_modality"] = metrics.breakdown_by(
            evaluate, test_rows["modality"].to_numpy(), y_test, p_test, groups)
    out = report_dir(config, card)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    if figures:
        write_figures(out, run_dir, report, predictor, x_test, test_rows,
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
    history = run_dir / "history.csv"
    if history.is_file():
        plots.save(plots.training_curves(pd.read_csv(history), name), out / "training_curves.png")
    plots.save(gradcam_grid(predictor, x_test, test_rows, p_test, report), out / "gradcam.png")


def gradcam_grid(predictor: Predictor, x_test: np.ndarray, rows: pd.DataFrame, p_test, report: dict,
                 per_cell: int = 2, seed: int = 0):
    """Correct and wrong test predictions per true class with Grad-CAM overlays.

    Every image is shown with everything outside the head blanked
    (:func:`braintumor.audit.blank_outside_head`): raw CT tumour images carry patient names.
    """
    from .audit import blank_outside_head
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




def training_schedule(card: dict) -> str:
    """How a run was trained, in a few words: image size, epochs run, fine-tuning rate."""
    training = card.get("training", {})
    cfg, run = training.get("config", {}), training.get("epochs_run", {})
    return (f"{card.get('image_size', cfg.get('image_size'))} px, head {run.get('frozen', '?')} + "
            f"fine-tune {run.get('finetune', '?')} ep, lr {cfg.get('lr_finetune', '?'):g}")


def _schedule(report: dict, models_path: Path) -> str:
    """The report's schedule; reports written before it was recorded read the model card."""
    if report.get("schedule"):
        return report["schedule"]
    card = models_path / result_name(report["task"], report["preprocess"]) / report["run_id"] / "model_card.json"
    return training_schedule(json.loads(card.read_text())) if card.is_file() else "—"


def results_table(reports_path: str | Path, models_path: str | Path | None = None) -> str:
    """A Markdown table of every ``reports/*/metrics.json`` (test split, 95% group-bootstrap CIs)."""
    models_path = Path(models_path) if models_path else Path(reports_path).parent / "models"
    rows = []
    for path in sorted(Path(reports_path).glob("*/metrics.json")):
        r = json.loads(path.read_text())
        if r.get("quick"):
            continue  # smoke runs are not results
        m = r["test"]["metrics"]

        def ci(name: str) -> str:
            e = m.get(name)
            return metrics.format_ci(e["value"], e["low"], e["high"]) if e else "—"

        thr = r["threshold"]["threshold"] if r.get("threshold") else None
        rows.append(
            f"| {r['task']} | {r['preprocess']} | {r['backbone']} | {_schedule(r, models_path)} "
            f"| {r['test']['n_images']} "
            f"({r['test']['n_groups']}) | {ci('accuracy')} | {ci('sensitivity')} | {ci('specificity')} "
            f"| {ci('roc_auc') if 'roc_auc' in m else ci('macro_auc_ovr')} "
            f"| {r['calibration']['test_ece_before']:.3f} → {r['calibration']['test_ece_after']:.3f} "
            f"| {'—' if thr is None else f'{thr:.3f}'} |")
    header = ("| task | preprocessing | backbone | training | test images (groups) | accuracy | "
              "sensitivity | specificity | AUC | ECE raw → calibrated | threshold |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([header, *rows]) if rows else "_No evaluated runs yet._"


def replace_block(text: str, name: str, content: str, where: str = "README.md") -> str:
    """``text`` with the lines between ``<!-- name:start -->`` and ``<!-- name:end -->`` replaced."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    if start not in text or end not in text:
        raise BrainTumorError(f"{where}: no {start} … {end} block to fill")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{content}\n{end}{tail}"


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def shortcut_table(report_path: str | Path) -> str:
    """The shortcut audit (``reports/audit/shortcuts.json``) as a Markdown table."""
    from .probes import probe_table

    path = Path(report_path)
    if not path.is_file():
        return "_No shortcut audit yet: run `braintumor audit-shortcuts`._"
    report = json.loads(path.read_text())
    table = probe_table(report)
    table_text = markdown_table(list(table.columns),
                                [[str(v) if v else "—" for v in row] for row in table.itertuples(index=False)])
    chance = [f"{task} {r['raw']['full']['chance_accuracy']:.3f}" for task, r in report["tasks"].items()
              if r["raw"]["full"].get("chance_accuracy") is not None]
    chance_line = (f"\n\nChance level (majority-class share of each test split): {', '.join(chance)}."
                   if chance else "")
    counts = report.get("text_detection", {}).get("per_class", {})
    text = ("\n\nBurned-in text detected on the original images: " + ", ".join(
        f"{name} {c['with_text']:,} of {c['images']:,}" for name, c in counts.items()) + ".") if counts else ""
    return table_text + chance_line + text


def update_readme(readme: str | Path, reports_path: str | Path) -> bool:
    """Fill the README's generated blocks — ``results`` (:func:`results_table`) and, when the
    README has one, ``shortcuts`` (:func:`shortcut_table`); True if anything changed."""
    readme, reports_path = Path(readme), Path(reports_path)
    text = readme.read_text()
    new = replace_block(text, "results", results_table(reports_path), str(readme))
    if "<!-- shortcuts:start -->" in new:
        new = replace_block(new, "shortcuts", shortcut_table(reports_path / "audit" / "shortcuts.json"),
                            str(readme))
    readme.write_text(new)
    return new != text
