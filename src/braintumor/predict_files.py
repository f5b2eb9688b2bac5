"""Run a loaded model over files: decoding in worker processes overlapped with the network.

:meth:`braintumor.inference.Predictor.predict_paths` (and so ``braintumor predict``, the
web app and external evaluation) lands here. Files are read and preprocessed
(:func:`braintumor.inputs.load_source`, crop-mask included) in worker processes, at most a
few chunks ahead, while the network runs on the previous chunk in this process; rows keep
each file's error. Training and evaluation never import this module, so tuning how files
are streamed leaves every finished study run current (:mod:`braintumor.studies.spec`).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import BrainTumorError, ModelCardError
from .inference import CHECK_COLUMNS, Predictor, probabilities_from_logits, resolve_run
from .inputs import Item, expand_inputs, load_source
from .models.modelcard import MODEL_NAME, is_run
from .ood import FLAT_WARNING, add_flat

# Sources read in this process (no worker pool to start) when there are at most this many.
POOL_MIN_SOURCES = 8


def _pool_context():
    """Worker processes start clean (forkserver/spawn), never as forks of a process whose
    TensorFlow threads may hold locks."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


# How much lower the decoding processes run than this one (os.nice increment; 0 = same).
# 10 was tried against 0 on 2 cores (benchmarks/inference, 2026-12-02): no clear difference
# within the run-to-run spread, so the default stays equal priority.
WORKER_NICENESS = int(os.environ.get("BRAINTUMOR_DECODE_NICENESS", "0"))


def _lower_priority(increment: int) -> None:
    """Decoding yields the cores to the network: TensorFlow splits each op over every core
    and waits for its slowest thread, so a decoder that takes a core from it slows the whole
    op; at lower priority decoders fill the gaps (between ops and chunks) instead."""
    if increment > 0 and hasattr(os, "nice"):
        os.nice(increment)


def start_pool(workers: int, niceness: int | None = None) -> ProcessPoolExecutor:
    """A pool of decoding processes (kept by :class:`Predictor` across calls), at
    :data:`WORKER_NICENESS` below this process unless ``niceness`` says otherwise."""
    niceness = WORKER_NICENESS if niceness is None else niceness
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                               initializer=_lower_priority, initargs=(niceness,))


def iter_sources(jobs: list[tuple[str, int, str]], pool: ProcessPoolExecutor | None = None,
                 in_flight: int = 16) -> Iterator[list[Item]]:
    """:func:`braintumor.inputs.load_source` for every job, in order: in ``pool``'s worker
    processes when given, with at most ``in_flight`` jobs submitted ahead (memory stays flat
    for any number of files), else in this process."""
    if pool is None:
        yield from (load_source(j) for j in jobs)
        return
    pending: deque = deque()
    todo = iter(jobs)
    try:
        for job in todo:
            pending.append(pool.submit(load_source, job))
            if len(pending) >= in_flight:
                break
        while pending:
            items = pending.popleft().result()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.submit(load_source, nxt))
            yield items
    finally:
        for f in pending:
            f.cancel()


_DONE = object()


def _prefetch(chunks: Iterator, depth: int = 2) -> Iterator:
    """Run the ``chunks`` generator in a background thread, ``depth`` chunks ahead, so
    reading the next files overlaps the network on this one."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run():
        try:
            for chunk in chunks:
                if not put(chunk):
                    return
        except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
            put(e)
        finally:
            put(_DONE)

    thread = threading.Thread(target=run, name="braintumor-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            x = q.get()
            if x is _DONE:
                return
            if isinstance(x, BaseException):
                raise x
            yield x
    finally:
        stop.set()
        thread.join(timeout=5)


def _chunked(per_source: Iterator[list[Item]], size: int) -> Iterator[list[Item]]:
    """Group items into lists holding ``size`` readable images (plus any error items)."""
    buf: list[Item] = []
    n = 0
    for items in per_source:
        buf.extend(items)
        n += sum(it.image is not None for it in items)
        if n >= size:
            yield buf
            buf, n = [], 0
    if buf:
        yield buf


def pool_for(predictor: Predictor, workers: int | None, n_sources: int) -> ProcessPoolExecutor | None:
    """The decoding processes for ``n_sources`` sources: None (this process) for one worker
    or at most :data:`POOL_MIN_SOURCES` sources; else ``predictor``'s pool, started once and
    reused, so repeated calls (the web app, benchmarks) do not pay for starting processes again."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1 or n_sources <= POOL_MIN_SOURCES:
        return None
    if predictor._pool is None or predictor._pool_workers != workers:
        predictor.close()
        predictor._pool, predictor._pool_workers = start_pool(workers), workers
        weakref.finalize(predictor, predictor._pool.shutdown, wait=False, cancel_futures=True)
    return predictor._pool


def predict_paths(predictor: Predictor, paths: list[str | Path], batch_size: int = 32, progress: bool = True,
                  workers: int | None = None) -> pd.DataFrame:
    """:meth:`Predictor.predict_paths`: one row per image file or scan slice of ``paths`` (files, DICOM series folders,
    NIfTI volumes; see :func:`expand_inputs` for folders and globs). ``workers``: decoding
    processes (default: every core). ``df.attrs['notes']`` holds what the user should
    know once (checks missing); ``df.attrs['volumes']`` the per-series summary."""
    classes = list(predictor.card["classes"])
    size, preprocess = int(predictor.card["image_size"]), predictor.card["preprocess"]
    jobs = [(str(p), size, preprocess) for p in paths]
    chunk = max(batch_size * 4, 64)
    rows: list[dict] = []
    bar = tqdm(total=len(paths), desc="predicting", unit="file", disable=not progress)
    seen_sources = 0

    def counted(it):
        nonlocal seen_sources
        for items in it:
            seen_sources += 1
            yield items

    pool = pool_for(predictor, workers, len(jobs))
    ahead = 8 * (workers or os.cpu_count() or 1)
    for items in _prefetch(_chunked(counted(iter_sources(jobs, pool, ahead)), chunk)):
        ok = [it for it in items if it.image is not None]
        if ok:
            logits, pooled = predictor.logits_and_features(np.stack([it.image for it in ok]), batch_size)
            probs = probabilities_from_logits(logits, predictor.temperature, predictor.binary)
            checked = predictor.checks.check(pooled) if predictor.checks is not None else None
            if checked is not None:
                checked = add_flat(checked, [it.flat for it in ok])
        results = {}
        for k, it in enumerate(ok):
            row = {}
            for c, v in zip(classes, probs[k]):
                row[f"p_{c}"] = float(v)
            if predictor.binary:
                row["predicted"] = classes[int(probs[k][1] >= predictor.threshold)]
                row["decision_threshold"] = predictor.threshold
            else:
                row["predicted"] = classes[int(probs[k].argmax())]
            if checked is not None:
                row.update({c: checked[c].iloc[k] for c in CHECK_COLUMNS})
                row["in_distribution"] = bool(row["in_distribution"])
            elif it.flat:
                row["warning"] = FLAT_WARNING
            results[id(it)] = row
        for it in items:
            rows.append({"path": it.path, "slice": it.slice, "series": it.series,
                         "model": predictor.model_id, "error": it.error, **results.get(id(it), {})})
        bar.n = seen_sources
        bar.refresh()
    bar.close()
    cols = ["path", "slice", "series", "predicted"] + [f"p_{c}" for c in classes]
    cols += ["decision_threshold"] if predictor.binary else []
    cols += CHECK_COLUMNS + ["model", "error"]
    df = pd.DataFrame(rows).reindex(columns=cols)
    for c in ("slice", "series", "warning"):
        df[c] = df[c].astype(object).where(df[c].notna(), "")
    df.attrs["notes"] = [predictor.checks_note] if predictor.checks_note else []
    df.attrs["volumes"] = volume_table(df, classes)
    return df


def volume_table(df: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per DICOM series or NIfTI volume of predict's rows (empty without scans):
    slices, scored slices, max and mean slice probability and the top slices
    (:func:`braintumor.scans.summarise_volume`) of the positive class (binary tasks) or of
    every class, and how many slices were flagged by the checks."""
    from .scans import summarise_volume

    scans = df[df["series"].astype(str) != ""]
    if scans.empty:
        return pd.DataFrame()
    targets = classes[1:] if len(classes) == 2 else classes
    out = None
    for c in targets:
        part = summarise_volume(scans, f"p_{c}", series_col="series", label_col="slice")
        if out is None:
            out = part
        else:
            out = out.merge(part.drop(columns=["n_slices", "n_scored"]), on="series",
                            suffixes=("", f"_{c}"))
    flagged = scans.groupby("series", sort=False)["warning"].apply(lambda w: int((w.astype(str) != "").sum()))
    out["n_flagged"] = out["series"].map(flagged).fillna(0).astype(int)
    out.insert(1, "path", out["series"].map(scans.groupby("series", sort=False)["path"].first()))
    return out


def find_model(path: str | Path) -> Path:
    """What ``--model`` means for predict, evaluate and the web app: a run folder, or of a task
    folder such as ``models/ct`` its best run with trained weights (:func:`_preference`: trained
    as the task's default, then the newest; a clone holds only the
    committed cards; the newest card when no run has weights, so the error says so). A folder
    that is not there is an error naming where the task's runs land.

    Here rather than in :func:`braintumor.inference.resolve_run` (which training and
    evaluation import), so that it can change without making finished study runs stale."""
    p = Path(path)
    if p.is_dir() and not is_run(p):
        trained = sorted((d for d in p.iterdir() if is_run(d) and (d / MODEL_NAME).is_file()), key=_preference)
        if trained:
            return trained[-1]
    if not p.exists():
        _missing_model(p)
    return resolve_run(p)


def _preference(run: Path) -> tuple:
    """Sort key of a task folder's runs, best last: a run trained as its task's default
    (``Config.TASK_DEFAULTS``: the folder can also hold runs on another schedule, e.g. a side
    study's), then the newest by the card's ``created`` time, then by name (timestamps first)."""
    from .config import Config, defaults_note
    from .models.modelcard import read_card

    try:
        card = read_card(run)
        is_default = defaults_note(Config.from_dict(card["training"]["config"]))["this_run_uses_it"]
    except (BrainTumorError, KeyError, TypeError, ValueError):
        card, is_default = {}, False
    return is_default, str(card.get("created", "")), run.name


def _missing_model(p: Path) -> None:
    from .config import result_name, task_defaults
    from .data.tasks import TASKS

    hint = ""
    if p.name in TASKS:
        defaults = task_defaults(p.name)
        default = p.parent / result_name(p.name, defaults["preprocess"], defaults["recipe"])
        if default != p:
            hint = (f"; `braintumor train --task {p.name}` saves to {default} (the task's default "
                    f"preprocessing and recipe, `braintumor train --help`)")
    siblings = sorted(d.name for d in p.parent.glob(f"{p.name}*") if d.is_dir()) if p.parent.is_dir() else []
    if siblings:
        hint += f"; model folders here: {', '.join(siblings)}"
    raise ModelCardError(f"{p}: no such model folder{hint or ' (train one with `braintumor train`)'}")


def predict(inputs, model: str | Path, batch_size: int = 32, progress: bool = False,
            workers: int | None = None) -> pd.DataFrame:
    """Predict for files, folders or globs (images, DICOM files and series, NIfTI volumes)
    with the model in run folder ``model`` (or ``models/<task>`` for its newest trained run).
    The per-series summary of scans is ``df.attrs['volumes']``."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise BrainTumorError(f"no image or scan files found in {list(inputs)}")
    return Predictor.load(find_model(model)).predict_paths(paths, batch_size=batch_size, progress=progress,
                                                           workers=workers)


def volumes_path(out: str | Path) -> Path:
    """Where the per-series summary goes beside ``out``: ``results.csv`` → ``results.volumes.csv``."""
    out = Path(out)
    return out.with_name(f"{out.stem}.volumes{out.suffix or '.csv'}")


def write_results(df: pd.DataFrame, out: str | Path) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        out.write_text(df.to_json(orient="records", indent=2))
    else:
        df.to_csv(out, index=False)
    return out


def write_gradcams(predictor: Predictor, results: pd.DataFrame, out_dir: str | Path) -> list[Path]:
    """A Grad-CAM overlay PNG per successfully predicted image or slice, for the predicted class."""
    from PIL import Image

    from .explain import gradcam, overlay

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    size, preprocess = int(predictor.card["image_size"]), predictor.card["preprocess"]
    classes = list(predictor.card["classes"])
    written = []
    loaded: dict[str, dict[str, np.ndarray]] = {}
    for i, row in results[results["error"] == ""].iterrows():
        source = row.get("series") or row["path"]
        if source not in loaded:  # a scan is read once for all its slices
            job = (row["series"] if row.get("series") and Path(row["series"]).exists() else row["path"])
            loaded = {source: {it.slice: it.image for it in load_source((str(job), size, preprocess))}}
        image = loaded[source].get(row.get("slice") or "")
        if image is None:
            continue
        cam = gradcam(predictor.model, image[None], class_index=classes.index(row["predicted"]))[0]
        label = Path(row["path"]).stem + (f"_{row['slice'].split('#')[-1].replace('=', '')}" if row.get("slice") else "")
        target = out_dir / f"{i:05d}_{label}_gradcam.png"
        Image.fromarray(overlay(image, cam)).save(target)
        written.append(target)
    return written
