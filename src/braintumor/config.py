"""One settings object for the whole pipeline, and where files live.

:class:`Config` travels from the CLI or the notebook through indexing, splitting,
training and evaluation, so a run is described by one value that is saved beside the
model. Paths are resolved here and nowhere else.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

KAGGLE_HANDLE = "murtozalikhon/brain-tumor-multimodal-image-ct-and-mri"
DATA_DIR_ENV = "BRAINTUMOR_DATA_DIR"  # folder holding the two modality folders
ROOT_ENV = "BRAINTUMOR_ROOT"  # project folder holding data/, models/, reports/


def project_root() -> Path:
    """The folder that holds ``data/``, ``models/`` and ``reports/``.

    ``$BRAINTUMOR_ROOT`` if set; else the source checkout this package was installed
    from (editable install, the common case for this research repo); else the
    current directory, so ``pip install`` users get files where they run commands.
    """
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file() and (checkout / "src" / "braintumor").is_dir():
        return checkout
    return Path.cwd().resolve()


# How a task is trained when a run does not say: the best arm of the matched study for that
# task (studies/main.toml; README, "Detecting the tumour"), so that `braintumor train` makes
# the models the study supports. A study keys runs by their resolved Config, so changing an
# entry here makes stale exactly the runs whose settings it changes. Tasks not listed train
# plainly (raw images, no recipe, the study's 2 fine-tuning epochs).
# MRI (round 2, 3 seeds each, paired): crop-mask-zscore + nsa scored lgg-flair-a AUC 0.753
# against 0.570 for plain training, with SARTAJ (0.989) and Kaggle-test AUC (0.997) unchanged;
# lesions+patches reached 0.791 on lgg-flair-a but lost 0.05 SARTAJ AUC, so it is not the
# default. Fine-tuned for 4 epochs instead of 2 (studies/finetune.toml, 3 seeds, paired) the
# same recipe reaches lgg-flair-a 0.837 (+0.084) for a SARTAJ AUC of 0.983 (-0.006, ns), and
# validation AUC rises in every seed too. Chosen on the external sets' scores (README says so beside
# them). CT has no external set to choose on, and the sub-type task no recipe study, so they
# train plainly.
TASK_DEFAULTS: dict[str, dict] = {
    "mri": {"preprocess": "crop-mask-zscore", "recipe": "nsa", "epochs_finetune": 4},
}
DEFAULTS_SOURCE = {"mri": "studies/main.toml, round 2, and studies/finetune.toml (README: 'The matched study')"}
PLAIN = {"preprocess": "none", "recipe": "none", "epochs_finetune": 2}


def task_defaults(task: str) -> dict:
    """``preprocess``, ``recipe`` and ``epochs_finetune`` of ``task`` when a run leaves them
    unset (:data:`TASK_DEFAULTS`)."""
    return {**PLAIN, **TASK_DEFAULTS.get(task, {})}


def defaults_note(config: "Config") -> dict:
    """What a model card says about the task's default training: which it is, whether this run
    used it, and where the evidence for it is."""
    default = task_defaults(config.task)
    return {**default, "this_run_uses_it": all(getattr(config, k) == v for k, v in default.items()),
            "chosen_by": DEFAULTS_SOURCE.get(config.task)
            or "plain: no study arm did better on the external sets without a loss elsewhere"}


def _opt(default=dataclasses.MISSING, help: str = "", **cli):
    """A settings field whose ``help`` (and CLI details: ``flag``, ``type``) the command line
    reads (:func:`braintumor.cli.add_option`); mutable defaults are copied per instance."""
    meta = {"help": help, **cli}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class AuditSettings:
    """The shortcut audit's own settings (``braintumor audit-shortcuts``); the backbone,
    image size and seed are the :class:`Config`'s."""

    tasks: tuple[str, ...] = _opt(("ct", "mri"), "tasks to audit")
    c_grid: tuple[float, ...] = _opt((1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0),
                                     "inverse regularisation strengths tried on validation")
    border_centre: float = _opt(0.70, "share of each side blanked in the middle by the border probe")
    head_margin: int = _opt(3, "pixels (of the prepared image) around the head region in probes 3 and 4")
    thumbnail_size: int = _opt(16, "side of the grey thumbnail probe")
    n_resamples: int = _opt(1000, "bootstrap resamples", flag="--resamples")
    n_permutations: int = _opt(20, "label shufflings in the permutation control (its empirical null)")
    batch_size: int = _opt(64, "feature extraction batch size")
    limit_per_class: int | None = _opt(None, "at most this many images per split and class (quick run)",
                                       type=int)
    workers: int | None = _opt(None, "processes for text detection (default: all cores)", type=int)


@dataclass(frozen=True)
class EvaluationSettings:
    """How ``braintumor evaluate`` picks the operating point and its intervals."""

    rule: str = _opt("youden", "threshold rule, applied to validation",
                     choices=("youden", "sensitivity", "specificity"))
    target: float = _opt(0.95, "target for the sensitivity/specificity rule")
    n_resamples: int = _opt(1000, "bootstrap resamples", flag="--resamples")
    seed: int = _opt(0, "bootstrap seed")
    cluster: str = _opt("group", "manifest column whose values the bootstrap resamples whole "
                        "(duplicate groups; a coarser source cluster once the manifest has one)")


@dataclass
class Config:
    """Every setting of a run, the shortcut audit and evaluation.

    The training defaults are the schedule of the matched study (``studies/main.toml``:
    head ≤ 60 epochs on cached features, then 2 fine-tuning epochs of the top 40% at
    lr 2e-4), so ``braintumor train`` reproduces a study run; MRI's default fine-tunes 4 epochs
    (``studies/finetune.toml``, :data:`TASK_DEFAULTS`). The single-seed models
    published before the study differ only in ``epochs_finetune``: 8 (CT raw), 4 (MRI
    raw) and 1 (the notebook's crop-mask models); their cards record it.
    """

    task: str = _opt("ct", "task to train")
    backbone: str = _opt("efficientnet_lite0",
                         "registered backbone name or a path to a .keras backbone")
    weights: str | None = _opt("imagenet", "None = random initialisation (said in the model card)")
    image_size: int = _opt(224, "input side in pixels")
    batch_size: int = _opt(32, "batch size")
    epochs_frozen: int = _opt(60, "max head epochs on cached features (early-stopped)")
    # None: the task's default (task_defaults): the study's 2, or 4 for MRI.
    epochs_finetune: int | None = _opt(None, "fine-tuning epochs", type=int)
    lr_frozen: float = _opt(1e-3, "head learning rate")
    lr_finetune: float = _opt(2e-4, "peak fine-tuning learning rate (cosine decay)")
    finetune_fraction: float = _opt(0.4, "share of backbone layers (from the top) unfrozen in phase 2")
    dropout: float = _opt(0.2, "dropout before the head")
    augment: bool = _opt(True, "augment training images in phase 2")
    # None: the task's default (task_defaults), filled in on construction.
    preprocess: str | None = _opt(None, "image preprocessing before resizing: none, crop-mask or "
                                  "crop-mask-zscore (crop-mask, then grey levels standardised inside the head)",
                                  type=str)
    recipe: str | None = _opt(None, "training recipe: none or a module of braintumor.recipes; combine with '+'",
                              type=str)
    lesion_copies: int = _opt(1, "synthetic-lesion copies per healthy training image (recipe lesions)")
    seed: int = _opt(1337, "random seed")
    quick: bool = _opt(False, "small stratified subset and few epochs (smoke run)")
    quick_per_class: int = _opt(60, "training images per class in a quick run")
    split_name: str = _opt("default", "manifest name under data/splits/")
    phash_threshold: int = _opt(0, "pHash Hamming distance that makes two images duplicates")
    split_fractions: tuple[float, float, float] = _opt((0.70, 0.15, 0.15), "train / val / test shares",
                                                       flag="--fractions")
    data_dir: str | None = _opt(None, "dataset folder (default: $BRAINTUMOR_DATA_DIR, data/raw, or download)",
                                type=str)
    root: str | None = _opt(None, "project folder (default: project_root())", type=str)
    audit: AuditSettings = field(default_factory=AuditSettings)
    evaluation: EvaluationSettings = field(default_factory=EvaluationSettings)
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, value in task_defaults(self.task).items():
            if getattr(self, name) is None:
                setattr(self, name, value)

    # -- paths ---------------------------------------------------------------------
    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve() if self.root else project_root()

    @property
    def data_path(self) -> Path:
        return self.root_path / "data"

    @property
    def cache_path(self) -> Path:
        return self.data_path / "cache"

    @property
    def splits_path(self) -> Path:
        return self.data_path / "splits"

    @property
    def manifest_path(self) -> Path:
        return self.splits_path / f"{self.split_name}.csv"

    @property
    def models_path(self) -> Path:
        return self.root_path / "models"

    @property
    def pretrained_path(self) -> Path:
        return self.models_path / "pretrained"

    @property
    def reports_path(self) -> Path:
        return self.root_path / "reports"

    def replace(self, **changes) -> "Config":
        """A copy with ``changes``; ``audit`` / ``evaluation`` also take a dict of their fields.
        A new ``task`` brings its own defaults for settings that held the old task's defaults."""
        if changes.get("task", self.task) != self.task:
            for name, value in task_defaults(self.task).items():
                if name not in changes and getattr(self, name) == value:
                    changes[name] = None
        for name in _SECTIONS:
            if isinstance(changes.get(name), dict):
                changes[name] = dataclasses.replace(getattr(self, name), **changes[name])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain JSON types (tuples as lists), nested sections as dicts."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """The inverse of :meth:`to_dict`; unknown keys (from older or newer cards) are ignored,
        and settings an older card predates mean what they meant then (plain: no preprocessing,
        no recipe), not today's task defaults."""
        return _from_dict(cls, {**PLAIN, **d})


_SECTIONS = {"audit": AuditSettings, "evaluation": EvaluationSettings}


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _from_dict(cls, d: dict):
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            continue
        value = d[f.name]
        if f.name in _SECTIONS and isinstance(value, dict):
            value = _from_dict(_SECTIONS[f.name], value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def result_name(task: str, preprocess: str = "none", recipe: str = "none") -> str:
    """Folder name of a task's runs and reports: ``ct`` for raw images and the plain recipe,
    ``ct-crop-mask`` with preprocessing, ``ct-crop-mask-lesions`` with a training recipe too.

    Models of one task made differently live apart, so ``--model models/ct`` never picks a
    model trained on different preprocessing or recipe just because it is newer.
    """
    parts = [task] + [p for p in (preprocess, recipe) if p not in ("none", "", None)]
    return "-".join(parts)


def scratch_root(source: Config | None = None) -> Path:
    """A temporary project folder for smoke runs (notebook QUICK mode, tests).

    It holds a copy of the committed split manifests and links to the source's caches
    (index, decoded images, converted weights), so a quick run is fast but never writes
    models or reports over the study's.
    """
    import shutil
    import tempfile

    source = source or Config()
    scratch = Path(tempfile.mkdtemp(prefix="braintumor-scratch-"))
    shutil.copytree(source.splits_path, scratch / "data" / "splits")
    for shared in (source.cache_path, source.pretrained_path):
        shared.mkdir(parents=True, exist_ok=True)
        link = scratch / shared.relative_to(source.root_path)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(shared, target_is_directory=True)
    return scratch
