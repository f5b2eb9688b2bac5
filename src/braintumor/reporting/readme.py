"""The README's generated blocks: results, shortcut audit (and, from ``benchmarks.readme``,
performance), each between ``<!-- name:start -->`` and ``<!-- name:end -->`` markers.

Every number in those blocks comes from a committed report, never typed by hand:
``braintumor results --update-readme`` rewrites them from ``reports/``.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..config import result_name
from ..errors import BrainTumorError
from ..metrics import format_ci
from ..models.modelcard import CARD_NAME, training_schedule


def _schedule(report: dict, models_path: Path) -> str:
    """The report's schedule; reports written before it was recorded read the model card."""
    if report.get("schedule"):
        return report["schedule"]
    folder = result_name(report["task"], report["preprocess"], report.get("recipe", "none"))
    card = models_path / folder / report["run_id"] / CARD_NAME
    return training_schedule(json.loads(card.read_text())) if card.is_file() else "—"


def _preparation(report: dict) -> str:
    """Preprocessing, plus the training recipe when it is not the plain one."""
    recipe = report.get("recipe", "none")
    return report["preprocess"] + ("" if recipe == "none" else f" + {recipe}")


WILSON_MARK = "ᵂ"
# How a cell's interval was made (a report entry's "interval" key) -> the mark after the cell.
INTERVAL_MARKS = {"wilson": WILSON_MARK, "wilson-mover": WILSON_MARK, "wilson-f1-bound": WILSON_MARK,
                  "auc-wilson-bound": "ᴬ", "bootstrap-degenerate": "ᴰ"}
MARK_NOTES = {
    WILSON_MARK: "Wilson interval: every duplicate-group bootstrap resample gave the same value, "
                 "so the bootstrap interval would be degenerate.",
    "ᴬ": "AUC at the edge: every bootstrap resample gave the same value, so the interval is the bound "
         "AUC ≥ sensitivity × specificity from Wilson lower bounds (see `braintumor.metrics.edges`).",
    "ᴰ": "Degenerate bootstrap interval (every resample gave the same value) and no edge-holding "
         "interval for this metric.",
}
COUNTS = {"accuracy": (("tp", "tn"), ("tp", "tn", "fp", "fn")), "sensitivity": (("tp",), ("tp", "fn")),
          "specificity": (("tn",), ("tn", "fp"))}


def edge_safe_ci(test: dict, name: str) -> tuple[str, str]:
    """A metric's cell and its mark ("" for a plain bootstrap interval). The report entry's
    ``interval`` says how its interval was made (marked per :data:`INTERVAL_MARKS`); reports
    written before it was recorded fall back to :func:`_legacy_ci`."""
    e = test["metrics"].get(name)
    if not e:
        return "—", ""
    if "interval" not in e:
        return _legacy_ci(test, name)
    mark = INTERVAL_MARKS.get(e["interval"], "")
    return format_ci(e["value"], e["low"], e["high"]) + mark, mark


def _legacy_ci(test: dict, name: str) -> tuple[str, str]:
    """Older reports: the bootstrap interval, or — when every resample gave the same value
    (e.g. sensitivity 1.000 [1.000, 1.000]) — the Wilson interval from the report's
    ``proportion_intervals`` or its confusion matrix, marked ᵂ."""
    from ..metrics.intervals import wilson_interval

    e = test["metrics"][name]
    if e["low"] is None or e["high"] is None or e["high"] > e["low"]:
        return format_ci(e["value"], e["low"], e["high"]), ""
    wilson = (test.get("proportion_intervals") or {}).get(name)
    cm = test.get("confusion_matrix")
    if not (wilson and wilson.get("low") is not None) and isinstance(cm, dict) and name in COUNTS:
        k, n = (sum(cm[c] for c in cs) for cs in COUNTS[name])
        low, high = wilson_interval(k, n)
        wilson = {"low": low, "high": high}
    if not wilson or wilson.get("low") is None:
        return format_ci(e["value"], e["low"], e["high"]), ""
    return format_ci(e["value"], wilson["low"], wilson["high"]) + WILSON_MARK, WILSON_MARK


def mark_notes(marks: set[str]) -> str:
    """The footnotes for the marks used in a table ("" when none)."""
    return "".join(f"\n\n{m} {MARK_NOTES[m]}" for m in MARK_NOTES if m in marks)


def results_table(reports_path: str | Path, models_path: str | Path | None = None) -> str:
    """A Markdown table of every ``reports/*/metrics.json`` (test split, 95% group-bootstrap CIs)."""
    models_path = Path(models_path) if models_path else Path(reports_path).parent / "models"
    rows, marks = [], set()
    for path in sorted(Path(reports_path).glob("*/metrics.json")):
        r = json.loads(path.read_text())
        if r.get("quick"):
            continue  # smoke runs are not results
        m = r["test"]["metrics"]

        def ci(name: str) -> str:
            cell, mark = edge_safe_ci(r["test"], name)
            marks.add(mark)
            return cell

        thr = r["threshold"]["threshold"] if r.get("threshold") else None
        rows.append(
            f"| {r['task']} | {_preparation(r)} | {r['backbone']} | {_schedule(r, models_path)} "
            f"| {r['test']['n_images']} "
            f"({r['test']['n_groups']}) | {ci('accuracy')} | {ci('sensitivity')} | {ci('specificity')} "
            f"| {ci('roc_auc') if 'roc_auc' in m else ci('macro_auc_ovr')} "
            f"| {r['calibration']['test_ece_before']:.3f} → {r['calibration']['test_ece_after']:.3f} "
            f"| {'—' if thr is None else f'{thr:.3f}'} |")
    header = ("| task | preprocessing | backbone | training | test images (groups) | accuracy | "
              "sensitivity | specificity | AUC | ECE raw → calibrated | threshold |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")
    return "\n".join([header, *rows]) + mark_notes(marks) if rows else "_No evaluated runs yet._"


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
    from ..audit.probes import probe_table

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


def _external_row(r: dict, marks: set[str]) -> list[str]:
    m, ex = r["model"], r["exclusions"]
    metric = r["test"]["metrics"]

    def ci(name: str) -> str:
        cell, mark = edge_safe_ci(r["test"], name)
        marks.add(mark)
        return cell

    w = r.get("within_group_auc") or {}
    within = (f"{w['median']:.3f}, {format_ci(**w['mean'])} (n={w['n_groups']})" if w.get("n_groups") else "—")
    n_overlap, n_modality = sum(ex["overlap"].values()), sum(ex["modality"]["excluded"].values())
    model = f"{m['task']}, {_preparation(m)}, {m['run_id']}"
    return [r["set"], model, f"{ex['n_kept']} ({n_overlap} / {n_modality})",
            ci("roc_auc") if "roc_auc" in metric else ci("macro_auc_ovr"), ci("sensitivity"), ci("specificity"),
            within]


def same_scan_paragraph(reports: list[dict]) -> str:
    """Plain words for a set whose groups hold both classes (same-scan slices of one patient):
    one paragraph per set, naming the best of its evaluated runs."""
    best = max(reports, key=lambda r: r["test"]["metrics"]["roc_auc"]["value"])
    auc, w, m = best["test"]["metrics"]["roc_auc"], best["within_group_auc"], best["model"]
    if auc["low"] is not None and auc["low"] <= 0.5:
        verdict = ("its interval includes 0.5, so on these slices it cannot be shown to tell tumour from "
                   "no tumour better than a coin toss")
    elif auc["value"] < 0.8:
        verdict = "better than chance, but far from reliable"
    else:
        verdict = "it separates them well on this set"
    runs = f"the best of {len(reports)} evaluated runs, " if len(reports) > 1 else ""
    return (f"**What the same-scan result means.** In `{best['set']}` the tumour and tumour-free slices come from "
            f"the same scans of the same patients, so scanner, sequence and source cannot tell them apart — only "
            f"the tumour can. There {runs}the {m['task']} model ({_preparation(m)}) reaches AUC "
            f"{format_ci(**auc)} (0.5 is chance; median within one patient {w['median']:.3f}): {verdict}. "
            "A high score on the Kaggle test split shows that a model separates that collection's healthy and "
            "tumour *sources*; it is not evidence that the model recognises tumours in a new scan. These models "
            "must not be used on anyone's images.")


def external_table(reports_path: str | Path) -> str:
    """External-validation table from ``reports/external/<set>/<run>/metrics.json`` (quick runs skipped),
    plus a plain-language paragraph per same-scan set (one whose groups hold both classes)."""
    reports = [json.loads(p.read_text()) for p in sorted(Path(reports_path).glob("external/*/*/metrics.json"))]
    reports = [r for r in reports if not r["model"].get("quick")]
    # Study runs are pooled over seeds by `braintumor study report` (README's study block).
    in_study = sum(str(r["model"].get("run_id", "")).startswith("study-") for r in reports)
    reports = [r for r in reports if not str(r["model"].get("run_id", "")).startswith("study-")]
    if not reports:
        return "_No external evaluations outside the study yet: run `braintumor evaluate-external`._"
    headers = ["set", "model (task, preprocessing, run)", "images kept (excluded: overlap / modality)",
               "AUC", "sensitivity", "specificity", "within-patient AUC: median, mean [CI] (patients)"]
    marks: set[str] = set()
    text = markdown_table(headers, [_external_row(r, marks) for r in reports]) + mark_notes(marks)
    same_scan = [r for r in reports if (r.get("within_group_auc") or {}).get("n_groups")
                 and "roc_auc" in r["test"]["metrics"]]
    by_set: dict[str, list[dict]] = {}
    for r in same_scan:
        by_set.setdefault(r["set"], []).append(r)
    note = (f"Single runs outside the matched study; its {in_study} external reports are pooled over seeds "
            "in the study tables above." if in_study else "")
    return "\n\n".join([text] + [same_scan_paragraph(rs) for rs in by_set.values()] + ([note] if note else []))


def update_readme(readme: str | Path, reports_path: str | Path) -> bool:
    """Fill the README's generated blocks — ``results`` (:func:`results_table`) and, when the
    README has them, ``external`` (:func:`external_table`) and ``shortcuts`` (:func:`shortcut_table`);
    True if anything changed."""
    readme, reports_path = Path(readme), Path(reports_path)
    text = readme.read_text()
    new = replace_block(text, "results", results_table(reports_path), str(readme))
    sources = reports_path / "audit" / "sources.json"
    if "<!-- sources:start -->" in new and sources.is_file():
        from ..audit.sources import source_tables

        new = replace_block(new, "sources", source_tables(json.loads(sources.read_text())), str(readme))
    recipes = sorted((reports_path / "comparisons").glob("recipes-*.json"))
    if "<!-- recipes:start -->" in new and recipes:
        from .recipes import recipe_table

        new = replace_block(new, "recipes", "\n\n".join(recipe_table(json.loads(p.read_text())) for p in recipes),
                            str(readme))
    if "<!-- external:start -->" in new:
        new = replace_block(new, "external", external_table(reports_path), str(readme))
    if "<!-- shortcuts:start -->" in new:
        new = replace_block(new, "shortcuts", shortcut_table(reports_path / "audit" / "shortcuts.json"),
                            str(readme))
    readme.write_text(new)
    return new != text
