"""What evaluate-external computes from an external set's files alone, cached by content.

A study scores every run on the same external sets, so whatever does not depend on the
trained model is computed once and read back afterwards, under ``data/cache/external/``:

* ``images-<key>.npy``: the decoded and prepared ``uint8`` images (the model card's image size
  and preprocessing; ``crop-mask`` costs ~0.03 s an image);
* ``phashes-<key>.json``: each file's pHash (:func:`.overlap.phashes`);
* ``frozen-features-<key>.npy``: the frozen ImageNet backbone's pooled features that
  :func:`.modality.modality_check` classifies.

Every key hashes the SHA-256 of each file's content, in order (never its path or date),
what else the result depends on (size, preprocessing, backbone) and :data:`VERSION`, so a
changed, added or removed file gives a new key, and a cache is never served stale. Files
are written atomically (:func:`braintumor.files.atomic_path`); a file of the wrong shape
(interrupted or foreign) is recomputed. Bump :data:`VERSION` when what is cached changes
meaning (a new preprocessing implementation, say).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..config import Config
from ..files import atomic_path, sha256_file, write_text_atomic

VERSION = "external-cache-v1"


def cache_dir(config: Config) -> Path:
    return config.cache_path / "external"


def file_hashes(files: Sequence[str | Path]) -> list[str]:
    """SHA-256 of each file's content (a few ms for a thousand PNG slices)."""
    return [sha256_file(f) for f in files]


def content_key(shas: Sequence[str], *parts) -> str:
    """20 hex digits of the SHA-256 of ``shas`` (in order), ``parts`` and :data:`VERSION`."""
    text = "\n".join([*map(str, shas), "--", *map(str, parts), VERSION]) + "\n"
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def cached_array(path: Path, compute: Callable[[], np.ndarray], shape: tuple | None = None,
                 mmap: bool = False) -> np.ndarray:
    """``np.load(path)`` when it holds an array of ``shape`` (any shape when None), else
    ``compute()`` saved atomically to ``path``. The array is stored as computed (same dtype),
    so a cached result equals a fresh one bit for bit."""
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r" if mmap else None)
        except (OSError, ValueError):
            arr = None
        if arr is not None and (shape is None or arr.shape == tuple(shape)):
            return arr
    arr = np.asarray(compute())
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)
    return arr


def prepared_images(files: Sequence[str | Path], shas: Sequence[str], size: int, preprocess: str,
                    config: Config, workers: int | None = None, progress: bool = True) -> np.ndarray:
    """:func:`braintumor.pipeline.prepare_arrays` of ``files`` (content ``shas``), cached."""
    from ..pipeline import prepare_arrays

    key = content_key(shas, "images", size, preprocess)
    return cached_array(cache_dir(config) / f"images-{key}.npy",
                        lambda: prepare_arrays(list(files), size, preprocess, workers=workers, progress=progress),
                        shape=(len(files), size, size, 3), mmap=True)


def phashes(files: Sequence[str | Path], shas: Sequence[str], config: Config, workers: int | None = None,
            progress: bool = True) -> list[str]:
    """:func:`.overlap.phashes` of ``files`` (content ``shas``; the pHash reads the file as it is,
    whatever the model's size and preprocessing), cached."""
    from . import overlap

    path = cache_dir(config) / f"phashes-{content_key(shas, 'phash')}.json"
    if path.is_file():
        try:
            hashes = json.loads(path.read_text())
        except ValueError:
            hashes = None
        if isinstance(hashes, list) and len(hashes) == len(files):
            return [str(h) for h in hashes]
    hashes = overlap.phashes([str(f) for f in files], workers, progress)
    write_text_atomic(path, json.dumps(hashes) + "\n")
    return hashes


def backbone_identity(card: dict) -> list[str]:
    """What names the frozen backbone's weights: its name and the weights' hashes as the card
    records them, plus the current hash of a backbone given as a model file."""
    b = card.get("backbone") or {}
    name = str(b.get("name"))
    out = [name, str(b.get("weights")), str(b.get("weight_sha256")), str(b.get("cache_sha256"))]
    if Path(name).is_file():
        out.append(sha256_file(name))
    return out
