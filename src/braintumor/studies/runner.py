"""Run a study's missing runs, within a time budget, and say what is done.

A run is *done* when ``reports/studies/<study>/<arm>/seed-<seed>.json`` exists and its key
(:func:`~braintumor.studies.spec.run_key`) equals the key of the run's current config,
manifest and code, or when another study holds a record with that key (the same run, not
trained twice); *stale* when the file exists with another key; *missing* otherwise.
``run_study`` trains and evaluates the runs that are not done, seed by seed (so an
interrupted study has every arm at the same number of seeds), and stops before a run
whose estimated time (from the finished runs' own timing) would overrun the budget.

Each finished run leaves, for commit:

* ``models/<task>[-preprocess][-recipe]/study-<study>-s<seed>-<key8>/``: model card and
  training history (``model.keras`` is git-ignored);
* ``reports/studies/<study>/<arm>/seed-<seed>/``: ``metrics.json`` and ``predictions.csv``;
* ``reports/studies/<study>/<arm>/seed-<seed>.json``: the result record (key, config,
  code fingerprint, commit, timing, headline metrics).
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .. import recipes
from ..config import Config, result_name
from ..errors import BrainTumorError
from ..files import write_text_atomic
from ..reporting import provenance
from .external import evaluate_sets, missing_sets
from .spec import Arm, Study, code_fingerprint, run_key, schedule_of

RUN_PREFIX = "study-"
# Seconds per work unit before any run is timed: the idle-machine MRI run (head +
# 4 fine-tuning epochs, 390 s) is ~39,000 units. Later estimates use the finished runs.
DEFAULT_SECONDS_PER_UNIT = 1 / 100
OVERHEAD_SECONDS = 20.0  # model build, data loading and saving per run


@dataclass
class RunState:
    arm: Arm
    seed: int
    config: Config
    key: str
    record_path: Path
    status: str  # done | stale | missing
    record: dict | None


def record_path(study: Study, config: Config, arm: Arm, seed: int) -> Path:
    return study.reports_dir(config) / arm.name / f"seed-{seed}.json"


def read_record(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def manifest_sha256(config: Config) -> str:
    from ..data.splits import read_manifest

    if not config.manifest_path.is_file():
        raise BrainTumorError(f"{config.manifest_path}: no split manifest (run `braintumor split`)")
    return read_manifest(config.manifest_path).attrs.get("manifest_sha256", "")


def states(study: Study, base: Config, only: list[str] | None = None) -> list[RunState]:
    """Every run of the study (seed-major order) with its status."""
    manifest = manifest_sha256(base)
    code = {arm.recipe: code_fingerprint(arm.recipe) for arm in study.arms}
    arms = [study.arm(name) for name in only] if only else list(study.arms)
    out, shared = [], None
    for seed in study.seeds:
        for arm in arms:
            cfg = study.config(arm, seed, base)
            key = run_key(cfg, manifest, code[arm.recipe])
            path = record_path(study, base, arm, seed)
            record = read_record(path) if path.is_file() else None
            status = "missing" if record is None else ("done" if record.get("key") == key else "stale")
            if status != "done":
                shared = shared_records(study, base) if shared is None else shared  # read once, if needed
                if key in shared:
                    record, status = shared[key], "done"
            out.append(RunState(arm, seed, cfg, key, path, status, record))
    return out


def shared_records(study: Study, base: Config) -> dict[str, dict]:
    """Other studies' finished runs by key: a run with the same key has the same config (seed
    included), manifest and code, so it is the same run and counts as done here rather than
    being trained again."""
    out: dict[str, dict] = {}
    for path in sorted(study.reports_dir(base).parent.glob("*/*/seed-*.json")):
        if path.parent.parent.name != study.name and (record := read_record(path)) and "key" in record:
            out.setdefault(record["key"], record)
    return out


def status_table(study: Study, base: Config) -> list[dict]:
    """Per arm: seeds done, stale and missing."""
    rows = {arm.name: {"arm": arm.name, "done": [], "stale": [], "missing": []} for arm in study.arms}
    for s in states(study, base):
        rows[s.arm.name][s.status].append(s.seed)
    return list(rows.values())


# ------------------------------------------------------------------------------ estimates
def work_units(config: Config) -> float:
    """A run's cost in 'forward passes of one image': feature extraction of train + val,
    fine-tuning (about 2 forward passes per image and epoch), the validation passes
    (phase selection, each fine-tuning epoch, the card's summary, evaluation) and the test
    pass. Read from the manifest only (no images)."""
    from ..study import load_split

    train = load_split(config, "train", progress=False).rows
    val = load_split(config, "val", progress=False).rows
    test = load_split(config, "test", progress=False).rows
    n_train, n_val = len(train), len(val)
    if "lesions" in recipes.parts(config.recipe):  # lesioned copies of the healthy images, in train and val
        n_train += int((train["y"] == 0).sum()) * config.lesion_copies  # y 0 = healthy
        n_val += int((val["y"] == 0).sum()) * config.lesion_copies
    epochs = config.epochs_finetune if config.finetune_fraction > 0 else 0
    scale = (config.image_size / 224) ** 2
    return scale * (n_train * (1 + 2 * epochs) + n_val * (5 + epochs) + len(test))


def estimate_seconds(config: Config, arm: str, records: list[dict]) -> tuple[float, str]:
    """Estimated wall time of a run and how it was estimated: seconds per work unit from
    finished runs of the same arm if any, else of any arm, else a default."""
    def rate(rs):
        values = [r["timing"]["total_seconds"] / r["work_units"] for r in rs
                  if r.get("work_units") and r.get("timing", {}).get("total_seconds")]
        return statistics.median(values) if values else None

    same = rate([r for r in records if r.get("arm") == arm])
    any_ = rate(records)
    per_unit, basis = ((same, "this arm's finished runs") if same is not None else
                       (any_, "finished runs of other arms") if any_ is not None else
                       (DEFAULT_SECONDS_PER_UNIT, "a default rate (no run timed yet)"))
    return OVERHEAD_SECONDS + per_unit * work_units(config), basis


# ------------------------------------------------------------------------------ running
def run_id(study: Study, seed: int, key: str) -> str:
    return f"{RUN_PREFIX}{study.name}-s{seed}-{key[:8]}"


def _relative(path: Path, root: Path) -> str:
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def _headline(report: dict) -> dict:
    test = report["test"]
    return {"metrics": test["metrics"], "proportion_intervals": test.get("proportion_intervals"),
            "n_images": test["n_images"], "n_groups": test["n_groups"],
            "bootstrap_unit": test["bootstrap"]["unit"]}


def run_one(study: Study, state: RunState, verbose: int = 0) -> dict:
    """Train and evaluate one run; write and return its record."""
    from ..cli.models import note_task_defaults
    from ..evaluate import evaluate_run
    from ..models.modelcard import read_card
    from ..ood import fit_ood
    from ..training import train

    cfg, root = state.config, state.config.root_path
    if state.record and state.status == "stale":  # superseded: drop its model and external reports
        old = root / state.record.get("run_dir", "")
        if old.name.startswith(RUN_PREFIX) and old != root:
            for folder in [old, *(cfg.reports_path / "external" / s.name / old.name for s in study.external)]:
                if folder.is_dir():
                    shutil.rmtree(folder)
    units = work_units(cfg)
    t0 = time.perf_counter()
    run_dir = train(cfg, verbose=verbose, run_id=run_id(study, state.seed, state.key))
    note_task_defaults(run_dir, cfg)  # the card says whether this arm is its task's default
    t1 = time.perf_counter()
    out = state.record_path.with_suffix("")  # reports/studies/<study>/<arm>/seed-<seed>/
    report = evaluate_run(run_dir, cfg, figures=False, progress=verbose > 0, out=out)
    t2 = time.perf_counter()
    external = evaluate_sets(study.external, run_dir, cfg, progress=verbose > 0)
    # After the external sets, so that their modality exclusions come from the one
    # model-independent check for every run (paired comparisons keep the same images).
    ood = _ood_summary(fit_ood(run_dir, cfg, progress=verbose > 0))
    t3 = time.perf_counter()
    card = read_card(run_dir)
    record = {
        "study": study.name, "arm": state.arm.name, "seed": state.seed, "key": state.key,
        "task": cfg.task, "preprocess": cfg.preprocess, "recipe": cfg.recipe,
        # The run's code, and the part every arm shares (what `study compare` matches on).
        "code_fingerprint": code_fingerprint(cfg.recipe), "core_fingerprint": code_fingerprint(), "git_commit": card.get("git_commit"),
        "schedule": schedule_of(cfg), "config": cfg.to_dict() | {"root": None, "data_dir": None},
        "run_dir": _relative(run_dir, root), "report_dir": _relative(out, root),
        "kept_phase": card["training"].get("kept_phase"),
        "phase_selection": card["training"].get("phase_selection"),
        "epochs_run": card["training"]["epochs_run"],
        "validation": card["validation_metrics"],
        "test": _headline(report),
        "threshold": report.get("threshold"),
        "external": external,
        "ood": ood,
        "timing": {"train_seconds": round(t1 - t0, 1), "evaluate_seconds": round(t2 - t1, 1),
                   "external_seconds": round(t3 - t2, 1),
                   "total_seconds": round(t3 - t0, 1), "training": card["training"]["timing"]},
        "work_units": units,
        "machine": provenance.machine_description(),
        "created": provenance.now_iso(),
    }
    write_text_atomic(state.record_path, json.dumps(record, indent=2) + "\n")
    return record


def run_study(study: Study, base: Config, budget_minutes: float | None = None, only: list[str] | None = None,
              verbose: int = 0, say: Callable[[str], None] = print) -> dict:
    """Train and evaluate the study's runs that are not done, within ``budget_minutes``.

    Returns ``{"finished": [...], "remaining": n, "stopped_for_budget": bool}``.
    """
    start = time.perf_counter()
    fill_external(study, base, only, say, verbose)
    todo = [s for s in states(study, base, only) if s.status != "done"]
    records = [s.record for s in states(study, base) if s.status == "done"]
    finished: list[dict] = []
    stopped = False
    for i, state in enumerate(todo):
        estimate, basis = estimate_seconds(state.config, state.arm.name, records)
        elapsed = time.perf_counter() - start
        if budget_minutes is not None and elapsed + estimate > budget_minutes * 60:
            say(f"stopping before {state.arm.name} seed {state.seed}: estimated {estimate / 60:.1f} min "
                f"({basis}), {max(0.0, budget_minutes - elapsed / 60):.1f} of {budget_minutes:g} min left; "
                f"{len(todo) - i} run(s) remain")
            stopped = True
            break
        say(f"[{i + 1}/{len(todo)}] {state.arm.name} seed {state.seed} ({state.status}; "
            f"estimated {estimate / 60:.1f} min from {basis}) ...")
        record = run_one(study, state, verbose)
        m = record["test"]["metrics"]
        auc = m.get("roc_auc", m.get("macro_auc_ovr", {})).get("value")
        say(f"    done in {record['timing']['total_seconds'] / 60:.1f} min: test accuracy "
            f"{m['accuracy']['value']:.3f}, AUC {auc if auc is None else round(auc, 3)}, kept {record['kept_phase']}"
            + "".join(f"; {name} AUC {e['metrics']['roc_auc']['value']:.3f}"
                      for name, e in record["external"].items() if "roc_auc" in e.get("metrics", {})))
        finished.append(record)
        records.append(record)
    return {"finished": finished, "remaining": len(todo) - len(finished), "stopped_for_budget": stopped}


def _ood_summary(summary: dict) -> dict:
    return {"threshold": summary["threshold"], "val_keep_rate": summary["val_keep_rate"],
            "modality_val_accuracy": summary["modality"]["val_accuracy"]}


def fill_external(study: Study, base: Config, only: list[str] | None = None, say: Callable[[str], None] = print,
                  verbose: int = 0) -> int:
    """Complete finished runs from their saved models, without retraining (the key and the
    Kaggle results are unchanged): external sets they have no report for (a set added to
    the study, or found only now), then the out-of-distribution check if it is missing.
    Returns how many runs were updated."""
    from ..ood import OOD_NAME, fit_ood

    updated = 0
    for s in states(study, base, only):
        run_dir = base.root_path / s.record["run_dir"] if s.record else None
        sets = missing_sets(study.external, s.record) if s.status == "done" else []
        if s.status != "done" or not (sets or not (run_dir / OOD_NAME).is_file()):
            continue
        if not (run_dir / "model.keras").is_file():  # trained elsewhere: the weights are not in git
            if sets:
                say(f"{s.arm.name} seed {s.seed}: no saved model in {run_dir}, cannot add external sets")
            continue
        if sets:
            say(f"{s.arm.name} seed {s.seed}: external sets {', '.join(sets)} ...")
            s.record["external"] = {**(s.record.get("external") or {}),
                                    **evaluate_sets(study.external, run_dir, s.config, verbose > 0, say)}
        if not (run_dir / OOD_NAME).is_file():
            say(f"{s.arm.name} seed {s.seed}: out-of-distribution check ...")
            s.record["ood"] = _ood_summary(fit_ood(run_dir, s.config, progress=verbose > 0))
        write_text_atomic(s.record_path, json.dumps(s.record, indent=2) + "\n")
        updated += 1
    return updated


def done_records(study: Study, base: Config) -> dict[str, list[dict]]:
    """Per arm, the records of its current (done) runs, by seed."""
    out: dict[str, list[dict]] = {arm.name: [] for arm in study.arms}
    for s in states(study, base):
        if s.status == "done":
            out[s.arm.name].append(s.record)
    return out


def resolve_study_path(path: str | Path | None, config: Config) -> Path:
    """``--study`` as given (absolute, or relative to the current folder or the project),
    default ``studies/main.toml`` of the project."""
    if path is None:
        return config.root_path / "studies" / "main.toml"
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return config.root_path / p


def result_folder(record: dict) -> str:
    return result_name(record["task"], record["preprocess"], record["recipe"])
