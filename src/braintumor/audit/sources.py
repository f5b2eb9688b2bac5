"""Where each image comes from, and whether a model can tell tumours apart within a source.

Healthy and tumour images of the Kaggle collection come from different public collections.
This audit names each image's source — the collection an attribution file says it matches
(the mirror's ``mri_sources.csv``: SARTAJ, figshare, Br35H tumour-free) or, for images no
collection claims and for CT, an *acquisition cluster* found here (file size and format,
colour mode, intensity statistics; k-means with k chosen by silhouette) — and then asks,
with the frozen-feature probe of the shortcut audit (train on train, C on validation, report
on test):

* **class mix per source**: how much of the label the source alone predicts;
* **within-source** test AUC where a source holds both classes: the label without the source;
* **leave-one-source-out**: train without a source, test on all of its images — accuracy on
  a source the model never saw (its specificity or sensitivity when it holds one class).

Each is run for three arms: raw images, crop-mask, and crop-mask with the ``lesions``
recipe (:mod:`braintumor.lesions`: lesioned copies of healthy training images, labelled
tumour, at the frozen-feature level).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..config import Config
from ..errors import DatasetError
from ..files import atomic_path
from .probes import RAW, MITIGATED, ProbeRunner, fit_logistic, heldout_report
from .representations import _cache_key, backbone_features, cached, image_statistics

SOURCES_FILE = "mri_sources.csv"  # beside the dataset folder in the shared mirror
UNMATCHED = "unmatched"
MIN_PER_CLASS = 10  # a source needs this many test images of each class for a within-source AUC
ARMS = ("none", "crop-mask", "crop-mask+lesions")


def find_sources_file(root: Path, path: str | Path | None = None) -> Path | None:
    """An explicit attribution file, else ``mri_sources.csv`` beside the dataset folder."""
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise DatasetError(f"{path}: source attribution file not found; pass --sources with a CSV "
                               "of path,source (e.g. the dataset mirror's mri_sources.csv)")
        return path
    guess = Path(root).parent / SOURCES_FILE
    return guess if guess.is_file() else None


def read_sources(path: Path | None) -> pd.DataFrame:
    """``path, source`` with paths as the manifest writes them (relative to the dataset root)."""
    if path is None:
        return pd.DataFrame(columns=["path", "source"])
    table = pd.read_csv(path)
    missing = {"path", "source"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path}: needs columns path and source (missing {sorted(missing)})")
    table["path"] = table["path"].str.replace(r"^Dataset/", "", regex=True)
    return table[["path", "source"]]


def acquisition_clusters(stats: np.ndarray, k_range=range(3, 11), seed: int = 0) -> tuple[np.ndarray, dict]:
    """k-means on standardised acquisition statistics, k by silhouette: ``(labels, info)``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    z = StandardScaler().fit_transform(stats)
    z = np.nan_to_num(z)
    sample = np.random.default_rng(seed).choice(len(z), min(len(z), 3000), replace=False)
    scores, fits = {}, {}
    for k in k_range:
        fits[k] = KMeans(k, n_init=10, random_state=seed).fit(z)
        scores[k] = float(silhouette_score(z[sample], fits[k].labels_[sample], random_state=seed))
    best = max(scores, key=scores.get)
    return fits[best].labels_, {"k": best, "silhouette": scores}


def assign_sources(rows: pd.DataFrame, attribution: pd.DataFrame, clusters: np.ndarray) -> pd.Series:
    """A named collection where the attribution file has one, else ``<modality>-c<cluster>``."""
    named = rows[["path"]].merge(attribution, on="path", how="left")["source"].fillna(UNMATCHED)
    own = rows["modality"].str.lower() + "-c" + pd.Series(clusters, index=rows.index).astype(str)
    return pd.Series(np.where(named.to_numpy() == UNMATCHED, own.to_numpy(), named.to_numpy()),
                     index=rows.index, name="source")


def source_labels(rows: pd.DataFrame, index: pd.DataFrame, attribution: pd.DataFrame, config: Config,
                  raw_images: Callable[[], np.ndarray], cache_dir: Path | None,
                  seed: int | None = None) -> tuple[pd.Series, np.ndarray, dict]:
    """The audit's source of each of ``rows`` (one modality): ``(source, clusters, cluster info)``.

    Acquisition statistics of the raw images (``raw_images()`` is called only when they are
    not cached under ``cache_dir``), k-means clusters of them (``seed`` defaults to
    ``config.seed``), and the attribution's named collection where it has one.
    """
    key = _cache_key(rows, "acq", config.image_size)
    stats = cached(cache_dir / f"acq-stats-{key}.npy" if cache_dir is not None else None,
                   lambda: image_statistics(rows, index, raw_images()))
    clusters, info = acquisition_clusters(stats, seed=config.seed if seed is None else seed)
    return assign_sources(rows, attribution, clusters), clusters, info


def row_sources(rows: pd.DataFrame, config: Config, root: str | Path | None = None, *,
                seed: int | None = None, sources_path: str | Path | None = None,
                index: pd.DataFrame | None = None, progress: bool = False) -> pd.Series:
    """The source of each of ``rows`` (any task, any split) as the source audit names it.

    Clusters are fitted on every row of each modality in the committed manifest (all splits,
    the row set of :func:`run_source_audit` without ``limit_per_class``), so a row's source
    does not depend on which split or task asks, and with the audit's image size and seed it
    is the label ``reports/audit/sources.json`` counts. Without an attribution file
    (``sources_path``, else ``mri_sources.csv`` beside the dataset) every source is an
    acquisition cluster, with a warning. ``index`` (image sizes, formats, modes) defaults to
    the cached index of the dataset.
    """
    import warnings

    from ..data.dataset import locate_dataset
    from ..data.index import load_index
    from ..pipeline import cached_arrays
    from ..study import load_split

    root = Path(root) if root is not None else locate_dataset(config=config)
    path = find_sources_file(root, sources_path)
    if path is None:
        warnings.warn(f"no {SOURCES_FILE} beside {root}: sources are acquisition clusters only "
                      "(no named collections)", stacklevel=2)
    attribution = read_sources(path)
    if index is None:
        index = load_index(config, root=root, progress=progress)
    out = pd.Series(None, index=rows.index, dtype=object, name="source")
    for modality in sorted(rows["modality"].unique()):
        every = load_split(config, None, str(modality).lower(), per_class=None, progress=False).rows
        labels, _, _ = source_labels(
            every, index, attribution, config,
            lambda: cached_arrays(root, every, config.image_size, RAW, config.cache_path, progress),
            config.cache_path / "probes", seed)
        mine = (rows["modality"] == modality).to_numpy()
        out[mine] = rows.loc[mine, "path"].map(dict(zip(every["path"], labels))).to_numpy()
    if out.isna().any():
        missing = rows[out.isna()].iloc[0]
        raise DatasetError(f"{missing['path']}: not among the committed manifest's {missing['modality']} rows")
    return out


def class_mix(rows: pd.DataFrame, source: pd.Series) -> dict:
    table = pd.crosstab(source, rows["label"])
    return {str(s): {str(c): int(n) for c, n in r.items()} for s, r in table.iterrows()}


def _fit(x: np.ndarray, rows: pd.DataFrame, train: np.ndarray, val: np.ndarray, config: Config,
         extra: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None):
    """The probe's logistic regression on ``train`` rows (plus synthetic rows), C on ``val``."""
    y = rows["y"].to_numpy()
    x_tr, y_tr, x_va, y_va = x[train], y[train], x[val], y[val]
    if extra is not None:  # (features, labels, split of each synthetic row's source image)
        fx, fy, fsplit = extra
        keep_tr, keep_va = np.isin(fsplit, np.flatnonzero(train)), np.isin(fsplit, np.flatnonzero(val))
        x_tr, y_tr = np.concatenate([x_tr, fx[keep_tr]]), np.concatenate([y_tr, fy[keep_tr]])
        x_va, y_va = np.concatenate([x_va, fx[keep_va]]), np.concatenate([y_va, fy[keep_va]])
    model, c, _ = fit_logistic(x_tr, y_tr, x_va, y_va, config.audit.c_grid, config.seed)
    return model, c


def _score(model, x: np.ndarray, rows: pd.DataFrame, mask: np.ndarray, config: Config) -> dict:
    """Held-out metrics on ``mask`` rows: AUC when both classes are there, else accuracy."""
    y = rows["y"].to_numpy()[mask]
    p = model.predict_proba(x[mask])[:, 1]
    groups = rows["group"].to_numpy()[mask]
    if len(np.unique(y)) == 2:
        return heldout_report(y, p, groups, config.audit.n_resamples, config.seed)
    return {"n_test": int(mask.sum()), "only_class": int(y[0]),
            "accuracy": float(np.mean((p >= 0.5) == (y == 1))), "mean_p_tumour": float(p.mean())}


def within_source(x, rows, source: pd.Series, config: Config, extra=None) -> dict:
    """One model on all training sources; test AUC inside each source that holds both classes."""
    split = rows["split"].to_numpy()
    model, c = _fit(x, rows, split == "train", split == "val", config, extra)
    out = {"all": {**_score(model, x, rows, split == "test", config), "C": c}}
    test = rows[split == "test"]
    for s in sorted(source.unique()):
        counts = test.loc[source[split == "test"] == s, "y"].value_counts()
        if len(counts) == 2 and counts.min() >= MIN_PER_CLASS:
            out[str(s)] = _score(model, x, rows, (split == "test") & (source == s).to_numpy(), config)
    return out


def leave_one_source_out(x, rows, source: pd.Series, config: Config, extra=None,
                         min_images: int = 50) -> dict:
    """Per source (with at least ``min_images``): train and choose C without it, test on all of it."""
    split = rows["split"].to_numpy()
    out = {}
    for s in sorted(source.unique()):
        held = (source == s).to_numpy()
        rest_train, rest_val = (split == "train") & ~held, (split == "val") & ~held
        if held.sum() < min_images or len(np.unique(rows["y"].to_numpy()[rest_train])) < 2:
            continue
        model, c = _fit(x, rows, rest_train, rest_val, config, extra)
        out[str(s)] = {**_score(model, x, rows, held, config), "C": c}
    return out


def lesion_features(runner: ProbeRunner, rows: pd.DataFrame, config: Config) -> tuple:
    """Frozen features of lesioned copies of every healthy crop-masked image (one each), with
    labels (tumour) and each copy's source row, so fits use only their own split's copies."""
    from ..lesions import synthesize

    healthy = np.flatnonzero(rows["y"].to_numpy() == 0)
    path = runner.cache_dir / f"lesions-{_cache_key(rows, 'lesions', config.seed, config.image_size)}.npz"
    if path.is_file():
        saved = np.load(path)
        x, source = saved["x"], saved["source"]
    else:
        images = runner.images(rows, MITIGATED)[healthy]
        lesioned, picked = synthesize(images, 1, config.seed)
        x = backbone_features(lesioned, config.backbone, config.image_size, config.audit.batch_size,
                              runner.progress, config.pretrained_path)
        source = healthy[picked]
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, x=x, source=source)
    return x, np.ones(len(x), int), source


def audit_modality(runner: ProbeRunner, rows: pd.DataFrame, attribution: pd.DataFrame,
                   config: Config) -> dict:
    """Clusters, class mix, within-source and leave-one-source-out for one modality's rows."""
    source, clusters, cluster_info = source_labels(rows, runner.index, attribution, config,
                                                   lambda: runner.images(rows, RAW), runner.cache_dir)
    report = {"clusters": {**cluster_info, "features": "width, height, aspect, log bytes, mean and std "
                           "grey, format and colour mode (one-hot)"},
              "class_mix": class_mix(rows, source), "arms": {}}
    if len(attribution):
        named = rows[["path"]].merge(attribution, on="path", how="left")["source"].fillna(UNMATCHED)
        report["clusters_vs_named"] = {str(k): {str(c): int(n) for c, n in v.items()}
                                       for k, v in pd.crosstab(named, clusters).iterrows()}
    lesions = lesion_features(runner, rows, config)
    for arm in ARMS:
        preprocess = RAW if arm == "none" else MITIGATED
        x = runner.features(rows, preprocess, "full")
        extra = lesions if arm.endswith("+lesions") else None
        report["arms"][arm] = {"within_source": within_source(x, rows, source, config, extra),
                               "leave_one_source_out": leave_one_source_out(x, rows, source, config, extra)}
    return report, source


def run_source_audit(config: Config, sources_path: str | Path | None = None, progress: bool = True) -> dict:
    """The source audit of every task in ``config.audit.tasks`` (ct, mri): the report dict."""
    from ..data.index import load_index
    from .probes import task_rows

    first = None
    report: dict = {"description": __doc__.strip().split("\n\n")[0], "tasks": {}}
    for task in config.audit.tasks:
        rows = task_rows(config, task)
        if first is None:
            from ..study import load_split

            first = load_split(config, None, task, per_class=config.audit.limit_per_class, progress=False)
            index = load_index(config, root=first.root, progress=progress)
            runner = ProbeRunner(config, first.root, index, progress)
            path = find_sources_file(first.root, sources_path)
            attribution = read_sources(path)
            report["sources_file"] = str(path) if path else None
            report["manifest_sha256"] = first.manifest.sha256
        if progress:
            print(f"source audit: {task}", flush=True)
        report["tasks"][task], _ = audit_modality(runner, rows, attribution, config)
    report["settings"] = {"backbone": config.backbone, "image_size": config.image_size, "seed": config.seed,
                          "n_resamples": config.audit.n_resamples,
                          "limit_per_class": config.audit.limit_per_class}
    return report


def _auc(entry: dict) -> str:
    from ..metrics import format_ci

    if "roc_auc" in entry:
        a = entry["roc_auc"]
        return format_ci(a["value"], a["low"], a["high"])
    return f"acc {entry['accuracy']:.3f} (only {'tumour' if entry['only_class'] else 'healthy'})"


def source_tables(report: dict) -> str:
    """Markdown: class mix per source, within-source AUC and leave-one-source-out per arm."""
    from ..reporting.readme import markdown_table

    out = []
    for task, r in report["tasks"].items():
        mix = r["class_mix"]
        heads = ["source", "healthy", "tumour"] + [f"within-source AUC, {a}" for a in ARMS] + \
                [f"left out: {a}" for a in ARMS]
        rows = []
        for s, counts in mix.items():
            within = [_auc(r["arms"][a]["within_source"][s]) if s in r["arms"][a]["within_source"] else "—"
                      for a in ARMS]
            loso = [_auc(r["arms"][a]["leave_one_source_out"][s])
                    if s in r["arms"][a]["leave_one_source_out"] else "—" for a in ARMS]
            rows.append([s, str(counts.get("healthy", 0)), str(counts.get("tumor", 0)), *within, *loso])
        rows.append(["all (Kaggle test)", "", "", *[_auc(r["arms"][a]["within_source"]["all"]) for a in ARMS],
                     "", "", ""])
        out.append(f"**{task.upper()}** ({r['clusters']['k']} acquisition clusters)\n\n" + markdown_table(heads, rows))
    return "\n\n".join(out)
