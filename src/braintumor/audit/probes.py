"""Shortcut and leakage probes: what, other than the tumour, tells the classes apart?

Each probe is a small, seeded experiment on the committed split: a representation of
each image (pooled features of a frozen ImageNet backbone, or raw pixels, or file
statistics), a scikit-learn logistic regression trained on the train split with its
regularisation chosen on validation, and test accuracy / balanced accuracy / ROC-AUC
with 95% CIs from the duplicate-group bootstrap of :mod:`braintumor.metrics`.

=================  ==========================================================================
probe              what the classifier sees
=================  ==========================================================================
``full``           the whole image (reference)
``border``         only the outer frame: the centre (70% of each side) blanked
``outside_head``   only what surrounds the head: the head region blanked (text, frame, holder)
``head_only``      only the head: everything around it blanked
``thumbnail``      a 16 x 16 grey thumbnail, raw pixels, no backbone (global intensity style)
``image_stats``    width, height, format, colour mode, file bytes, mean / std intensity
``permutation``    the full image with the training labels shuffled, 20 times: an empirical null
``leakage``        the full image on a random image-level split of the same sizes (duplicates
                   of test images then sit in training), next to the group-aware split
=================  ==========================================================================

The first six run on the raw images and again on the ``crop-mask`` images (see
:func:`braintumor.preprocess.crop_mask.crop_mask`). Features are cached under ``data/cache/probes/``
keyed by content, so a re-run only fits the logistic regressions. The settings are
``Config.audit`` (:class:`braintumor.config.AuditSettings`) with the config's backbone,
image size and seed.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ..config import Config
from ..files import write_text_atomic
from ..metrics import BinaryMetricSet, format_ci, grouped_bootstrap, jsonable
from ..metrics.edges import binary_edges, hold_edges
from ..preprocess.glyphs import MIN_GLYPHS_FOR_TEXT
from ..study import load_split
from .representations import (HEAD_VIEWS, _cache_key, all_head_views, backbone_features, blank_centre,
                              cached, image_statistics, text_counts, text_detection, thumbnails)

RAW, MITIGATED = "none", "crop-mask"
BACKBONE_PROBES = ("full", "border", "outside_head", "head_only")
PIXEL_PROBES = ("thumbnail", "image_stats")
CONTROL_PROBES = ("permutation", "leakage")
PROBE_TITLES = {
    "full": "1 full image",
    "border": "2 border only",
    "outside_head": "3 outside head only",
    "head_only": "4 head only",
    "thumbnail": "5 16x16 thumbnail",
    "image_stats": "6 image statistics",
    "permutation": "7 label permutation",
    "leakage": "8 leakage: random image split",
}


# -------------------------------------------------------------------------- fitting
def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 c_grid=Config().audit.c_grid, seed: int = 0):
    """Standardised features + L2 logistic regression; C minimises validation log loss.

    Returns ``(model, C, validation log loss per C)``. Log loss rather than accuracy: it
    is smooth, so the choice does not hinge on a handful of validation images. Test data
    is never looked at.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    losses, models = {}, {}
    for c in c_grid:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=5000, random_state=seed))
        model.fit(x_train, y_train)
        losses[c] = float(log_loss(y_val, model.predict_proba(x_val)[:, 1], labels=[0, 1]))
        models[c] = model
    best = min(c_grid, key=lambda c: (losses[c], c))  # ties: the stronger regularisation
    return models[best], best, losses


def heldout_report(y: np.ndarray, p: np.ndarray, groups: np.ndarray, n_resamples: int, seed: int) -> dict:
    """Accuracy, balanced accuracy and ROC-AUC at threshold 0.5 with group-bootstrap CIs,
    held at the edges like a model's report (a probe that calls every image one class has
    balanced accuracy 0.5 in every resample; its interval comes from the recalls' Wilson
    intervals instead of being [0.5, 0.5])."""
    boot = grouped_bootstrap(BinaryMetricSet(0.5), y, p, groups, n_resamples, seed)
    entries = {k: {"value": boot[k].value, "low": boot[k].low, "high": boot[k].high}
               for k in ("accuracy", "balanced_accuracy", "roc_auc")}
    called = np.asarray(p) >= 0.5
    pos = np.asarray(y) == 1
    cm = {"tn": int((~pos & ~called).sum()), "fp": int((~pos & called).sum()),
          "fn": int((pos & ~called).sum()), "tp": int((pos & called).sum())}
    out = hold_edges(entries, binary_edges(cm, boot["roc_auc"].value, 0.05))
    out["n_test"] = int(len(y))
    out["n_test_groups"] = int(boot.n_groups)
    out["chance_accuracy"] = float(max(np.mean(y), 1 - np.mean(y)))  # majority class rate
    return out


def run_probe(x: np.ndarray, rows: pd.DataFrame, config: Config,
              split: pd.Series | None = None, permute_train: int | None = None) -> dict:
    """Fit on train, choose C on val, report on test. ``x`` holds one row per image of
    ``rows`` (which carry ``y``, ``group`` and ``split``); ``split`` overrides the split."""
    split = rows["split"] if split is None else split
    y = rows["y"].to_numpy()
    tr, va, te = (split == "train").to_numpy(), (split == "val").to_numpy(), (split == "test").to_numpy()
    y_train = y[tr]
    if permute_train is not None:  # the permutation's seed
        y_train = np.random.default_rng([config.seed, permute_train]).permutation(y_train)
    model, c, losses = fit_logistic(x[tr], y_train, x[va], y[va], config.audit.c_grid, config.seed)
    p = model.predict_proba(x[te])[:, 1]
    report = heldout_report(y[te], p, rows["group"].to_numpy()[te], config.audit.n_resamples,
                            config.seed)
    return {**report, "C": c, "val_log_loss": {str(k): v for k, v in losses.items()},
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": int(x.shape[1])}


def permutation_control(x: np.ndarray, rows: pd.DataFrame, config: Config,
                        observed: dict | None = None) -> dict:
    """The full-image probe refitted on ``config.audit.n_permutations`` shufflings of the
    training labels: an empirical null distribution.

    One shuffle is not enough: test images cluster by source, so a single permutation
    that happens to give one cluster mostly one label moves the whole cluster together
    and lands far from chance in either direction. The headline is the mean over
    permutations; ``low``/``high`` are the smallest and largest single-permutation values
    (not a bootstrap interval); ``null`` gives the null's 2.5% / 97.5% quantiles. With
    ``observed`` (the unshuffled probe's report), ``p_value[metric]`` is the permutation
    p-value of the observed value, ``(1 + #{null >= observed}) / (1 + n_permutations)``.
    Each permutation's own report is kept.
    """
    runs = [run_probe(x, rows, config, permute_train=k) for k in range(config.audit.n_permutations)]
    out: dict = {}
    null: dict = {}
    p_values: dict = {}
    for metric in ("accuracy", "balanced_accuracy", "roc_auc"):
        values = np.array([r[metric]["value"] for r in runs], dtype=float)
        out[metric] = {"value": float(np.mean(values)), "low": float(values.min()), "high": float(values.max())}
        null[metric] = {"mean": float(np.mean(values)), "sd": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                        "q025": float(np.quantile(values, 0.025)), "q975": float(np.quantile(values, 0.975))}
        if observed is not None and metric in observed:
            seen = float(observed[metric]["value"])
            p_values[metric] = float((1 + np.sum(values >= seen)) / (1 + len(values)))
    keep = ("n_test", "n_test_groups", "chance_accuracy", "n_train", "n_val", "n_features")
    return {**out, **{k: runs[0][k] for k in keep}, "interval": f"range over {len(runs)} permutations",
            "null": null, "p_value": p_values or None,
            "p_value_of": "the unshuffled full-image probe" if p_values else None, "permutations": runs}


def random_split_like(rows: pd.DataFrame, seed: int) -> pd.Series:
    """An image-level random split with the same train / val / test sizes as ``rows``."""
    counts = rows["split"].value_counts()
    labels = np.array(["train"] * counts.get("train", 0) + ["val"] * counts.get("val", 0)
                      + ["test"] * counts.get("test", 0), dtype=object)
    return pd.Series(np.random.default_rng(seed).permutation(labels), index=rows.index)


def leaked_test_images(rows: pd.DataFrame, split: pd.Series) -> int:
    """Test images with a duplicate (same group) in the training split."""
    train_groups = set(rows.loc[split == "train", "group"])
    return int(rows.loc[split == "test", "group"].isin(train_groups).sum())


# ------------------------------------------------------------------------- the audit
class ProbeRunner:
    """Runs every probe of one task on raw and mitigated images, caching representations."""

    def __init__(self, config: Config, root: Path, index: pd.DataFrame, progress: bool = True):
        self.config, self.settings, self.root, self.index = config, config.audit, root, index
        self.progress = progress
        self.cache_dir = config.cache_path / "probes"
        self._views: tuple[object, dict] = (None, {})

    def images(self, rows: pd.DataFrame, preprocess: str) -> np.ndarray:
        from ..pipeline import cached_arrays

        return cached_arrays(self.root, rows, self.config.image_size, preprocess,
                             self.config.cache_path, progress=self.progress)

    def head_views(self, rows: pd.DataFrame, preprocess: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """Both head views, kept in memory for the probe that needs the other one next."""
        key = (_cache_key(rows, preprocess, self.settings.head_margin), preprocess)
        if self._views[0] != key:
            self._views = (key, all_head_views(images, self.settings.head_margin, self.progress))
        return self._views[1]

    def features(self, rows: pd.DataFrame, preprocess: str, probe: str) -> np.ndarray:
        """The representation ``probe`` fits on, for ``rows`` prepared with ``preprocess``."""
        st, cfg = self.settings, self.config
        if probe in BACKBONE_PROBES:
            parts = (probe, preprocess, cfg.backbone, cfg.image_size, st.border_centre, st.head_margin)
        elif probe == "thumbnail":
            parts = (probe, preprocess, cfg.image_size, st.thumbnail_size)
        else:
            parts = (probe, preprocess, cfg.image_size)
        path = self.cache_dir / f"{probe}-{preprocess}-{_cache_key(rows, *parts)}.npy"

        def compute() -> np.ndarray:
            images = self.images(rows, preprocess)
            if probe in HEAD_VIEWS:
                images = self.head_views(rows, preprocess, images)[probe]
            if probe == "thumbnail":
                return thumbnails(images, st.thumbnail_size)
            if probe == "image_stats":
                return image_statistics(rows, self.index, images)
            if probe == "border":
                images = blank_centre(images, st.border_centre)
            return backbone_features(images, cfg.backbone, cfg.image_size, st.batch_size, self.progress,
                                     cfg.pretrained_path)

        return cached(path, compute)

    def run_task(self, task_name: str, rows: pd.DataFrame) -> dict:
        """Every probe on the task's rows (from :func:`task_rows`)."""
        result: dict = {"n_images": int(len(rows)),
                        "n_per_split": rows["split"].value_counts().reindex(["train", "val", "test"]).tolist(),
                        "raw": {}, "mitigated": {}}
        for preprocess, key in ((RAW, "raw"), (MITIGATED, "mitigated")):
            for probe in BACKBONE_PROBES + PIXEL_PROBES:
                t0 = time.perf_counter()
                x = self.features(rows, preprocess, probe)
                result[key][probe] = run_probe(x, rows, self.config)
                if self.progress:
                    r = result[key][probe]
                    print(f"  {task_name} {key:9s} {probe:12s} acc {r['accuracy']['value']:.3f} "
                          f"AUC {r['roc_auc']['value']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        full = self.features(rows, RAW, "full")
        result["raw"]["permutation"] = permutation_control(full, rows, self.config,
                                                            observed=result["raw"]["full"])
        random_split = random_split_like(rows, self.config.seed)
        result["raw"]["leakage"] = {
            **run_probe(full, rows, self.config, split=random_split),
            "group_split_accuracy": result["raw"]["full"]["accuracy"],
            "test_images_with_duplicate_in_train": leaked_test_images(rows, random_split),
            "test_images_with_duplicate_in_train_group_split": leaked_test_images(rows, rows["split"]),
        }
        return result


def task_rows(config: Config, task_name: str) -> pd.DataFrame:
    """The task's rows of every split (a seeded subset with ``config.audit.limit_per_class``)."""
    return load_split(config, None, task_name, per_class=config.audit.limit_per_class, progress=False).rows


def settings_dict(config: Config) -> dict:
    """Everything that defines the probes' numbers, as the report records it."""
    audit = config.audit.__dict__
    return {"tasks": list(audit["tasks"]), "backbone": config.backbone, "image_size": config.image_size,
            "seed": config.seed, **{k: list(v) if isinstance(v, tuple) else v
                                    for k, v in audit.items() if k != "tasks"}}


LIMITATIONS = [
    "Probes are linear classifiers on frozen ImageNet features: they show what is linearly "
    "decodable, a lower bound on what a fine-tuned network can exploit.",
    "Image statistics include file metadata (format, colour mode, width, height, bytes) that no "
    "preprocessing changes; a network sees only pixels, but these say how separable the sources are. "
    "After mitigation only the mean / std intensity in that probe change.",
    "The thumbnail and head-only probes after mitigation measure what remains inside the head: "
    "sequence, windowing, contrast and source style, which correlate with the label because healthy "
    "and tumour images come from different collections. No crop can remove that confound.",
    "Text detection finds lines of burned-in text at readable contrast; faint grey labels written "
    "over the brain in tightly framed images can survive crop-mask in a few CT tumour images.",
    "The leakage probe compares one random image-level split with the committed group-aware split; "
    "its gap is the inflation that duplicates cause, for this probe and seed.",
]


def run_audit(config: Config, progress: bool = True) -> dict:
    """Every probe for every task of ``config.audit``, plus text-detection counts: the report dict."""
    from ..data.index import load_index

    settings = config.audit
    splits = {task: load_split(config, None, task, per_class=settings.limit_per_class, progress=False)
              for task in settings.tasks}
    rows = {task: split.rows for task, split in splits.items()}
    first = splits[settings.tasks[0]]
    index = load_index(config, root=first.root, progress=progress)
    workers = settings.workers or os.cpu_count() or 1
    scanned = pd.concat(rows.values()).drop_duplicates("path").reset_index(drop=True)
    detected = text_detection(first.root, scanned, config.cache_path / "probes", workers, progress)
    runner = ProbeRunner(config, first.root, index, progress)
    report = {
        "description": "Shortcut and leakage probes: frozen-backbone features (global average "
                       "pooling) or raw pixels / file statistics + logistic regression (C chosen "
                       "on validation log loss), trained on train, reported on test with 95% CIs "
                       "from the duplicate-group bootstrap. 'mitigated' = crop-mask preprocessing.",
        "settings": settings_dict(config),
        "backbone": config.backbone,
        "weights": "imagenet",
        "seed": config.seed,
        "manifest": first.manifest.path,
        "manifest_sha256": first.manifest.sha256,
        "text_detection": {
            "method": "braintumor.preprocess.glyphs.scan_glyphs on the decoded original: at least "
                      f"{MIN_GLYPHS_FOR_TEXT} glyph components standing in lines of text "
                      "(apart from the head, or over it in the image margins), or coloured marks",
            "per_class": text_counts(scanned, detected),
        },
        "limitations": LIMITATIONS,
        "tasks": {},
    }
    for task in settings.tasks:
        if progress:
            print(f"task {task}", flush=True)
        report["tasks"][task] = runner.run_task(task, rows[task])
    return report


def write_report(report: dict, path: Path) -> Path:
    return write_text_atomic(path, json.dumps(jsonable(report), indent=2) + "\n")


def probe_table(report: dict) -> pd.DataFrame:
    """One row per task x probe: accuracy and AUC (with CIs), raw and mitigated."""
    rows = []
    for task, result in report["tasks"].items():
        for probe, title in PROBE_TITLES.items():
            row = {"task": task, "probe": title}
            for key in ("raw", "mitigated"):
                r = result[key].get(probe)
                row[f"{key} accuracy"] = format_ci(**r["accuracy"]) if r else ""
                row[f"{key} AUC"] = format_ci(**r["roc_auc"]) if r else ""
            rows.append(row)
    return pd.DataFrame(rows)
