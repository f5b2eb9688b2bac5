"""Is an external image one the model was trained on? Two independent checks.

1. **Perceptual hash**: the 64-bit pHash of each external image (computed exactly as the index
   computes it, :func:`braintumor.data.index._describe_file`) against the pHashes the index
   already stores for every training image of the task; Hamming distance <= 4 is a match
   (the threshold the external sets were filtered with, README of ``shared/datasets/external``).
2. **Backbone-feature nearest neighbour**: cosine similarity of the model's own pooled features
   (:func:`braintumor.models.classifier.feature_model`), centred on the training images' mean,
   against the features of the images the model trained on. (Centring matters: pooled
   post-ReLU features all point into one orthant, so uncentred cosines of unrelated brain
   slices sit at 0.7–0.99 and say little.) The threshold is calibrated on the training images
   themselves, as the larger of (a) the similarity at which *known* near-duplicate pairs sit
   (training pairs of distinct files with pHash distance <= 4; :data:`PAIR_QUANTILE` of their
   similarities), so a re-encoded or resized copy that pHash misses is still caught, and (b)
   the :data:`DISTINCT_QUANTILE` of each training image's nearest clearly different training
   image (pHash distance > 10), so a similarity that distinct images routinely reach is not
   called a copy. With fewer than :data:`MIN_PAIRS` known pairs (quick or tiny training sets)
   (b) alone sets it; the report records both.

Matches by either check are reported and left out of the metrics.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..files import atomic_path
from ..parallel import parallel_map

PHASH_MAX_DISTANCE = 4
PAIR_QUANTILE = 0.05  # 95% of known near-duplicate training pairs are at or above the threshold
DISTINCT_QUANTILE = 0.99  # ... and 99% of distinct training images' nearest neighbours are below it
DISTINCT_DISTANCE = 10  # pHash distance above which two training images are clearly different
MIN_PAIRS = 20
_CHUNK = 512


def _phash_job(path: str) -> str:
    import imagehash
    from PIL import Image

    from ..data.images import load_rgb

    return str(imagehash.phash(Image.fromarray(load_rgb(path))))


def phashes(files: list[str], workers: int | None = None, progress: bool = True) -> list[str]:
    """pHash (hex) of every file, in parallel."""
    return list(parallel_map(_phash_job, files, workers, desc="pHash", progress=progress))


def hash_ints(hexes) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def nearest_hash(ext: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``ext`` hash: the smallest Hamming distance to ``ref`` and its index."""
    dist = np.full(ext.size, 65, dtype=np.int64)
    arg = np.full(ext.size, -1, dtype=np.int64)
    if ref.size == 0:
        return dist, arg
    for s in range(0, ext.size, _CHUNK):
        d = np.bitwise_count(ext[s:s + _CHUNK, None] ^ ref[None, :]).astype(np.int64)
        dist[s:s + _CHUNK], arg[s:s + _CHUNK] = d.min(axis=1), d.argmin(axis=1)
    return dist, arg


def _unit(f: np.ndarray, centre: np.ndarray) -> np.ndarray:
    f = np.asarray(f, dtype=np.float32) - centre
    return f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)


def nearest_feature(ext: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each ``ext`` feature row: the highest cosine similarity to ``ref`` (both centred on
    ``ref``'s mean) and its index."""
    centre = np.asarray(ref, dtype=np.float32).mean(axis=0)
    e, r = _unit(ext, centre), _unit(ref, centre)
    sim = np.full(len(e), -1.0)
    arg = np.full(len(e), -1, dtype=np.int64)
    for s in range(0, len(e), _CHUNK):
        block = e[s:s + _CHUNK] @ r.T
        sim[s:s + _CHUNK], arg[s:s + _CHUNK] = block.max(axis=1), block.argmax(axis=1)
    return sim, arg


def calibrate_similarity(features: np.ndarray, hashes: np.ndarray, shas) -> dict:
    """The feature-similarity threshold from known near-duplicate pairs among the training
    images (distinct files, pHash distance <= 4), plus how often clearly different images
    (distance > 10) reach it — the false-flag rate on the training set."""
    f, shas = _unit(features, np.asarray(features, dtype=np.float32).mean(axis=0)), np.asarray(shas)
    pair_sims, other_nn = [], np.full(len(f), -1.0)
    for s in range(0, len(f), _CHUNK):
        d = np.bitwise_count(hashes[s:s + _CHUNK, None] ^ hashes[None, :])
        sim = f[s:s + _CHUNK] @ f.T
        rows = np.arange(s, min(s + _CHUNK, len(f)))
        upper = rows[:, None] < np.arange(len(f))[None, :]
        dup = (d <= PHASH_MAX_DISTANCE) & upper & (shas[rows, None] != shas[None, :])
        pair_sims.append(sim[dup])
        other_nn[rows] = np.where(d > DISTINCT_DISTANCE, sim, -1.0).max(axis=1)
    pairs = np.concatenate(pair_sims) if pair_sims else np.zeros(0)
    pair_level = float(np.quantile(pairs, PAIR_QUANTILE)) if pairs.size >= MIN_PAIRS else None
    distinct_level = float(np.quantile(other_nn, DISTINCT_QUANTILE)) if len(f) else 1.0
    threshold = max(distinct_level, pair_level if pair_level is not None else -1.0)
    return {"threshold": threshold,
            "known_pairs_level": pair_level, "distinct_images_level": distinct_level,
            "source": (f"max({PAIR_QUANTILE:.0%} quantile of {pairs.size} known near-duplicate training pairs, "
                       f"{DISTINCT_QUANTILE:.0%} quantile of distinct training images' nearest neighbours)"
                       if pair_level is not None else
                       f"{DISTINCT_QUANTILE:.0%} quantile of distinct training images' nearest neighbours "
                       f"(only {pairs.size} known near-duplicate pairs, fewer than {MIN_PAIRS})"),
            "n_pairs": int(pairs.size),
            "pair_similarity_median": float(np.median(pairs)) if pairs.size else None,
            "known_pairs_caught": float((pairs >= threshold).mean()) if pairs.size else None}


def cached_features(path: Path, compute) -> np.ndarray:
    if path.is_file():
        return np.load(path)
    arr = np.asarray(compute(), dtype=np.float32)
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, arr)
    return arr


def features_key(run_dir: Path, card: dict, shas) -> str:
    model = Path(run_dir) / "model.keras"
    stamp = f"{model.stat().st_size}-{model.stat().st_mtime_ns}" if model.is_file() else ""
    text = "\n".join([card.get("run_id", str(run_dir)), stamp, *map(str, shas)])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def near_duplicates(ext_hashes, ext_features, ref_rows: pd.DataFrame, ref_features: np.ndarray,
                    feature_rows: pd.DataFrame, similarity: float) -> pd.DataFrame:
    """Per external image: nearest training pHash distance and file, nearest feature
    similarity and file, and whether either check calls it an overlap."""
    dist, harg = nearest_hash(hash_ints(ext_hashes), hash_ints(ref_rows["phash"]))
    sim, farg = nearest_feature(ext_features, ref_features)
    ref_paths, feat_paths = ref_rows["path"].to_numpy(), feature_rows["path"].to_numpy()
    out = pd.DataFrame({
        "phash": list(ext_hashes),
        "phash_distance": dist,
        "phash_nearest": [ref_paths[i] if i >= 0 else "" for i in harg],
        "feature_similarity": sim.round(5),
        "feature_nearest": [feat_paths[i] if i >= 0 else "" for i in farg],
    })
    out["overlap_phash"] = out["phash_distance"] <= PHASH_MAX_DISTANCE
    out["overlap_feature"] = out["feature_similarity"] >= similarity
    out["overlap"] = out["overlap_phash"] | out["overlap_feature"]
    return out
