"""Aggregate a study's finished runs: per arm, mean ± sd over seeds and a pooled interval.

The pooled interval combines the two sources of spread a single run hides (Rubin's rules
for combining repeated analyses): the *within-seed* variance of each run's test estimate
— from its group-bootstrap interval, or from the Wilson interval when that is wider (a
proportion at 0 or 1 has a degenerate bootstrap) — and the *between-seed* variance of the
estimates::

    T = mean(within) + (1 + 1/m) · var(between),   interval = mean ± 1.96 · √T  (clipped to [0, 1])

Only *done* runs count (the current config, manifest and code), so every run reported
shares the code fingerprint; the summary says whether all arms share the schedule and
names the git commits the runs were made at.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..config import Config, result_name, task_defaults
from ..errors import BrainTumorError
from ..files import write_text_atomic
from ..reporting.readme import markdown_table, replace_block
from .figures import write_tradeoff
from .modality_view import KAGGLE, modality_view
from .runner import done_records, result_folder
from .spec import Study

Z95 = 1.959963984540054
BINARY_METRICS = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "ece")
MULTICLASS_METRICS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc_ovr", "ece")
SHOWN = {"accuracy": "accuracy", "sensitivity": "sensitivity", "specificity": "specificity",
         "roc_auc": "AUC", "macro_auc_ovr": "AUC"}
INTERVAL_NOTE = ("mean ± sd over seeds [pooled 95% interval: within-seed variance (duplicate-group "
                 "bootstrap, or Wilson when wider) + between-seed variance, Rubin's rules]")


def _within_variance(record: dict, metric: str) -> float:
    entry = record["test"]["metrics"].get(metric) or {}
    low, high = entry.get("low"), entry.get("high")
    boot = ((high - low) / (2 * Z95)) ** 2 if low is not None and high is not None else 0.0
    wilson = (record["test"].get("proportion_intervals") or {}).get(metric)
    if wilson and wilson.get("low") is not None:
        boot = max(boot, ((wilson["high"] - wilson["low"]) / (2 * Z95)) ** 2)
    return boot


def pooled(values: list[float], within: list[float]) -> dict:
    """Rubin's-rules combination of per-seed estimates and their within-seed variances."""
    v = np.asarray(values, dtype=float)
    m = v.size
    mean = float(v.mean())
    between = float(v.var(ddof=1)) if m > 1 else 0.0
    total = float(np.mean(within)) + (1 + 1 / m) * between
    half = Z95 * math.sqrt(max(total, 0.0))
    return {"value": mean, "low": max(0.0, mean - half), "high": min(1.0, mean + half),
            "sd_seeds": math.sqrt(between), "within_variance": float(np.mean(within)),
            "between_variance": between, "n_seeds": m}


def pooled_cells(cells: list[dict]) -> dict:
    """:func:`pooled` of per-seed ``{"value", "low", "high"}`` entries, each one's within-seed
    variance read from its 95% interval (none when it has no interval)."""
    within = [((c["high"] - c["low"]) / (2 * Z95)) ** 2 if c.get("low") is not None else 0.0 for c in cells]
    return pooled([c["value"] for c in cells], within)


def external_summary(records: list[dict]) -> dict:
    """Per external set: each metric pooled over the seeds that have it (their within-seed
    variance from the set's patient/group-bootstrap interval), and each seed's value."""
    out = {}
    names = sorted({n for r in records for n, e in (r.get("external") or {}).items() if "metrics" in e})
    for name in names:
        scored = [r for r in records if "metrics" in (r.get("external") or {}).get(name, {})]
        entries = [r["external"][name] for r in scored]
        metrics = {}
        for metric in ("roc_auc", "sensitivity", "specificity", "macro_auc_ovr"):
            cells = [e["metrics"][metric] for e in entries if e["metrics"].get(metric, {}).get("value") is not None]
            if len(cells) != len(entries):
                continue
            metrics[metric] = pooled_cells(cells)
            metrics[metric]["per_seed"] = {str(r["seed"]): c["value"] for r, c in zip(scored, cells)}
        medians = [e["within_group_auc_median"] for e in entries if e.get("within_group_auc_median") is not None]
        out[name] = {"n_seeds": len(entries), "metrics": metrics, "n_kept": entries[0].get("n_kept"),
                     "within_group_auc_median": float(np.mean(medians)) if medians else None}
    return out


def aggregate(study: Study, base: Config) -> dict:
    """The summary dict (``summary.json``)."""
    by_arm = done_records(study, base)
    arms, schedules, codes, commits = {}, {}, set(), set()
    for arm in study.arms:
        records = sorted(by_arm[arm.name], key=lambda r: r["seed"])
        if not records:
            arms[arm.name] = {"task": arm.task, "preprocess": arm.preprocess, "recipe": arm.recipe,
                              "n_seeds": 0, "seeds": []}
            continue
        binary = "roc_auc" in records[0]["test"]["metrics"]
        names = BINARY_METRICS if binary else MULTICLASS_METRICS
        metrics = {}
        for name in names:
            vals = [r["test"]["metrics"][name]["value"] for r in records
                    if r["test"]["metrics"].get(name, {}).get("value") is not None]
            if len(vals) != len(records):
                continue
            entry = pooled(vals, [_within_variance(r, name) for r in records])
            entry["per_seed"] = {str(r["seed"]): v for r, v in zip(records, vals)}
            metrics[name] = entry
        if not arm.schedule:  # an arm with its own schedule differs on purpose (below)
            schedules[arm.name] = records[0]["schedule"]
        codes |= {r.get("core_fingerprint", r["code_fingerprint"]) for r in records}
        commits |= {r.get("git_commit") or "unknown" for r in records}
        arms[arm.name] = {
            "task": arm.task, "preprocess": arm.preprocess, "recipe": arm.recipe, "folder": result_folder(records[0]),
            "n_seeds": len(records), "seeds": [r["seed"] for r in records],
            "n_test_images": records[0]["test"]["n_images"], "n_test_groups": records[0]["test"]["n_groups"],
            "kept_phase": {r["seed"]: r.get("kept_phase") for r in records},
            "minutes_per_run": float(np.mean([r["timing"]["total_seconds"] for r in records]) / 60),
            "validation_auc": {str(r["seed"]): (r.get("validation") or {}).get("auc") for r in records},
            "phase2_images_per_second": _mean_of([(r["timing"].get("training") or {}).get(
                "phase2_train_images_per_second") for r in records]),
            "metrics": metrics,
            "external": external_summary(records),
            "records": [str(Path(r["report_dir"]).with_suffix(".json")) for r in records],
        }
    _add_mri_inputs(study, base, arms, by_arm)
    distinct = {json.dumps(s, sort_keys=True) for s in schedules.values()}
    first = next(iter(schedules.values()), {})
    return {
        "study": study.name, "study_file": study.path.name, "description": study.description,
        "seeds": list(study.seeds),
        "interval": INTERVAL_NOTE,
        "same_schedule": len(distinct) <= 1,
        "schedule": first if len(distinct) <= 1 else schedules,
        "own_schedules": {a.name: a.schedule for a in study.arms if a.schedule and by_arm[a.name]},
        "code_fingerprints": sorted(codes), "git_commits": sorted(commits),
        "n_runs_done": sum(a["n_seeds"] for a in arms.values()),
        "n_runs_total": len(study.arms) * len(study.seeds),
        "arms": arms,
    }


def _add_mri_inputs(study: Study, base: Config, arms: dict, by_arm: dict) -> None:
    """Pooled arms, and the MRI arm with the task default's preprocessing and recipe beside them
    (on this study's schedule), scored on MRI inputs only (:mod:`.modality_view`): the pooled
    model as an MRI model."""
    default = task_defaults("mri")
    sets = [e.name for e in study.external if "mri" in e.tasks]
    pooled_arms = [a for a in study.arms if a.task == "pooled" and by_arm[a.name]]
    if not pooled_arms:
        return
    for arm in study.arms:
        default_recipe = (arm.task == "mri" and not arm.schedule
                          and (arm.preprocess, arm.recipe) == (default["preprocess"], default["recipe"]))
        if by_arm[arm.name] and (arm in pooled_arms or default_recipe):
            arms[arm.name]["mri_inputs"] = modality_view(base.root_path, by_arm[arm.name], sets)


def _cell(entry: dict | None) -> str:
    if not entry:
        return "—"
    return f"{entry['value']:.3f} ± {entry['sd_seeds']:.3f} [{entry['low']:.3f}, {entry['high']:.3f}]"


def schedule_text(schedule: dict) -> str:
    return (f"{schedule.get('backbone')} {schedule.get('image_size')} px, head ≤ {schedule.get('epochs_frozen')} "
            f"ep + fine-tune {schedule.get('epochs_finetune')} ep (top {schedule.get('finetune_fraction', 0):.0%}, "
            f"lr {schedule.get('lr_finetune'):g}), batch {schedule.get('batch_size')}")


def _mean_of(values: list) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def cost_markdown(summary: dict) -> str:
    """Validation AUC and training speed per arm, where arms differ in schedule on purpose."""
    if not summary.get("own_schedules"):
        return ""
    rows = []
    for name, a in summary["arms"].items():
        if a["n_seeds"]:
            val = [v for v in a["validation_auc"].values() if v is not None]
            speed = a.get("phase2_images_per_second")
            rows.append([name, ", ".join(f"{v:.4f}" for v in val), f"{np.mean(val):.4f}" if val else "—",
                         "—" if speed is None else f"{speed:.1f}", f"{a['minutes_per_run']:.1f}"])
    return "\n".join([markdown_table(["arm", "validation AUC per seed", "mean", "phase 2 images/s (training)",
                                      "minutes per run (train + evaluate + external)"], rows), "",
                      "Validation: the Kaggle validation split the saved phase was chosen on; speeds as each "
                      "run's card recorded them (machine load varies between runs)."])


def _recipe_label(name: str, arm: dict) -> str:
    """The recipe, and the arm's own name where it is not the usual one (e.g. its own schedule)."""
    usual = result_name(arm["task"], arm["preprocess"], arm["recipe"])
    return arm["recipe"] if name == usual else f"{arm['recipe']} (arm {name})"


def markdown(summary: dict) -> str:
    """The summary as a Markdown table plus what it rests on (also the README block)."""
    rows = []
    for name, a in summary["arms"].items():
        a = {**a, "recipe": _recipe_label(name, a)}
        if not a["n_seeds"]:
            rows.append([a["task"], a["preprocess"], a["recipe"], "0", "—", "—", "—", "—", "—", "—"])
            continue
        m = a["metrics"]
        kept = sum(1 for k in a["kept_phase"].values() if k == "finetune")
        auc = m.get("roc_auc") or m.get("macro_auc_ovr")
        rows.append([a["task"], a["preprocess"], a["recipe"], str(a["n_seeds"]),
                     f"{a['n_test_images']} ({a['n_test_groups']})", _cell(m.get("accuracy")),
                     _cell(m.get("sensitivity")), _cell(m.get("specificity")), _cell(auc),
                     f"{kept}/{a['n_seeds']}"])
    table = markdown_table(["task", "preprocessing", "recipe", "seeds", "test images (groups)", "accuracy",
                            "sensitivity", "specificity", "AUC", "fine-tuned model kept"], rows)
    ext = external_markdown(summary)
    own = summary.get("own_schedules") or {}
    if summary["same_schedule"] and own:
        sched = (f"All arms share one schedule ({schedule_text(summary['schedule'])}) except, on purpose, "
                 + "; ".join(f"{k}: {', '.join(f'{f} {v}' for f, v in o.items())}" for k, o in own.items())
                 + " — comparisons with those arms compare schedules.")
    elif summary["same_schedule"]:
        sched = f"All arms share one schedule: {schedule_text(summary['schedule'])}."
    else:
        sched = ("**Arms do not share one schedule** (" + "; ".join(
            f"{k}: {schedule_text(v)}" for k, v in summary["schedule"].items()) + "): do not compare them.")
    return "\n".join([
        table, "",
        f"Study `{summary['study_file']}`: {summary['n_runs_done']} of {summary['n_runs_total']} runs done "
        f"(seeds {', '.join(map(str, summary['seeds']))}). Cells: {summary['interval']}. {sched} "
        f"Code fingerprint {', '.join(summary['code_fingerprints']) or '—'}; git commit(s) "
        f"{', '.join(c[:12] for c in summary['git_commits']) or '—'}. "
        "'Fine-tuned model kept': seeds where fine-tuning beat the head on validation AUC "
        "(otherwise the head-only model was saved).",
        *(["", ext] if ext else []),
        *(["", mri] if (mri := mri_inputs_markdown(summary)) else []),
        *(["", cost] if (cost := cost_markdown(summary)) else []),
    ])


def mri_inputs_markdown(summary: dict) -> str:
    """The arms scored on MRI inputs only (pooled arms, and the MRI default's recipe for reference)."""
    rows = []
    for name, a in summary["arms"].items():
        for set_name, e in (a.get("mri_inputs") or {}).items():
            m, w = e["metrics"], e.get("within_group_auc_median")
            rows.append([name, set_name, str(e["n_seeds"]), str(e["n_images"]), _cell(m.get("roc_auc")),
                         _cell(m.get("sensitivity")), _cell(m.get("specificity")),
                         "—" if w is None else f"{w:.3f}"])
    if not rows:
        return ""
    return "\n".join([
        markdown_table(["arm", "MRI inputs of", "seeds", "images", "AUC", "sensitivity", "specificity",
                        "within-patient AUC (median)"], rows), "",
        f"MRI inputs only: the {KAGGLE} images from the MRI folder and the external images the modality "
        "check calls MRI (what an MRI model keeps), re-scored from the runs' predictions; pooled models "
        "answer for both modalities, so their rows above mix in CT images. Threshold from each run's "
        "Kaggle validation; nothing fitted on external rows.",
    ])


def external_markdown(summary: dict) -> str:
    """External sets per arm: AUC, sensitivity and specificity at the Kaggle-validation threshold."""
    sets = sorted({n for a in summary["arms"].values() for n in a.get("external", {})})
    if not sets:
        return ""
    rows = []
    for arm_name, a in summary["arms"].items():
        for name in sets:
            e = a.get("external", {}).get(name)
            if not e:
                continue
            m = e["metrics"]
            w = e.get("within_group_auc_median")
            rows.append([name, a["task"], a["preprocess"], _recipe_label(arm_name, a), str(e["n_seeds"]),
                         str(e.get("n_kept")),
                         _cell(m.get("roc_auc") or m.get("macro_auc_ovr")), _cell(m.get("sensitivity")),
                         _cell(m.get("specificity")), "—" if w is None else f"{w:.3f}"])
    return "\n".join([
        markdown_table(["external set", "task", "preprocessing", "recipe", "seeds", "images kept", "AUC",
                        "sensitivity", "specificity", "within-patient AUC (median)"], rows), "",
        "External sets: evaluation only (threshold and temperature from Kaggle validation, nothing fitted "
        "on them); intervals pool each run's patient/group bootstrap with the spread over seeds.",
    ])


def run_comparisons(study: Study, base: Config) -> list[dict]:
    """The study file's ``[[compare]]`` pairs that have seeds finished in both arms. A pair
    whose arm sets its own schedule compares schedules on purpose; its table says so."""
    from .compare import compare_arms

    done = done_records(study, base)
    out = []
    for a, b in study.comparisons:
        if {r["seed"] for r in done[a]} & {r["seed"] for r in done[b]}:
            deliberate = bool(study.arm(a).schedule or study.arm(b).schedule)
            out.append(compare_arms(study, a, b, base, allow_mixed=deliberate))
    return out


def _diff(entry: dict | None) -> str:
    if not entry:
        return "—"
    p = entry["p_value"]
    return (f"{entry['difference']:+.3f} [{entry['low']:+.3f}, {entry['high']:+.3f}], "
            f"p {'< 0.001' if p < 0.001 else f'{p:.3f}'}")


def comparisons_markdown(results: list[dict]) -> str:
    """One row per compared pair: B − A on the Kaggle test and on each external set."""
    if not results:
        return ""
    sets = sorted({n for r in results for n in r.get("external", {})})
    rows = []
    for r in results:
        m = r["metrics"]
        auc = m.get("roc_auc") or m.get("macro_auc_ovr")
        ext = [_diff(r.get("external", {}).get(n, {}).get("metrics", {}).get("roc_auc")) for n in sets]
        rows.append([r["a"]["label"], r["b"]["label"], ", ".join(map(str, r["seeds"])), _diff(auc),
                     _diff(m.get("accuracy")), *ext])
    return "\n".join([
        markdown_table(["A", "B", "seeds", "Kaggle test ΔAUC (B − A)", "Kaggle test Δaccuracy",
                        *[f"{n} ΔAUC" for n in sets]], rows), "",
        "Paired on the same images, seed by seed, combined over seeds (Rubin's rules): Kaggle test by "
        "duplicate-group bootstrap (accuracy) and DeLong (AUC); external sets by patient/group bootstrap "
        "on the images both runs kept. Full tables: `reports/comparisons/<study>--A--vs--B.md`.",
    ])


def readme_block(study: Study) -> str:
    """README's block for a study's tables: ``study`` for the main study, else ``study-<name>``."""
    return "study" if study.name == "main" else f"study-{study.name}"


def write_report(study: Study, base: Config, update_readme: bool = False) -> dict:
    """Write ``summary.json`` / ``summary.md`` (and the README's ``study`` block); return paths."""
    summary = aggregate(study, base)
    if summary["n_runs_done"] == 0:
        raise BrainTumorError(f"study {study.name!r}: no finished runs to report (run `braintumor study run`)")
    out = study.reports_dir(base)
    text = markdown(summary)
    paths = {"json": write_text_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n"),
             "md": write_text_atomic(out / "summary.md", f"# Study {study.name}\n\n{text}\n")}
    figure = write_tradeoff(summary, out / "external_tradeoff.png")
    if figure is not None:
        paths["figure"] = figure
    claims = comparisons_markdown(run_comparisons(study, base))
    if claims:
        paths["comparisons"] = write_text_atomic(out / "comparisons.md", f"# Study {study.name}: comparisons\n\n"
                                                 f"{claims}\n")
    if update_readme:
        readme = base.root_path / "README.md"
        if not readme.is_file():
            raise BrainTumorError(f"{readme}: no README to update")
        block = readme_block(study)
        new = replace_block(readme.read_text(), block, text, str(readme))
        if claims and f"<!-- {block}-compare:start -->" in new:
            new = replace_block(new, f"{block}-compare", claims, str(readme))
        readme.write_text(new)
        paths["readme"] = readme
    return {"summary": summary, "markdown": text, "paths": paths}
