"""Recipe comparison: matched runs of two training recipes, seed by seed, on the Kaggle test
split and on the external sets (``braintumor compare-recipes``).

Runs are matched when their model cards agree on everything but the recipe and the seed
(task, preprocessing, backbone, image size, schedule). Per seed, the two recipes' runs are
compared on the same images: on an external set by a bootstrap over **patients** (the
set's group column) of the paired differences — slices of one patient are not independent,
so DeLong, which assumes they are, is not used there; on the Kaggle test split by the paired
duplicate-group bootstrap and DeLong. Seeds are combined with Rubin's rules
(:func:`braintumor.studies.compare.combine_seeds`).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import result_name
from ..errors import BrainTumorError
from ..files import write_text_atomic
from ..metrics import format_ci
from ..metrics.compare import paired_bootstrap
from ..models.modelcard import CARD_NAME
from ..studies.paired_edges import hold_paired_edges
from .readme import markdown_table

MATCH_KEYS = ("task", "backbone", "image_size", "preprocess", "epochs_frozen", "epochs_finetune", "lr_frozen",
              "lr_finetune", "finetune_fraction", "batch_size", "dropout", "augment", "split_name")
SHOWN = ("roc_auc", "sensitivity", "specificity")


def _card(models_path: Path, folder: str, run_id: str) -> dict | None:
    path = models_path / folder / run_id / CARD_NAME
    return json.loads(path.read_text()) if path.is_file() else None


def arm_runs(reports_path: Path, models_path: Path, task: str, preprocess: str, recipe: str) -> pd.DataFrame:
    """One row per evaluated run of an arm: run id, seed, schedule key, commit."""
    folder = result_name(task, preprocess, recipe)
    rows = []
    for external in sorted((reports_path / "external").glob("*/*/metrics.json")):
        run_id = external.parent.name
        card = _card(models_path, folder, run_id)
        if card is None or card.get("recipe", "none") != recipe or card["preprocess"] != preprocess:
            continue
        config = card["training"]["config"]
        rows.append({"run_id": run_id, "seed": int(config["seed"]), "commit": card.get("git_commit"),
                     "match": tuple(config.get(k) for k in MATCH_KEYS)})
    return pd.DataFrame(rows, columns=["run_id", "seed", "commit", "match"]).drop_duplicates("run_id")


def _external_side(reports_path: Path, set_name: str, run_id: str) -> pd.DataFrame | None:
    path = reports_path / "external" / set_name / run_id / "predictions.csv"
    if not path.is_file():
        return None
    df = pd.read_csv(path, keep_default_na=False)
    return df[df["excluded"].astype(str) == ""]


def _kaggle_test(reports_path: Path, folder: str, run_ids) -> dict:
    """Each run's Kaggle test AUC, from its kept report (``reports/runs/<folder>/<run>/``)."""
    out = {}
    for run_id in run_ids:
        path = reports_path / "runs" / folder / run_id / "metrics.json"
        if path.is_file():
            out[run_id] = json.loads(path.read_text())["test"]["metrics"]["roc_auc"]["value"]
    return out


def prediction_classes(rows: pd.DataFrame) -> tuple[str, ...]:
    """The classes of a predictions table: a binary one has ``p`` (P(tumour)) or no ``p_``
    column, a multi-class one ``p_<class>`` per class (``p_ct`` is the modality check's, not a class)."""
    classes = tuple(c[2:] for c in rows.columns if c.startswith("p_") and c != "p_ct")
    return ("healthy", "tumor") if "p" in rows or not classes else classes


def paired_external(a: pd.DataFrame, b: pd.DataFrame, n_resamples: int = 2000, seed: int = 0) -> dict:
    """Paired differences B − A on the external images both runs kept, groups resampled
    (binary or multi-class, from the predictions' columns)."""
    m = a.merge(b, on="path", suffixes=("_a", "_b"))
    if m.empty:
        raise BrainTumorError("the two runs share no external images")
    classes = prediction_classes(a)
    index = {c: i for i, c in enumerate(classes)}
    y = m["label_a"].map(index).to_numpy(int)
    pred = {s: m[f"predicted_{s}"].map(index).to_numpy(int) for s in "ab"}
    if len(classes) == 2:
        scores = {s: m[f"p_{s}"].to_numpy(float) for s in "ab"}
    else:
        scores = {s: m[[f"p_{c}_{s}" for c in classes]].to_numpy(float) for s in "ab"}
    out = paired_bootstrap(y, pred["a"], pred["b"], m["group_a"].astype(str).to_numpy(), scores["a"], scores["b"],
                           len(classes), n_resamples, seed)
    out = hold_paired_edges(out, y, pred["a"], pred["b"], len(classes))  # both right on every image: not [0, 0]
    return {"n_images": int(len(m)), "n_groups": int(m["group_a"].nunique()), "metrics": out}


def compare_recipes(reports_path: str | Path, models_path: str | Path, task: str, preprocess: str,
                    recipe_a: str = "none", recipe_b: str = "lesions",
                    sets: tuple[str, ...] = ("lgg-flair-a", "sartaj"), n_resamples: int = 2000) -> dict:
    """Per seed and pooled paired differences recipe_b − recipe_a on each external set."""
    from ..studies.compare import combine_seeds

    reports_path, models_path = Path(reports_path), Path(models_path)
    a = arm_runs(reports_path, models_path, task, preprocess, recipe_a)
    b = arm_runs(reports_path, models_path, task, preprocess, recipe_b)
    pairs = a.merge(b, on="seed", suffixes=("_a", "_b"))
    pairs = pairs[pairs["match_a"] == pairs["match_b"]]
    if pairs.empty:
        raise BrainTumorError(f"no matched seeds for {task}/{preprocess}: {recipe_a} vs {recipe_b} "
                              "(evaluate both recipes with the same schedule and seeds, then evaluate-external)")
    report = {"task": task, "preprocess": preprocess, "a": recipe_a, "b": recipe_b, "difference": "B - A",
              "seeds": sorted(int(s) for s in pairs["seed"]), "commits": sorted(set(pairs["commit_a"]) |
                                                                                set(pairs["commit_b"]) - {None}),
              "schedule": dict(zip(MATCH_KEYS, pairs["match_a"].iloc[0])), "sets": {}}
    report["kaggle_test"] = {recipe: _kaggle_test(reports_path, result_name(task, preprocess, recipe), runs)
                             for recipe, runs in ((recipe_a, pairs["run_id_a"]), (recipe_b, pairs["run_id_b"]))}
    for set_name in sets:
        per_seed = {}
        for _, p in pairs.iterrows():
            sa, sb = (_external_side(reports_path, set_name, p[f"run_id_{s}"]) for s in "ab")
            if sa is not None and sb is not None:
                per_seed[int(p["seed"])] = paired_external(sa, sb, n_resamples=n_resamples, seed=int(p["seed"]))
        if per_seed:
            report["sets"][set_name] = {"per_seed": per_seed, "pooled": combine_seeds(per_seed),
                                        "runs": {int(p["seed"]): [p["run_id_a"], p["run_id_b"]]
                                                 for _, p in pairs.iterrows()}}
    return report


def recipe_table(report: dict) -> str:
    """Markdown: per set, each recipe's mean value and the pooled paired difference."""
    rows = []
    for set_name, r in report["sets"].items():
        for name in SHOWN:
            c = r["pooled"].get(name)
            if not c:
                continue
            seeds = ", ".join(f"{r['per_seed'][s]['metrics'][name]['difference']:+.3f}" for s in sorted(r["per_seed"]))
            rows.append([set_name, name.replace("roc_auc", "AUC"), f"{c['a']:.3f}", f"{c['b']:.3f}",
                         format_ci(c["difference"], c["low"], c["high"]), f"{c['p_value']:.3g}", seeds])
    kaggle = report.get("kaggle_test", {})
    if all(kaggle.get(r) for r in (report["a"], report["b"])):
        rows.append(["Kaggle test (not paired)", "AUC", *(_mean_sd(kaggle[r].values()) for r in (report["a"], report["b"])),
                     "", "", ""])
    heads = ["set", "metric", report["a"], report["b"], f"{report['b']} − {report['a']} [95% CI]", "p",
             "per seed"]
    return markdown_table(heads, rows) if rows else "_No matched runs evaluated on external sets yet._"


def write_recipe_report(report: dict, out_dir: str | Path) -> tuple[Path, Path]:
    from ..metrics import jsonable

    name = f"recipes-{report['task']}-{report['preprocess']}-{report['a']}-vs-{report['b']}"
    out_dir = Path(out_dir)
    return (write_text_atomic(out_dir / f"{name}.json", json.dumps(jsonable(report), indent=2) + "\n"),
            write_text_atomic(out_dir / f"{name}.md", recipe_table(report) + "\n"))


def _mean_sd(values) -> str:
    v = np.asarray(list(values), float)
    return f"{v.mean():.3f} ± {v.std(ddof=1):.3f}" if v.size > 1 else f"{v.mean():.3f}"
