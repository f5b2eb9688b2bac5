"""``braintumor compare`` and ``braintumor study compare``: paired differences on the same test rows.

Each side is the ``predictions.csv`` that :func:`braintumor.evaluate.evaluate_run` writes
beside ``metrics.json``: found from a run folder (its card's ``evaluation_report``), a
report folder, a ``metrics.json`` / ``predictions.csv`` path, or a study result record
(``seed-<n>.json``). Both sides must hold the same test images with the same labels.
Statistics: :func:`braintumor.metrics.paired_comparison` (paired duplicate-group
bootstrap; DeLong for binary AUC). Arm vs arm pairs seeds and combines the per-seed
differences with Rubin's rules (as ``study report`` does).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..config import Config
from ..errors import BrainTumorError
from ..files import write_text_atomic
from ..metrics import paired_comparison
from ..reporting.readme import markdown_table
from ..reporting.recipes import prediction_classes
from .paired_edges import hold_paired_edges
from .report import Z95
from .runner import done_records
from .spec import Study

PREDICTIONS = "predictions.csv"
SHOWN = ("accuracy", "balanced_accuracy", "sensitivity", "specificity", "roc_auc", "roc_auc_bootstrap",
         "macro_auc_ovr")


def _side(source: str | Path, root: Path) -> dict:
    """``{"label", "predictions": DataFrame, "report": dict | None, "card": dict | None}``."""
    path = Path(source)
    if not path.exists() and not path.is_absolute() and (root / path).exists():
        path = root / path
    card = None
    if path.is_dir() and (path / "model_card.json").is_file():
        card = json.loads((path / "model_card.json").read_text())
        where = card.get("evaluation_report")
        if not where:
            raise BrainTumorError(f"{path}: this run has not been evaluated (run `braintumor evaluate --model {path}`)")
        path = (root / where) if not Path(where).is_absolute() else Path(where)
    elif path.suffix == ".json" and path.is_file() and path.name != "metrics.json":
        record = json.loads(path.read_text())  # a study result record
        if "report_dir" not in record:
            raise BrainTumorError(f"{path}: neither a metrics.json nor a study result record")
        path = root / record["report_dir"]
    folder = path if path.is_dir() else path.parent
    predictions = folder / PREDICTIONS
    if not predictions.is_file():
        raise BrainTumorError(f"{source}: no {PREDICTIONS} found (in {folder}); re-run `braintumor evaluate`, "
                              "which now writes per-image test predictions")
    report = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else None
    if card is None and report is not None:
        card_path = root / "models" / _folder_name(report) / report.get("run_id", "") / "model_card.json"
        card = json.loads(card_path.read_text()) if card_path.is_file() else None
    label = (f"{_folder_name(report)}/{report['run_id']}" if report else str(folder))
    return {"label": label, "predictions": pd.read_csv(predictions, keep_default_na=False),
            "report": report, "card": card, "folder": str(folder)}


def _folder_name(report: dict) -> str:
    from ..config import result_name

    return result_name(report["task"], report["preprocess"], report.get("recipe", "none"))


def _scores(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    if "p" in df:
        return df["p"].to_numpy(float)
    return df[[f"p_{c}" for c in classes]].to_numpy(float)


def _classes(side: dict) -> list[str]:
    if side["report"]:
        return list(side["report"]["classes"])
    return list(prediction_classes(side["predictions"]))


def _schedule(side: dict) -> dict | None:
    if not side["card"]:
        return None
    from .spec import schedule_of

    return schedule_of(Config.from_dict(side["card"]["training"]["config"]))


def _common_rows(pa: pd.DataFrame, pb: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Both sides cut to the test images they share, when one side's images are all in the
    other's (an MRI arm's test split inside a pooled arm's); else unchanged."""
    shared = set(pa["path"]) & set(pb["path"])
    if shared not in (set(pa["path"]), set(pb["path"])):
        return pa, pb, "same"
    note = f"the {len(shared)} test images both were tested on (of {len(pa)} and {len(pb)})"
    return pa[pa["path"].isin(shared)], pb[pb["path"].isin(shared)], note


def compare_sides(a: dict, b: dict, n_resamples: int = 2000, seed: int = 0, cluster: str = "group",
                  common_rows: bool = False) -> dict:
    """Paired comparison of two loaded sides (see :func:`_side`); ``common_rows`` compares two
    tasks on the test images they share (e.g. an MRI arm and a pooled arm on MRI images)."""
    classes = _classes(a)
    if _classes(b) != classes:
        raise BrainTumorError(f"different tasks: classes {classes} vs {_classes(b)}")
    pa, pb = a["predictions"], b["predictions"]
    rows = "same"
    if common_rows:
        pa, pb, rows = _common_rows(pa, pb)
    if set(pa["path"]) != set(pb["path"]) or len(pa) != len(pb):
        raise BrainTumorError(f"{a['label']} and {b['label']} were not evaluated on the same test images "
                              f"({len(pa)} vs {len(pb)} rows, {len(set(pa['path']) ^ set(pb['path']))} differ)")
    merged = pa.merge(pb, on="path", suffixes=("_a", "_b"))
    if not (merged["y_a"] == merged["y_b"]).all():
        raise BrainTumorError("the two sides disagree on test labels")
    col = "group" if cluster == "group" else "cluster"
    if f"{col}_a" not in merged:
        raise BrainTumorError(f"predictions have no {cluster!r} column")
    ra = merged[[c for c in merged if c.endswith("_a")]].rename(columns=lambda c: c[:-2])
    rb = merged[[c for c in merged if c.endswith("_b")]].rename(columns=lambda c: c[:-2])
    result = paired_comparison(merged["y_a"].to_numpy(int), merged[f"{col}_a"].astype(str).to_numpy(),
                               ra["pred"].to_numpy(int), rb["pred"].to_numpy(int),
                               _scores(ra, classes), _scores(rb, classes), classes, n_resamples, seed)
    result["metrics"] = hold_paired_edges(result["metrics"], merged["y_a"].to_numpy(int), ra["pred"].to_numpy(int),
                                          rb["pred"].to_numpy(int), len(classes))
    sa, sb = _schedule(a), _schedule(b)
    differs = sorted(k for k in (sa or {}) if sb is not None and sa.get(k) != sb.get(k))
    result.update({
        "a": {"label": a["label"], "folder": a["folder"], "schedule": sa,
              "git_commit": (a["card"] or {}).get("git_commit")},
        "b": {"label": b["label"], "folder": b["folder"], "schedule": sb,
              "git_commit": (b["card"] or {}).get("git_commit")},
        "classes": classes, "bootstrap_unit": "duplicate group" if cluster == "group" else f"cluster ({cluster})",
        "rows": rows,
        "same_schedule": None if sa is None or sb is None else not differs,
        "schedule_differences": differs,
    })
    return result


def _fmt(x) -> str:
    return "—" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.3f}"


def _p(p) -> str:
    return "—" if p is None or not math.isfinite(p) else ("< 0.001" if p < 0.001 else f"{p:.3f}")


def markdown(result: dict) -> str:
    rows = []
    for name in SHOWN:
        m = result["metrics"].get(name)
        if m:
            rows.append([name, _fmt(m["a"]), _fmt(m["b"]),
                         f"{m['difference']:+.3f} [{m['low']:+.3f}, {m['high']:+.3f}]", _p(m["p_value"]),
                         m["method"]])
    table = markdown_table(["metric", "A", "B", "B − A [95% CI]", "p", "method"], rows)
    lines = [f"A = {result['a']['label']}, B = {result['b']['label']}; {result['n_images']} test images "
             f"({result['n_groups']} {result['bootstrap_unit']}s).", "", table]
    if result.get("rows", "same") != "same":
        lines[0] += f" Two tasks: compared on {result['rows']}."
    for name, ext in (result.get("external") or {}).items():
        ext_rows = [[m, _fmt(e["a"]), _fmt(e["b"]), f"{e['difference']:+.3f} [{e['low']:+.3f}, {e['high']:+.3f}]",
                     _p(e["p_value"]), e["method"]] for m, e in ext["metrics"].items()]
        lines += ["", f"External set **{name}** ({ext['n_images']} images both kept, {ext['n_groups']} groups "
                      "resampled):", "", markdown_table(["metric", "A", "B", "B − A [95% CI]", "p", "method"], ext_rows)]
    if result.get("same_schedule") is False:
        lines += ["", f"**The two were trained on different schedules** ({', '.join(result['schedule_differences'])}):"
                      " the difference mixes method and schedule."]
    return "\n".join(lines)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")


def write_comparison(result: dict, out_dir: Path, name: str) -> tuple[Path, Path]:
    json_path = write_text_atomic(out_dir / f"{name}.json", json.dumps(result, indent=2) + "\n")
    md_path = write_text_atomic(out_dir / f"{name}.md", f"# {name}\n\n{markdown(result)}\n")
    return json_path, md_path


def compare_runs(source_a, source_b, config: Config, n_resamples: int = 2000, seed: int = 0,
                 name: str | None = None, out_dir: Path | None = None) -> dict:
    """``braintumor compare``: two runs (or reports) on the same test rows."""
    root = config.root_path
    a, b = _side(source_a, root), _side(source_b, root)
    result = compare_sides(a, b, n_resamples, seed, config.evaluation.cluster)
    name = name or _slug(f"{a['label']}--vs--{b['label']}")
    result["paths"] = [str(p) for p in write_comparison(result, out_dir or config.reports_path / "comparisons", name)]
    return result


def combine_seeds(per_seed: dict[int, dict]) -> dict:
    """Rubin's-rules combination of per-seed paired differences: mean difference, within
    variance from each seed's interval, between-seed variance; normal interval and p."""
    combined = {}
    names = set.intersection(*(set(r["metrics"]) for r in per_seed.values()))
    for name in [n for n in SHOWN if n in names]:
        entries = [r["metrics"][name] for r in per_seed.values()]
        d = np.array([e["difference"] for e in entries])
        within = float(np.mean([((e["high"] - e["low"]) / (2 * Z95)) ** 2 for e in entries]))
        m = d.size
        between = float(d.var(ddof=1)) if m > 1 else 0.0
        se = math.sqrt(within + (1 + 1 / m) * between)
        mean = float(d.mean())
        p = float(2 * norm.sf(abs(mean) / se)) if se > 0 else (1.0 if mean == 0 else 0.0)
        combined[name] = {"a": float(np.mean([e["a"] for e in entries])),
                          "b": float(np.mean([e["b"] for e in entries])),
                          "difference": mean, "low": mean - Z95 * se, "high": mean + Z95 * se, "p_value": p,
                          "sd_seeds": math.sqrt(between), "n_seeds": m,
                          "method": f"per-seed {entries[0]['method'].split(' (')[0]}, combined over {m} seeds "
                                    "(Rubin's rules)"}
    return combined


def external_differences(ra: dict, rb: dict, seeds: list[int], root: Path, n_resamples: int, seed: int) -> dict:
    """Per external set both arms were scored on: paired differences on the images both runs
    kept (groups — patients — resampled), seed by seed, combined over seeds."""
    from ..reporting.recipes import paired_external

    out = {}
    names = set.intersection(*({n for n, e in (r.get("external") or {}).items() if "report_dir" in e}
                               for s in seeds for r in (ra[s], rb[s])))
    for name in sorted(names):
        per_seed = {}
        for s in seeds:
            sides = []
            for r in (ra[s], rb[s]):
                df = pd.read_csv(root / r["external"][name]["report_dir"] / PREDICTIONS, keep_default_na=False)
                sides.append(df[df["excluded"].astype(str) == ""])
            per_seed[s] = paired_external(*sides, n_resamples=n_resamples, seed=seed)
        first = per_seed[seeds[0]]
        out[name] = {"n_images": first["n_images"], "n_groups": first["n_groups"],
                     "metrics": combine_seeds(per_seed),
                     "per_seed": {str(s): r["metrics"] for s, r in per_seed.items()}}
    return out


def compare_arms(study: Study, arm_a: str, arm_b: str, config: Config, n_resamples: int = 2000, seed: int = 0,
                 allow_mixed: bool = False) -> dict:
    """``braintumor study compare``: two arms, seed by seed on the same test rows, then combined."""
    study.arm(arm_a), study.arm(arm_b)
    records = done_records(study, config)
    ra = {r["seed"]: r for r in records[arm_a]}
    rb = {r["seed"]: r for r in records[arm_b]}
    seeds = sorted(set(ra) & set(rb))
    if not seeds:
        raise BrainTumorError(f"no seed is finished in both {arm_a} and {arm_b} (see `braintumor study status`)")
    problems = []
    sa, sb = ra[seeds[0]]["schedule"], rb[seeds[0]]["schedule"]
    differs = [k for k in sa if sa[k] != sb.get(k)]
    if differs:
        problems.append("schedules differ: " + ", ".join(differs))
    # The shared code must match; each arm's own recipe modules may differ.
    codes = {r.get("core_fingerprint", r["code_fingerprint"]) for s in seeds for r in (ra[s], rb[s])}
    if len(codes) > 1:
        problems.append(f"code fingerprints differ: {sorted(codes)}")
    if problems and not allow_mixed:
        raise BrainTumorError(f"{arm_a} and {arm_b} are not matched ({'; '.join(problems)}); "
                              "pass --allow-mixed to compare anyway")
    root = config.root_path
    two_tasks = study.arm(arm_a).task != study.arm(arm_b).task
    per_seed = {}
    for s in seeds:
        side_a, side_b = _side(root / ra[s]["report_dir"], root), _side(root / rb[s]["report_dir"], root)
        side_a["label"], side_b["label"] = f"{arm_a} seed {s}", f"{arm_b} seed {s}"
        per_seed[s] = compare_sides(side_a, side_b, n_resamples, seed, config.evaluation.cluster, two_tasks)
    first = per_seed[seeds[0]]
    result = {
        "study": study.name, "a": {"label": arm_a, "schedule": ra[seeds[0]]["schedule"]},
        "b": {"label": arm_b, "schedule": rb[seeds[0]]["schedule"]},
        "difference": "B - A", "seeds": seeds, "n_images": first["n_images"], "n_groups": first["n_groups"],
        "bootstrap_unit": first["bootstrap_unit"], "classes": first["classes"], "rows": first["rows"],
        "same_schedule": not any(p.startswith("schedules") for p in problems), "matched_problems": problems,
        "schedule_differences": differs,
        "code_fingerprints": sorted(codes),
        "git_commits": sorted({r.get("git_commit") or "unknown" for s in seeds for r in (ra[s], rb[s])}),
        "metrics": combine_seeds(per_seed),
        "per_seed": {str(s): {k: v for k, v in r.items() if k in ("metrics",)} for s, r in per_seed.items()},
        "external": external_differences(ra, rb, seeds, root, n_resamples, seed),
    }
    name = _slug(f"{study.name}--{arm_a}--vs--{arm_b}")
    result["paths"] = [str(p) for p in write_comparison(result, config.reports_path / "comparisons", name)]
    return result
