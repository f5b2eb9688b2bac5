"""A study file: arms × seeds on one schedule, and the key that says whether a run is current.

A study is a TOML file (``studies/main.toml``)::

    name = "main"
    seeds = [1, 2, 3]

    [schedule]              # Config fields every arm shares (the matched part)
    epochs_finetune = 2
    lr_finetune = 2e-4

    [evaluation]            # Config.evaluation fields (optional)
    n_resamples = 1000

    [[arms]]
    task = "ct"
    preprocess = "crop-mask"
    recipe = "none"         # optional; name defaults to result_name(task, preprocess, recipe)

An arm may carry its own ``schedule`` table, but then it is not matched to the others and
``study compare`` refuses to compare it (``study report`` says so).

Each run (arm × seed) is keyed by a hash of its full :class:`~braintumor.config.Config`
(paths left out), the split manifest's SHA-256 and the :func:`code_fingerprint` of the
package: a result whose key differs from the current one is *stale* and is trained again.
"""
from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from .. import recipes
from ..config import Config, result_name
from ..data.tasks import TASKS, get_task
from ..errors import BrainTumorError
from .external import parse_external

# Fields that say *which* run this is or where files live, not how it was trained.
IDENTITY_FIELDS = ("task", "preprocess", "recipe", "seed")
LOCATION_FIELDS = ("root", "data_dir", "audit", "extra")
# Package files that cannot change a result (command line, app, README/report writing, this
# study bookkeeping): editing them does not make finished runs stale.
# Training and evaluation never import these (the command line, app, predict's input
# reading and file streaming, DICOM/NIfTI, external evaluation, audits, README/report writing).
NOT_RESULT_AFFECTING = ("cli/", "serve.py", "__main__.py", "inputs.py", "predict_files.py", "studies/",
                        "reporting/", "scans/", "external/", "audit/")
# Config's values are in the run key (:func:`run_key` hashes the whole resolved Config), and
# config.py holds no training logic (paths and (de)serialisation), so a changed *default*
# (the default recipe, say) makes stale exactly the runs whose config it changes.
KEYED_BY_VALUE = ("config.py",)
RECIPES_DIR = "recipes/"


def code_fingerprint(recipe: str = "none", package_dir: Path | None = None) -> str:
    """SHA-256 (12 hex digits) of the package's Python source that can affect a run's result.

    Content, not the git commit: a commit that only touches README, reports, the CLI or
    another arm's recipe leaves finished runs current, and uncommitted edits to training
    code make them stale. Of :mod:`braintumor.recipes` only the package's ``__init__`` and
    the run's own recipe modules count, so adding a recipe does not make other arms stale.
    """
    from .. import recipes

    package_dir = package_dir or Path(__file__).resolve().parents[1]
    own = {f"{RECIPES_DIR}__init__.py"} | {f"{RECIPES_DIR}{name}.py" for name in recipes.parts(recipe)}
    declared = set(recipes.depends(recipe))  # e.g. audit/sources.py for the source recipes
    h = hashlib.sha256()
    for path in sorted(package_dir.rglob("*.py")):
        rel = path.relative_to(package_dir).as_posix()
        skipped = any(rel.startswith(skip) if skip.endswith("/") else rel == skip
                      for skip in NOT_RESULT_AFFECTING)
        if (skipped and rel not in declared) or rel in KEYED_BY_VALUE:
            continue
        if rel.startswith(RECIPES_DIR) and rel not in own | declared:
            continue
        h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def schedule_of(config: Config) -> dict:
    """The part of a run's config that must match between compared arms: everything but
    its identity (task, preprocessing, recipe, seed) and locations."""
    d = config.to_dict()
    return {k: v for k, v in d.items() if k not in IDENTITY_FIELDS + LOCATION_FIELDS}


def run_key(config: Config, manifest_sha256: str, code: str) -> str:
    """What a finished run must match to count as current: 16 hex digits."""
    d = {k: v for k, v in config.to_dict().items() if k not in LOCATION_FIELDS}
    payload = json.dumps({"config": d, "manifest": manifest_sha256, "code": code}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Arm:
    name: str
    task: str
    preprocess: str = "none"
    recipe: str = "none"
    schedule: dict = field(default_factory=dict)  # overrides of the study's schedule (unmatched)


@dataclass(frozen=True)
class Study:
    name: str
    path: Path
    seeds: tuple[int, ...]
    arms: tuple[Arm, ...]
    schedule: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    description: str = ""
    external: tuple = ()  # ExternalSpec: sets every finished run of their tasks is evaluated on
    comparisons: tuple = ()  # (arm A, arm B) pairs `study report` compares (README's claims)

    def arm(self, name: str) -> Arm:
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise BrainTumorError(f"study {self.name!r} has no arm {name!r}; arms: "
                              + ", ".join(a.name for a in self.arms))

    def config(self, arm: Arm, seed: int, base: Config | None = None) -> Config:
        """The full Config of one run: ``base`` (paths, data folder) + schedule + arm + seed."""
        base = base or Config()
        changes = {**self.schedule, **arm.schedule}
        changes = {k: tuple(v) if isinstance(v, list) else v for k, v in changes.items()}
        return base.replace(**changes, task=arm.task, preprocess=arm.preprocess, recipe=arm.recipe,
                            seed=int(seed), evaluation=dict(self.evaluation))

    def reports_dir(self, config: Config) -> Path:
        return config.reports_path / "studies" / self.name


_CONFIG_FIELDS = set(Config.__dataclass_fields__)
_NOT_IN_SCHEDULE = set(IDENTITY_FIELDS + LOCATION_FIELDS) | {"evaluation"}


def _check_schedule(where: str, schedule: dict) -> dict:
    bad = set(schedule) - (_CONFIG_FIELDS - _NOT_IN_SCHEDULE)
    if bad:
        raise BrainTumorError(f"{where}: not schedule fields: {sorted(bad)} (a schedule sets Config fields "
                              f"other than {', '.join(sorted(_NOT_IN_SCHEDULE))})")
    return dict(schedule)


def load_study(path: str | Path) -> Study:
    """Read and check a study file."""
    path = Path(path)
    if not path.is_file():
        raise BrainTumorError(f"{path}: no such study file")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BrainTumorError(f"{path}: not valid TOML ({e})") from None
    unknown = set(raw) - {"name", "description", "seeds", "schedule", "evaluation", "arms", "external",
                          "compare"}
    if unknown:
        raise BrainTumorError(f"{path}: unknown keys {sorted(unknown)}")
    seeds = tuple(int(s) for s in raw.get("seeds", ()))
    if not seeds or len(set(seeds)) != len(seeds):
        raise BrainTumorError(f"{path}: 'seeds' must list distinct seeds")
    schedule = _check_schedule(str(path), raw.get("schedule", {}))
    evaluation = dict(raw.get("evaluation", {}))
    bad_eval = set(evaluation) - set(Config().evaluation.__dataclass_fields__)
    if bad_eval:
        raise BrainTumorError(f"{path}: unknown evaluation settings {sorted(bad_eval)}")
    arms = []
    for i, a in enumerate(raw.get("arms", [])):
        a = dict(a)
        if "task" not in a or a["task"] not in TASKS:
            raise BrainTumorError(f"{path}: arm {i + 1} needs a task, one of {sorted(TASKS)}")
        extra = set(a) - {"name", "task", "preprocess", "recipe", "schedule"}
        if extra:
            raise BrainTumorError(f"{path}: arm {i + 1}: unknown keys {sorted(extra)}")
        preprocess, recipe = a.get("preprocess", "none"), a.get("recipe", "none")
        try:
            recipes.check(recipe, get_task(a["task"]).binary, a["task"])
        except ValueError as e:
            raise BrainTumorError(f"{path}: arm {i + 1}: {e}") from None
        arms.append(Arm(a.get("name") or result_name(a["task"], preprocess, recipe), a["task"], preprocess,
                        recipe, _check_schedule(f"{path}: arm {i + 1}", a.get("schedule", {}))))
    names = [a.name for a in arms]
    if not arms or len(set(names)) != len(names):
        raise BrainTumorError(f"{path}: needs at least one arm, with distinct names (got {names})")
    pairs = []
    for i, c in enumerate(raw.get("compare", [])):
        if set(c) != {"a", "b"} or not {c["a"], c["b"]} <= set(names) or c["a"] == c["b"]:
            raise BrainTumorError(f"{path}: compare {i + 1} needs a and b, two different arms of {names}")
        pairs.append((c["a"], c["b"]))
    return Study(raw.get("name") or path.stem, path, seeds, tuple(arms), schedule, evaluation,
                 raw.get("description", ""), parse_external(str(path), raw.get("external", [])), tuple(pairs))
