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
``permutation``    the full image with the training labels shuffled, 5 times (must land at chance)
``leakage``        the full image on a random image-level split of the same sizes (duplicates
                   of test images then sit in training), next to the group-aware split
=================  ==========================================================================

The first six run on the raw images and again on the ``crop-mask`` images (see
:func:`braintumor.audit.crop_mask`). Features are cached under ``data/cache/probes/``
keyed by content, so a re-run only fits the logistic regressions.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import audit
from .config import Config
from .metrics import BinaryMetricSet, grouped_bootstrap

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
# Bump when a representation (FEATURE_VERSION) or the text detector's verdict
# (TEXT_DETECTION_VERSION) changes: the cached results are then recomputed.
FEATURE_VERSION = "v3"
TEXT_DETECTION_VERSION = "v1"


@dataclass(frozen=True)
class ProbeSettings:
    """Everything that defines the probes' numbers; saved in the report."""

    tasks: tuple[str, ...] = ("ct", "mri")
    backbone: str = "efficientnet_lite0"
    image_size: int = 224
    seed: int = 1337
    c_grid: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    border_centre: float = 0.70  # share of each side blanked in the middle by the border probe
    head_margin: int = 3  # pixels (of the prepared image) around the head region in probes 3 and 4
    thumbnail_size: int = 16
    n_resamples: int = 1000
    n_permutations: int = 5  # label shufflings in the permutation control
    batch_size: int = 64
    limit_per_class: int | None = None  # per split and class: a quick subset run
    workers: int | None = None  # processes for text detection

    def to_dict(self) -> dict:
        d = asdict(self)
        d["tasks"], d["c_grid"] = list(self.tasks), list(self.c_grid)
        return d


# ------------------------------------------------------------------ image variants
def blank_centre(images: np.ndarray, centre: float = 0.70) -> np.ndarray:
    """Border-only images: the middle ``centre`` share of each side set to black."""
    out = np.array(images, copy=True)
    size_h, size_w = out.shape[1:3]
    mh, mw = round(size_h * (1 - centre) / 2), round(size_w * (1 - centre) / 2)
    out[:, mh:size_h - mh, mw:size_w - mw] = 0
    return out


HEAD_VIEWS = ("outside_head", "head_only")


def head_views(image: np.ndarray, margin: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """A prepared image as the ``outside_head`` and ``head_only`` probes see it.

    The head region (:func:`braintumor.audit.head_mask`, grown by ``margin`` pixels) is
    found on the image the probe sees, raw or crop-mask, and blanked (outside view) or
    kept alone (head view). Text on the head's rim is part of what the head region shows,
    so it is not masked in the head view.
    """
    image = np.asarray(image)
    head = audit.head_mask(image, margin)
    outside, inside = np.array(image, copy=True), np.array(image, copy=True)
    outside[head] = 0
    inside[~head] = 0
    return outside, inside


def all_head_views(images: np.ndarray, margin: int = 3, progress: bool = False) -> dict[str, np.ndarray]:
    """:func:`head_views` of every image: ``{view: uint8 (N, size, size, 3)}``."""
    out = {view: np.empty(images.shape, dtype=np.uint8) for view in HEAD_VIEWS}
    for i in tqdm(range(len(images)), desc="head views", disable=not progress, unit="img"):
        out["outside_head"][i], out["head_only"][i] = head_views(images[i], margin)
    return out


# ----------------------------------------------------------------- representations
def thumbnails(images: np.ndarray, size: int = 16) -> np.ndarray:
    """``(N, size * size)`` grey thumbnails in 0-1 (area-averaged, so no aliasing)."""
    from PIL import Image

    out = np.empty((len(images), size * size), dtype=np.float32)
    for i, img in enumerate(images):
        grey = Image.fromarray(np.asarray(img)).convert("L").resize((size, size), Image.Resampling.BOX)
        out[i] = np.asarray(grey, dtype=np.float32).ravel() / 255.0
    return out


def image_statistics(rows: pd.DataFrame, index: pd.DataFrame, images: np.ndarray) -> np.ndarray:
    """Width, height, aspect, log file bytes, format and mode (one-hot, from the index),
    and mean / std grey intensity of the images the probe sees."""
    info = rows[["path"]].merge(index[["path", "width", "height", "bytes", "format", "mode"]],
                                on="path", how="left", validate="one_to_one")
    grey = np.asarray(images, dtype=np.float32).mean(axis=3).reshape(len(images), -1)
    numeric = np.column_stack([
        info["width"], info["height"], info["width"] / info["height"], np.log(info["bytes"]),
        grey.mean(axis=1), grey.std(axis=1),
    ]).astype(np.float32)
    # Categories in a fixed order (the whole index's), so every split gets the same columns.
    onehot = [(info[col] == value).to_numpy(np.float32)[:, None]
              for col in ("format", "mode") for value in sorted(index[col].unique())]
    return np.hstack([numeric, *onehot])


def backbone_features(images: np.ndarray, backbone: str, image_size: int, batch_size: int = 64,
                      progress: bool = False) -> np.ndarray:
    """Global-average-pooled features of a frozen ImageNet backbone, ``(N, channels)``."""
    model = _feature_model(backbone, image_size)
    out = []
    # model.predict runs a compiled graph (grappler folds BatchNorm into the convolutions):
    # about 1.5x the throughput of calling the model eagerly on this 2-core CPU.
    chunk = batch_size * 8
    for start in tqdm(range(0, len(images), chunk), desc=f"{backbone} features",
                      disable=not progress, unit="chunk"):
        batch = np.asarray(images[start:start + chunk], dtype=np.float32)
        out.append(np.asarray(model.predict(batch, batch_size=batch_size, verbose=0)))
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


_MODELS: dict[tuple[str, int], object] = {}


def _feature_model(backbone: str, image_size: int):
    """The backbone with global average pooling, built once per process."""
    key = (backbone, image_size)
    if key not in _MODELS:
        import keras

        from .backbones import build_backbone

        base, _ = build_backbone(backbone, image_size, "imagenet")
        pooled = keras.layers.GlobalAveragePooling2D(name="pool")(base.output)
        _MODELS[key] = keras.Model(base.input, pooled, name=f"{base.name}_pooled")
    return _MODELS[key]


def _cache_key(rows: pd.DataFrame, *parts, version: str = FEATURE_VERSION) -> str:
    text = "\n".join(rows["sha256"]) + "\n" + "\n".join(map(str, (*parts, version)))
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached(path: Path | None, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, saved at ``path`` (``.npy``) and loaded from there next time."""
    if path is not None and path.is_file():
        return np.load(path)
    value = compute()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, value)
        tmp.replace(path)
    return value


# -------------------------------------------------------------------------- fitting
def fit_logistic(x_train: np.ndarray, y_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
                 c_grid=ProbeSettings.c_grid, seed: int = 0):
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
    """Accuracy, balanced accuracy and ROC-AUC at threshold 0.5 with group-bootstrap CIs."""
    boot = grouped_bootstrap(BinaryMetricSet(0.5), y, p, groups, n_resamples, seed)
    out = {k: {"value": boot[k].value, "low": boot[k].low, "high": boot[k].high}
           for k in ("accuracy", "balanced_accuracy", "roc_auc")}
    out["n_test"] = int(len(y))
    out["n_test_groups"] = int(boot.n_groups)
    out["chance_accuracy"] = float(max(np.mean(y), 1 - np.mean(y)))  # majority class rate
    return out


def run_probe(x: np.ndarray, rows: pd.DataFrame, settings: ProbeSettings,
              split: pd.Series | None = None, permute_train: int | None = None) -> dict:
    """Fit on train, choose C on val, report on test. ``x`` holds one row per image of
    ``rows`` (which carry ``y``, ``group`` and ``split``); ``split`` overrides the split."""
    split = rows["split"] if split is None else split
    y = rows["y"].to_numpy()
    tr, va, te = (split == "train").to_numpy(), (split == "val").to_numpy(), (split == "test").to_numpy()
    y_train = y[tr]
    if permute_train is not None:  # the permutation's seed
        y_train = np.random.default_rng([settings.seed, permute_train]).permutation(y_train)
    model, c, losses = fit_logistic(x[tr], y_train, x[va], y[va], settings.c_grid, settings.seed)
    p = model.predict_proba(x[te])[:, 1]
    report = heldout_report(y[te], p, rows["group"].to_numpy()[te], settings.n_resamples, settings.seed)
    return {**report, "C": c, "val_log_loss": {str(k): v for k, v in losses.items()},
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_features": int(x.shape[1])}


def permutation_control(x: np.ndarray, rows: pd.DataFrame, settings: ProbeSettings) -> dict:
    """The full-image probe refitted on ``settings.n_permutations`` shufflings of the
    training labels.

    One shuffle is not enough: test images cluster by source, so a single permutation
    that happens to give one cluster mostly one label moves the whole cluster together
    and lands far from chance in either direction. The headline is the mean over
    permutations; ``low``/``high`` are the smallest and largest single-permutation values
    (not a bootstrap interval); each permutation's own report is kept.
    """
    runs = [run_probe(x, rows, settings, permute_train=k) for k in range(settings.n_permutations)]
    out: dict = {}
    for metric in ("accuracy", "balanced_accuracy", "roc_auc"):
        values = [r[metric]["value"] for r in runs]
        out[metric] = {"value": float(np.mean(values)), "low": float(min(values)), "high": float(max(values))}
    keep = ("n_test", "n_test_groups", "chance_accuracy", "n_train", "n_val", "n_features")
    return {**out, **{k: runs[0][k] for k in keep}, "interval": f"range over {len(runs)} permutations",
            "permutations": runs}


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


# ------------------------------------------------------------------- text detection
def _scan_file(path: str) -> tuple[int, int, bool]:
    from .images import load_rgb

    scan = audit.scan_glyphs(load_rgb(path))
    return scan.n_glyphs, scan.n_inner, scan.has_text


def text_detection(root: Path, rows: pd.DataFrame, cache_dir: Path | None, workers: int = 1,
                   progress: bool = True) -> pd.DataFrame:
    """Per image: glyphs found (apart from the head / over it) and whether it has text.

    Runs :func:`braintumor.audit.scan_glyphs` on the decoded originals; cached by SHA-256.
    """
    key = _cache_key(rows, "text", version=TEXT_DETECTION_VERSION)
    cache = cache_dir / f"text-detection-{key}.parquet" if cache_dir else None
    if cache is not None and cache.is_file():
        return pd.read_parquet(cache)
    paths = [str(Path(root) / p) for p in rows["path"]]
    if workers > 1 and len(paths) > 64:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            results = list(tqdm(pool.map(_scan_file, paths, chunksize=32), total=len(paths),
                                desc="text detection", disable=not progress, unit="img"))
    else:
        results = [_scan_file(p) for p in tqdm(paths, desc="text detection", disable=not progress)]
    out = pd.DataFrame(results, columns=["n_glyphs", "n_glyphs_over_head", "has_text"])
    out.insert(0, "path", rows["path"].to_numpy())
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        out.to_parquet(cache, index=False)
    return out


def text_counts(rows: pd.DataFrame, detected: pd.DataFrame) -> dict:
    """``{"CT healthy": {"images": n, "with_text": k, "share": k / n}, ...}``."""
    both = rows[["path", "modality", "label"]].merge(detected, on="path", validate="one_to_one")
    out = {}
    for (modality, label), part in both.groupby(["modality", "label"], sort=True):
        k = int(part["has_text"].sum())
        out[f"{modality} {label}"] = {"images": int(len(part)), "with_text": k,
                                      "share": k / len(part) if len(part) else math.nan}
    return out


# ------------------------------------------------------------------------- the audit
def _limit(rows: pd.DataFrame, per_class: int | None, seed: int) -> pd.DataFrame:
    if not per_class:
        return rows
    parts = [part.sample(n=min(per_class, len(part)), random_state=seed)
             for _, part in rows.groupby(["split", "y"], sort=True)]
    return pd.concat(parts).sort_values("path").reset_index(drop=True)


class ProbeRunner:
    """Runs every probe of one task on raw and mitigated images, caching representations."""

    def __init__(self, config: Config, settings: ProbeSettings, root: Path, index: pd.DataFrame,
                 progress: bool = True):
        self.config, self.settings, self.root, self.index = config, settings, root, index
        self.progress = progress
        self.cache_dir = config.cache_path / "probes"
        self._views: tuple[object, dict] = (None, {})

    def images(self, rows: pd.DataFrame, preprocess: str) -> np.ndarray:
        from .pipeline import cached_arrays

        return cached_arrays(self.root, rows, self.settings.image_size, preprocess,
                             self.config.cache_path, progress=self.progress)

    def head_views(self, rows: pd.DataFrame, preprocess: str, images: np.ndarray) -> dict[str, np.ndarray]:
        """Both head views, kept in memory for the probe that needs the other one next."""
        key = (_cache_key(rows, preprocess, self.settings.head_margin), preprocess)
        if self._views[0] != key:
            self._views = (key, all_head_views(images, self.settings.head_margin, self.progress))
        return self._views[1]

    def features(self, rows: pd.DataFrame, preprocess: str, probe: str) -> np.ndarray:
        """The representation ``probe`` fits on, for ``rows`` prepared with ``preprocess``."""
        st = self.settings
        if probe in BACKBONE_PROBES:
            parts = (probe, preprocess, st.backbone, st.image_size, st.border_centre, st.head_margin)
        elif probe == "thumbnail":
            parts = (probe, preprocess, st.image_size, st.thumbnail_size)
        else:
            parts = (probe, preprocess, st.image_size)
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
            return backbone_features(images, st.backbone, st.image_size, st.batch_size, self.progress)

        return cached(path, compute)

    def run_task(self, task_name: str, rows: pd.DataFrame) -> dict:
        """Every probe on the task's rows (from :func:`task_rows`)."""
        st = self.settings
        result: dict = {"n_images": int(len(rows)),
                        "n_per_split": rows["split"].value_counts().reindex(["train", "val", "test"]).tolist(),
                        "raw": {}, "mitigated": {}}
        for preprocess, key in ((RAW, "raw"), (MITIGATED, "mitigated")):
            for probe in BACKBONE_PROBES + PIXEL_PROBES:
                t0 = time.perf_counter()
                x = self.features(rows, preprocess, probe)
                result[key][probe] = run_probe(x, rows, st)
                if self.progress:
                    r = result[key][probe]
                    print(f"  {task_name} {key:9s} {probe:12s} acc {r['accuracy']['value']:.3f} "
                          f"AUC {r['roc_auc']['value']:.3f} ({time.perf_counter() - t0:.0f} s)", flush=True)
        full = self.features(rows, RAW, "full")
        result["raw"]["permutation"] = permutation_control(full, rows, st)
        random_split = random_split_like(rows, st.seed)
        result["raw"]["leakage"] = {
            **run_probe(full, rows, st, split=random_split),
            "group_split_accuracy": result["raw"]["full"]["accuracy"],
            "test_images_with_duplicate_in_train": leaked_test_images(rows, random_split),
            "test_images_with_duplicate_in_train_group_split": leaked_test_images(rows, rows["split"]),
        }
        return result


def task_rows(manifest: pd.DataFrame, task_name: str, settings: ProbeSettings) -> pd.DataFrame:
    """The task's rows of every split (a seeded subset with ``limit_per_class``)."""
    from .tasks import get_task

    return _limit(get_task(task_name).rows(manifest), settings.limit_per_class, settings.seed)


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


def run_audit(config: Config, settings: ProbeSettings, progress: bool = True) -> dict:
    """Every probe for every task, plus text-detection counts: the report dict."""
    from .data import locate_dataset
    from .index import load_index
    from .splits import read_manifest

    root = locate_dataset(config=config)
    index = load_index(config, root=root, progress=progress)
    manifest = read_manifest(config.manifest_path)
    workers = settings.workers or os.cpu_count() or 1
    rows = {task: task_rows(manifest, task, settings) for task in settings.tasks}
    scanned = pd.concat(rows.values()).drop_duplicates("path").reset_index(drop=True)
    detected = text_detection(root, scanned, config.cache_path / "probes", workers, progress)
    runner = ProbeRunner(config, settings, root, index, progress)
    report = {
        "description": "Shortcut and leakage probes: frozen-backbone features (global average "
                       "pooling) or raw pixels / file statistics + logistic regression (C chosen "
                       "on validation log loss), trained on train, reported on test with 95% CIs "
                       "from the duplicate-group bootstrap. 'mitigated' = crop-mask preprocessing.",
        "settings": settings.to_dict(),
        "backbone": settings.backbone,
        "weights": "imagenet",
        "seed": settings.seed,
        "manifest": str(config.manifest_path.relative_to(config.root_path))
        if config.manifest_path.is_relative_to(config.root_path) else str(config.manifest_path),
        "manifest_sha256": manifest.attrs.get("manifest_sha256", ""),
        "text_detection": {
            "method": "braintumor.audit.scan_glyphs on the decoded original: at least "
                      f"{audit.MIN_GLYPHS_FOR_TEXT} glyph components standing in lines of text "
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
    from .metrics import _jsonable

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(report), indent=2) + "\n")
    return path


def probe_table(report: dict) -> pd.DataFrame:
    """One row per task x probe: accuracy and AUC (with CIs), raw and mitigated."""
    from .metrics import format_ci

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



# -------------------------------------------------------------------------- figures
def plot_probes(report: dict):
    """Bar chart per task: test accuracy of every probe, raw vs mitigated, 95% CI whiskers,
    with chance (majority class) and the 60% line the mitigated outside-head probe must meet."""
    import matplotlib.pyplot as plt

    tasks = list(report["tasks"])
    fig, axes = plt.subplots(len(tasks), 1, figsize=(11, 3.6 * len(tasks)), squeeze=False)
    probes = list(PROBE_TITLES)
    x = np.arange(len(probes))
    for ax, task in zip(axes[:, 0], tasks):
        result = report["tasks"][task]
        for offset, key, colour in ((-0.2, "raw", "#c0504d"), (0.2, "mitigated", "#4f81bd")):
            values, lows, highs, where = [], [], [], []
            for i, probe in enumerate(probes):
                r = result[key].get(probe)
                if r:
                    a = r["accuracy"]
                    values.append(a["value"])
                    lows.append(a["value"] - a["low"])
                    highs.append(a["high"] - a["value"])
                    where.append(i + offset)
            label = "raw images" if key == "raw" else "crop-mask (mitigated)"
            ax.bar(where, values, width=0.38, color=colour, label=label,
                   yerr=[lows, highs], capsize=3, error_kw={"elinewidth": 1})
            for xi, v in zip(where, values):
                ax.text(xi, 0.02 + 0.5 * v, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        rotation=90, color="white")
        chance = result["raw"]["full"]["chance_accuracy"]
        ax.axhline(chance, color="grey", ls=":", lw=1, label=f"chance (majority class) {chance:.2f}")
        ax.axhline(0.60, color="black", ls="--", lw=0.8, label="0.60")
        ax.set_xticks(x, [PROBE_TITLES[p] for p in probes], rotation=20, ha="right")
        ax.set_ylim(0, 1.18)
        ax.set_yticks(np.linspace(0, 1, 6))
        ax.set_ylabel("test accuracy")
        n = result["n_per_split"]
        ax.set_title(f"{task.upper()}: healthy vs tumour — logistic-regression probes "
                     f"(train/val/test {n[0]}/{n[1]}/{n[2]}, {report['backbone']})", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", ncol=4, frameon=False)
    fig.tight_layout()
    return fig


def mitigation_examples(root: Path, rows: pd.DataFrame, per_class: int = 3, seed: int = 0,
                        size: int = 160) -> list[tuple[str, list[np.ndarray], list[str]]]:
    """Example panels per class: ``(class title, images, captions)``.

    CT tumour images carry patient names, so only their mitigated version is returned,
    and only for images with text found where a second scan of the mitigated output
    finds none; the other classes show original and crop-mask side by side, for images
    where no text was found at all. Picks are seeded; look at the figure before
    publishing it all the same.
    """
    from .images import load_rgb, resize_pad

    out = []
    rng = np.random.default_rng(seed)
    for (modality, label), part in rows.groupby(["modality", "label"], sort=True):
        sensitive = modality == "CT" and label == "tumor"
        images, captions = [], []
        for i in rng.permutation(len(part)):
            rgb = load_rgb(Path(root) / part["path"].iloc[i])
            mitigated = audit.crop_mask(rgb)
            if sensitive:
                if not audit.has_overlay_text(rgb) or audit.has_overlay_text(mitigated):
                    continue  # show what the mitigation did to text, and never a leftover
                images.append(resize_pad(mitigated, size))
                captions.append("crop-mask")
            else:
                if audit.has_overlay_text(rgb):
                    continue  # originals are shown only where no burned-in text was found
                images += [resize_pad(rgb, size), resize_pad(mitigated, size)]
                captions += ["original", "crop-mask"]
            if len(captions) >= (per_class if sensitive else 2 * per_class):
                break
        out.append((f"{modality} {label}", images, captions))
    return out


def plot_mitigation_examples(panels) -> object:
    """One row per class of :func:`mitigation_examples` panels."""
    import matplotlib.pyplot as plt

    ncols = max(len(images) for _, images, _ in panels)
    fig, axes = plt.subplots(len(panels), ncols, figsize=(1.9 * ncols, 2.1 * len(panels)), squeeze=False)
    for r, (title, images, captions) in enumerate(panels):
        for c in range(ncols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(images):
                ax.imshow(images[c])
                ax.set_title(f"{title}: {captions[c]}" if c == 0 else captions[c], fontsize=8)
    fig.suptitle("crop-mask: overlay text masked, everything outside the head blanked, cropped to the head\n"
                 "(CT tumour originals carry patient names and are never shown)", fontsize=9)
    fig.tight_layout()
    return fig
