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


@dataclass
class Config:
    """Every setting of a run. Defaults are the published configuration."""

    task: str = "ct"
    backbone: str = "efficientnet_lite0"
    weights: str | None = "imagenet"  # None = random initialisation (said in the model card)
    image_size: int = 224
    batch_size: int = 32
    epochs_frozen: int = 60  # on cached features: seconds per epoch; early stopping ends it
    epochs_finetune: int = 6
    lr_frozen: float = 1e-3
    lr_finetune: float = 1e-4
    finetune_fraction: float = 0.4  # share of backbone layers (from the top) unfrozen in phase 2
    dropout: float = 0.2
    augment: bool = True
    preprocess: str = "none"  # "none" or "crop-mask" (head crop + overlay-text masking)
    seed: int = 1337
    quick: bool = False  # small stratified subset, for smoke runs
    quick_per_class: int = 60
    split_name: str = "default"
    phash_threshold: int = 0
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    data_dir: str | None = None  # explicit dataset folder; else $BRAINTUMOR_DATA_DIR, data/, download
    root: str | None = None  # project folder; else project_root()
    extra: dict = field(default_factory=dict)

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
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["split_fractions"] = list(self.split_fractions)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "split_fractions" in d:
            d["split_fractions"] = tuple(d["split_fractions"])
        return cls(**d)


def result_name(task: str, preprocess: str = "none") -> str:
    """Folder name of a task's runs and reports: ``ct`` for raw images, ``ct-crop-mask`` else.

    Raw and mitigated models of one task live apart, so ``--model models/ct`` never picks a
    model trained on different preprocessing just because it is newer.
    """
    return task if preprocess in ("none", "", None) else f"{task}-{preprocess}"


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
