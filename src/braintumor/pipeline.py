"""Images → model-ready arrays → tf.data datasets, with augmentation for training.

Every image goes through :func:`braintumor.preprocess.prepare_image` (decode any mode to
RGB, optional shortcut-removing preprocessing, aspect-preserving resize with black
padding), in training, evaluation and :mod:`braintumor.inference` alike. Decoded arrays are cached on
disk (``data/cache/``, a memory-mapped ``.npy`` per image set), so every epoch after the
first reads pixels from memory instead of decoding JPEGs; on 2 CPU cores decoding is
the bottleneck, not the network.
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import BrainTumorError, ImageReadError
from .files import atomic_path, write_text_atomic
from .parallel import parallel_map
from .data.tasks import label_targets
from .preprocess import load_prepared


def _prepare_job(args: tuple[str, int, str]) -> np.ndarray | str:
    path, size, preprocess = args
    try:
        return load_prepared(path, size, preprocess)
    except ImageReadError as e:
        return str(e)


def prepare_arrays(paths: list[str | Path], size: int, preprocess: str = "none",
                   workers: int | None = None, progress: bool = True) -> np.ndarray:
    """Decode and prepare many images in parallel into one ``uint8 (N, S, S, 3)`` array.

    Any unreadable file raises one error listing every failure: training images are
    expected to be indexed and readable (predict handles bad files per row instead).
    """
    jobs = [(str(p), size, preprocess) for p in paths]
    out = np.empty((len(jobs), size, size, 3), dtype=np.uint8)
    failures: list[str] = []
    for i, r in enumerate(parallel_map(_prepare_job, jobs, workers, desc=f"decoding {size}px",
                                       progress=progress)):
        if isinstance(r, str):
            failures.append(r)
        else:
            out[i] = r
    if failures:
        raise BrainTumorError(f"{len(failures)} image(s) could not be read:\n  " + "\n  ".join(failures))
    return out


def cached_arrays(root: str | Path, rows: pd.DataFrame, size: int, preprocess: str,
                  cache_dir: str | Path | None, progress: bool = True) -> np.ndarray:
    """:func:`prepare_arrays` for manifest rows, cached as ``.npy`` keyed by content.

    The key hashes each row's SHA-256 (not its path), the size and the preprocessing,
    so a cache is reused across machines and never serves stale pixels. Beside each cache
    a ``.rows.txt`` lists its rows' SHA-256s, so a new row set (the pooled task after CT and
    MRI, say) copies the images earlier caches already hold and decodes only the rest —
    which matters for the slow ``crop-mask`` preprocessing.
    """
    paths = [Path(root) / p for p in rows["path"]]
    if cache_dir is None:
        return prepare_arrays(paths, size, preprocess, progress=progress)
    shas = [str(s) for s in rows["sha256"]]
    listed = "\n".join(shas) + "\n"  # also the .rows.txt content
    key = hashlib.sha256((listed + f"{size}\n{preprocess}\nv1").encode()).hexdigest()[:20]
    cache = Path(cache_dir) / f"images-{size}-{preprocess}-{key}.npy"
    listing = cache.with_suffix(".rows.txt")
    if cache.is_file():
        arr = np.load(cache, mmap_mode="r")
        if arr.shape == (len(rows), size, size, 3):
            if not listing.is_file():  # a cache written before listings existed
                listing.write_text(listed)
            return arr
    arr = np.empty((len(rows), size, size, 3), dtype=np.uint8)
    todo = [i for i, found in enumerate(_copy_cached_images(cache.parent, size, preprocess, shas, arr))
            if not found]
    if todo:
        arr[todo] = prepare_arrays([paths[i] for i in todo], size, preprocess, progress=progress)
    with atomic_path(cache, suffix=".npy") as tmp:
        np.save(tmp, arr)
    write_text_atomic(listing, listed)
    return arr


def _copy_cached_images(cache_dir: Path, size: int, preprocess: str, shas: list[str],
                        out: np.ndarray) -> list[bool]:
    """Fill ``out[i]`` from any earlier cache (same size and preprocessing) that holds an
    image with SHA-256 ``shas[i]``; return which rows were found."""
    wanted: dict[str, list[int]] = {}
    for i, sha in enumerate(shas):
        wanted.setdefault(sha, []).append(i)
    found = [False] * len(shas)
    name = re.compile(rf"images-{size}-{re.escape(preprocess)}-[0-9a-f]{{20}}\.rows\.txt")
    for listing in sorted(cache_dir.glob(f"images-{size}-*.rows.txt")) if cache_dir.is_dir() else []:
        if not wanted or not name.fullmatch(listing.name):
            continue
        held = listing.read_text().split()
        array = listing.with_name(listing.name[:-len(".rows.txt")] + ".npy")
        if not array.is_file():
            continue
        cached = np.load(array, mmap_mode="r")
        if cached.shape != (len(held), size, size, 3):
            continue  # an interrupted or foreign file: ignore it
        for j, sha in enumerate(held):
            for i in wanted.pop(sha, ()):
                out[i], found[i] = cached[j], True
    return found


def augmentation_layers(seed: int, strength: float = 1.0):
    """The training augmentation (:func:`braintumor.augment.augmentation_layers`)."""
    from .augment import augmentation_layers as layers

    return layers(seed, strength)


def make_dataset(images: np.ndarray, y: np.ndarray, n_classes: int, batch_size: int,
                 training: bool, seed: int, augment: bool = True, extra_augmentation=()):
    """A ``tf.data.Dataset`` of ``(float32 0–255 images, labels)`` batches.

    Labels are ``float32 (N, 1)`` for binary tasks and one-hot ``(N, K)`` otherwise (so
    Keras' AUC metric can give a macro one-vs-rest AUC). Images are gathered from the
    in-memory array by index, so shuffling moves indices, not pixels.
    """
    import tensorflow as tf

    images_t = tf.convert_to_tensor(np.asarray(images))
    y = np.asarray(y, dtype=np.int64)
    labels_t = tf.convert_to_tensor(label_targets(y, n_classes))
    ds = tf.data.Dataset.range(len(y))
    if training:
        ds = ds.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    # Named functions, not lambdas: AutoGraph cannot parse a lambda that shares its source
    # line with another one, and says so loudly on every dataset it builds.
    def gather(idx):
        return tf.cast(tf.gather(images_t, idx), tf.float32), tf.gather(labels_t, idx)

    ds = ds.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if training and augment:
        aug = augmentation_layers(seed)
        extra = list(extra_augmentation)  # a recipe's layers (braintumor.recipes), after the usual ones

        def augment_batch(x, t):
            x = aug(x, training=True)
            for layer in extra:
                x = layer(x, training=True)
            return tf.clip_by_value(x, 0.0, 255.0), t

        ds = ds.map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
