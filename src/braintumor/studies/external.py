"""A study's external test sets: every finished run of a matching task is evaluated on them.

Declared in the study file (evaluation only: nothing is fitted on them)::

    [[external]]
    name = "lgg-flair-a"                    # reports/external/<name>/<run>/
    path = "lgg-flair-a/lgg_flair_a.csv"    # under the external-data folder
    tasks = ["mri", "pooled"]
    group_col = "patient"                   # patient bootstrap, within-patient AUC
    strata = ["mask_pixels:1000,4000"]
    # label_col = "subtype"                 # the CSV column with the labels (default label)

The external-data folder is ``$BRAINTUMOR_EXTERNAL_DIR`` if set, else ``data/external``
in the project. A set that is not there is reported as missing, never as a failure of the
run: the Kaggle result stands on its own, and ``study run`` fills the external reports in
later (from the saved model) once the folder exists.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..config import Config
from ..errors import BrainTumorError

EXTERNAL_DIR_ENV = "BRAINTUMOR_EXTERNAL_DIR"
HEADLINE = ("roc_auc", "sensitivity", "specificity", "accuracy", "macro_auc_ovr")


@dataclass(frozen=True)
class ExternalSpec:
    name: str
    path: str
    tasks: tuple[str, ...]
    group_col: str | None = None
    strata: tuple[str, ...] = ()
    label_map: dict = field(default_factory=dict)
    label_col: str = "label"


def parse_external(where: str, entries: list) -> tuple[ExternalSpec, ...]:
    out = []
    for i, e in enumerate(entries or []):
        e = dict(e)
        extra = set(e) - {"name", "path", "tasks", "group_col", "strata", "label_map", "label_col"}
        if extra or not all(k in e for k in ("name", "path", "tasks")):
            raise BrainTumorError(f"{where}: external set {i + 1} needs name, path and tasks "
                                  f"(optional group_col, strata, label_map, label_col); unknown keys {sorted(extra)}")
        out.append(ExternalSpec(e["name"], e["path"], tuple(e["tasks"]), e.get("group_col"),
                                tuple(e.get("strata", ())), dict(e.get("label_map", {})), e.get("label_col", "label")))
    if len({s.name for s in out}) != len(out):
        raise BrainTumorError(f"{where}: external sets need distinct names")
    return tuple(out)


def external_folder(config: Config) -> Path:
    env = os.environ.get(EXTERNAL_DIR_ENV)
    return Path(env).expanduser() if env else config.root_path / "data" / "external"


def headline(report: dict, root: Path, out: Path) -> dict:
    """What a study record keeps of an external report."""
    m = report["test"]["metrics"]
    w = report.get("within_group_auc") or {}
    return {"metrics": {k: m[k] for k in HEADLINE if k in m},
            "within_group_auc_median": w.get("median"), "n_groups": w.get("n_groups"),
            "n_kept": report["exclusions"]["n_kept"], "n_images": report["exclusions"]["n_images"],
            "report_dir": str(out.relative_to(root)) if out.is_relative_to(root) else str(out)}


def evaluate_sets(specs: tuple[ExternalSpec, ...], run_dir: Path, config: Config, progress: bool = False,
                  say=print) -> dict:
    """``{set name: headline or {"missing": why}}`` for the sets that apply to the run's task."""
    from ..external import Options, evaluate_external, report_dir

    results = {}
    for spec in specs:
        if config.task not in spec.tasks:
            continue
        data = external_folder(config) / spec.path
        if not data.exists():
            results[spec.name] = {"missing": f"{data} not found (set ${EXTERNAL_DIR_ENV})"}
            say(f"    external set {spec.name}: {data} not found; set ${EXTERNAL_DIR_ENV} and run "
                f"`braintumor study run` again to add it")
            continue
        opts = Options(spec.name, dict(spec.label_map), spec.group_col, list(spec.strata), spec.label_col,
                       figures=False, progress=progress)
        report = evaluate_external(run_dir, data, opts, config)
        results[spec.name] = headline(report, config.root_path, report_dir(config, spec.name, run_dir))
    return results


def missing_sets(specs: tuple[ExternalSpec, ...], record: dict) -> list[str]:
    """Sets that apply to a finished run but have no report in its record."""
    have = record.get("external") or {}
    return [s.name for s in specs if record["task"] in s.tasks
            and (s.name not in have or "missing" in have[s.name])]
