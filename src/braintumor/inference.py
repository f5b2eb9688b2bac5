"""Run a trained model on your own images: files, folders or globs → one row per image or slice.

Every row names the file (and, for DICOM/NIfTI scans, the slice and its series), the
predicted class, the calibrated probabilities, the decision at the model card's threshold,
the out-of-distribution and modality checks (:mod:`braintumor.ood`: ``modality``, ``p_ct``,
``ood_score``, ``in_distribution``, ``warning``) and the model's id. A file that cannot be
read (empty, truncated, not an image, too large, under 32 px) gets a row with its error
instead of stopping the batch. Scans also get one summary row per series or volume
(:func:`volume_table`).

Files are decoded and preprocessed (crop-mask included) in worker processes
(:mod:`braintumor.inputs`) while the network runs on the previous chunk in this one.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import threading
import weakref
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .errors import BrainTumorError
from .metrics import apply_temperature
from .models.classifier import LOGITS_LAYER, POOL_LAYER
from .models.modelcard import is_run, load_run
from .ood import FLAT_WARNING, add_flat
from .inputs import Item, expand_inputs, load_source

__all__ = ["Predictor", "expand_inputs", "predict", "resolve_run", "volume_table", "write_gradcams",
           "write_results"]

CHECK_COLUMNS = ["modality", "p_ct", "ood_score", "in_distribution", "warning"]
# Sources read in this process (no worker pool to start) when there are at most this many.
POOL_MIN_SOURCES = 8


def resolve_run(path: str | Path) -> Path:
    """A run folder, or the newest run inside a task folder such as ``models/ct``."""
    p = Path(path)
    if p.is_dir() and not is_run(p):
        runs = sorted(d for d in p.iterdir() if is_run(d))
        if runs:
            return runs[-1]  # run ids start with a timestamp
    return p


def probabilities_from_logits(logits: np.ndarray, temperature: float, binary: bool) -> np.ndarray:
    """Calibrated class probabilities, shape ``(N, K)`` (binary: ``[P(healthy), P(tumor)]``),
    by :func:`braintumor.metrics.apply_temperature`, as evaluation calibrates them."""
    z = np.asarray(logits, dtype=np.float64)
    p = apply_temperature(z.reshape(-1) if binary else z, temperature, binary, kind="logits")
    return np.stack([1.0 - p, p], axis=1) if binary else p


def _pool_context():
    """Worker processes start clean (forkserver/spawn), never as forks of a process whose
    TensorFlow threads may hold locks."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def start_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of decoding processes (kept by :class:`Predictor` across calls)."""
    return ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context())


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


@dataclass
class Predictor:
    """A loaded model plus its card and checks; call :meth:`predict_paths` as often as you like.

    ``model`` maps images to logits (what evaluation and Grad-CAM use); ``checks`` are the
    run's out-of-distribution and modality checks (:mod:`braintumor.ood`), or None with the
    reason in ``checks_note``.
    """

    model: object
    card: dict
    run_dir: Path
    checks: object = None
    checks_note: str = ""
    _dual: object = field(default=None, repr=False)
    _pool: object = field(default=None, repr=False)
    _pool_workers: int = field(default=0, repr=False)

    def pool(self, workers: int | None, n_sources: int) -> ProcessPoolExecutor | None:
        """The decoding processes for ``n_sources`` sources: None (this process) for one worker
        or at most :data:`POOL_MIN_SOURCES` sources; else a pool started once and reused, so
        repeated calls (the web app, benchmarks) do not pay for starting processes again."""
        workers = workers or os.cpu_count() or 1
        if workers <= 1 or n_sources <= POOL_MIN_SOURCES:
            return None
        if self._pool is None or self._pool_workers != workers:
            self.close()
            self._pool, self._pool_workers = start_pool(workers), workers
            weakref.finalize(self, self._pool.shutdown, wait=False, cancel_futures=True)
        return self._pool

    def close(self) -> None:
        """Stop the decoding processes (they also stop when the Predictor is garbage-collected)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._pool_workers = None, 0

    @classmethod
    def load(cls, run_dir: str | Path) -> "Predictor":
        import keras

        from .ood import load_checks

        model, card = load_run(run_dir)
        logits_model = keras.Model(model.input, model.get_layer(LOGITS_LAYER).output)
        checks, note = load_checks(run_dir, card)
        return cls(logits_model, card, Path(run_dir), checks, note)

    @property
    def binary(self) -> bool:
        return len(self.card["classes"]) == 2

    @property
    def temperature(self) -> float:
        return float(self.card.get("temperature") or 1.0)

    @property
    def threshold(self) -> float:
        t = self.card.get("decision_threshold")
        return float(t) if t is not None else 0.5

    @property
    def model_id(self) -> str:
        return f"{self.card['task']}/{self.card.get('run_id', self.run_dir.name)}"

    def predict_arrays(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """Calibrated probabilities ``(N, K)`` for prepared ``uint8`` images."""
        logits = self.model.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size, verbose=0)
        return probabilities_from_logits(logits, self.temperature, self.binary)

    def logits_and_features(self, images: np.ndarray, batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
        """Logits and pooled features (what the checks read) in one pass over the network."""
        import keras

        if self._dual is None:
            self._dual = keras.Model(self.model.input, [self.model.output,
                                                        self.model.get_layer(POOL_LAYER).output])
        logits, pooled = self._dual.predict(np.asarray(images, dtype=np.float32), batch_size=batch_size,
                                            verbose=0)
        return np.asarray(logits), np.asarray(pooled)

    def predict_paths(self, paths: list[str | Path], batch_size: int = 32, progress: bool = True,
                      workers: int | None = None) -> pd.DataFrame:
        """One row per image file or scan slice of ``paths`` (files, DICOM series folders,
        NIfTI volumes; see :func:`expand_inputs` for folders and globs). ``workers``: decoding
        processes (default: every core). ``df.attrs['notes']`` holds what the user should
        know once (checks missing); ``df.attrs['volumes']`` the per-series summary."""
        classes = list(self.card["classes"])
        size, preprocess = int(self.card["image_size"]), self.card["preprocess"]
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

        pool = self.pool(workers, len(jobs))
        ahead = 8 * (workers or os.cpu_count() or 1)
        for items in _prefetch(_chunked(counted(iter_sources(jobs, pool, ahead)), chunk)):
            ok = [it for it in items if it.image is not None]
            if ok:
                logits, pooled = self.logits_and_features(np.stack([it.image for it in ok]), batch_size)
                probs = probabilities_from_logits(logits, self.temperature, self.binary)
                checked = self.checks.check(pooled) if self.checks is not None else None
                if checked is not None:
                    checked = add_flat(checked, [it.flat for it in ok])
            results = {}
            for k, it in enumerate(ok):
                row = {}
                for c, v in zip(classes, probs[k]):
                    row[f"p_{c}"] = float(v)
                if self.binary:
                    row["predicted"] = classes[int(probs[k][1] >= self.threshold)]
                    row["decision_threshold"] = self.threshold
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
                             "model": self.model_id, "error": it.error, **results.get(id(it), {})})
            bar.n = seen_sources
            bar.refresh()
        bar.close()
        cols = ["path", "slice", "series", "predicted"] + [f"p_{c}" for c in classes]
        cols += ["decision_threshold"] if self.binary else []
        cols += CHECK_COLUMNS + ["model", "error"]
        df = pd.DataFrame(rows).reindex(columns=cols)
        for c in ("slice", "series", "warning"):
            df[c] = df[c].astype(object).where(df[c].notna(), "")
        df.attrs["notes"] = [self.checks_note] if self.checks_note else []
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


def predict(inputs, model: str | Path, batch_size: int = 32, progress: bool = False,
            workers: int | None = None) -> pd.DataFrame:
    """Predict for files, folders or globs (images, DICOM files and series, NIfTI volumes)
    with the model in run folder ``model`` (or ``models/<task>`` for its newest run).
    The per-series summary of scans is ``df.attrs['volumes']``."""
    if isinstance(inputs, (str, Path)):
        inputs = [inputs]
    paths = expand_inputs(list(inputs))
    if not paths:
        raise BrainTumorError(f"no image or scan files found in {list(inputs)}")
    return Predictor.load(resolve_run(model)).predict_paths(paths, batch_size=batch_size, progress=progress,
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
