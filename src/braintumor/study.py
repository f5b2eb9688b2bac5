"""One place that turns settings into a task's data: rows, images and the manifest they came from.

Every stage (training, evaluation, the shortcut audit, the benchmarks, the CLI and the
notebook) starts the same way: locate the dataset, read the committed split manifest,
select the task's rows of a split, take the quick subset of a smoke run, and decode the
images through the on-disk cache. :func:`load_split` does that once, and the quick-subset
rule lives in :func:`quick_per_class` only.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .config import Config
from .data.dataset import locate_dataset
from .data.splits import read_manifest
from .data.tasks import Task, get_task, stratified_subset

QUICK = "quick"  # load_split's default subset: the quick rule of the config


@dataclass(frozen=True)
class ManifestRef:
    """Which split manifest rows came from: its path (relative to the project when inside
    it, as model cards and reports record it) and the SHA-256 of its content."""

    path: str
    sha256: str

    @classmethod
    def of(cls, config: Config, manifest: pd.DataFrame) -> "ManifestRef":
        path, root = config.manifest_path, config.root_path
        shown = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
        return cls(shown, manifest.attrs.get("manifest_sha256", ""))


@dataclass
class Split:
    """A task's rows of one split (all splits when ``name`` is None), with label ``y``;
    :attr:`images` decodes them (and :attr:`root` locates the dataset) on first use (``config``'s image size and preprocessing)."""

    config: Config
    task: Task
    name: str | None
    rows: pd.DataFrame
    manifest: ManifestRef
    progress: bool = True

    @functools.cached_property
    def root(self) -> Path:
        """The dataset root (located on first use: rows alone do not need the images)."""
        return locate_dataset(config=self.config)

    @property
    def y(self) -> np.ndarray:
        return self.rows["y"].to_numpy()

    @functools.cached_property
    def images(self) -> np.ndarray:
        """``uint8 (N, S, S, 3)``, from the decoded-image cache under ``data/cache/``."""
        from .pipeline import cached_arrays

        cfg = self.config
        return cached_arrays(self.root, self.rows, cfg.image_size, cfg.preprocess, cfg.cache_path,
                             self.progress)


def quick_per_class(config: Config, split: str | None) -> int | None:
    """Images per class a quick (smoke) run uses of ``split``: ``quick_per_class`` for
    training, a third of it (at least 10) for validation and test; None for a full run."""
    if not config.quick:
        return None
    return config.quick_per_class if split == "train" else max(10, config.quick_per_class // 3)


def load_split(config: Config, split: str | None, task: str | Task | None = None, *,
               per_class: int | None | str = QUICK, seed: int | None = None,
               progress: bool = True) -> Split:
    """The rows of ``task`` (default ``config.task``) in ``split`` of the committed manifest.

    ``per_class`` limits the rows to a seeded stratified subset: by default the quick rule
    (:func:`quick_per_class`), None for all rows, or a number per class (per split and
    class when ``split`` is None). ``seed`` defaults to ``config.seed``.
    """
    task = task if isinstance(task, Task) else get_task(task or config.task)
    manifest = read_manifest(config.manifest_path)
    rows = task.rows(manifest, split)
    if per_class == QUICK:
        per_class = quick_per_class(config, split)
    if per_class:
        by = ("y",) if split is not None else ("split", "y")
        rows = stratified_subset(rows, per_class, config.seed if seed is None else seed, by=by)
        if split is None:
            rows = rows.sort_values("path").reset_index(drop=True)  # the manifest's order
    return Split(config, task, split, rows, ManifestRef.of(config, manifest), progress)
