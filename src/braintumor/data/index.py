"""The per-image table every later step works from.

One row per image file: where it is, what it is (modality, label, tumour sub-type from
the file name), how it is stored (format, mode, size, bytes), what it hashes to
(SHA-256 and perceptual hash) and which duplicate group it belongs to. Unreadable files
get a row too, with ``status`` naming the problem, so nothing disappears silently.

Building decodes every image once, in parallel, and the table is cached under
``data/cache/`` keyed by the dataset's fingerprint (file list and sizes).
"""
from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

import imagehash
import pandas as pd
from PIL import Image

from ..config import Config
from .dataset import SUBTYPES, ImageFileEntry, list_image_files, locate_dataset
from .duplicates import assign_groups
from ..errors import ImageReadError
from ..files import atomic_path
from ..parallel import parallel_map
from .images import decode_rgb, read_bytes

INDEX_VERSION = 1  # bump when columns or their meaning change: invalidates caches
_SUBTYPE_RE = re.compile(rf"^({'|'.join(SUBTYPES)})\b", re.IGNORECASE)

COLUMNS = [
    "path", "modality", "label", "subtype", "format", "mode", "width", "height", "bytes",
    "sha256", "phash", "group", "status",
]


def subtype_from_name(filename: str, modality: str, label: str) -> str:
    """``glioma``/``meningioma``/``pituitary`` from an MRI tumour file-name prefix.

    Healthy images are ``none``; CT tumours and MRI tumours named ``tumor (N)`` carry no
    sub-type in the data and are ``unspecified``.
    """
    if label == "healthy":
        return "none"
    if modality == "MRI":
        m = _SUBTYPE_RE.match(Path(filename).name)
        if m:
            return m.group(1).lower()
    return "unspecified"


def _describe_file(args: tuple[str, str]) -> dict:
    """Hash and decode one file (runs in a worker process)."""
    root, relpath = args
    row: dict = {"path": relpath}
    path = Path(root) / relpath
    try:
        data = read_bytes(path)
        row["bytes"] = len(data)
        row["sha256"] = hashlib.sha256(data).hexdigest()
        if data:
            try:
                with Image.open(io.BytesIO(data)) as img:
                    row["format"], row["mode"] = img.format, img.mode
            except Exception:  # noqa: BLE001 - decode_rgb below reports the reason
                pass
        rgb = decode_rgb(data, path)
        row["height"], row["width"] = int(rgb.shape[0]), int(rgb.shape[1])
        row["phash"] = str(imagehash.phash(Image.fromarray(rgb)))
        row["status"] = "ok"
    except ImageReadError as e:
        row["status"] = f"error: {e.reason}"
    return row


def dataset_fingerprint(root: str | Path, entries: list[ImageFileEntry] | None = None) -> str:
    """A short hash of the file list and sizes: changes when a file is added, removed or
    changes size, but not when the folder is copied elsewhere (mtimes are ignored, since
    copies reset them). Replacing a file by another of the same size needs --rebuild."""
    root = Path(root)
    entries = entries if entries is not None else list_image_files(root)
    h = hashlib.sha256(f"index-v{INDEX_VERSION}\n".encode())
    for e in entries:
        h.update(f"{e.relpath}\t{(root / e.relpath).stat().st_size}\n".encode())
    return h.hexdigest()[:16]


def build_index(root: str | Path, workers: int | None = None, phash_threshold: int = 0,
                progress: bool = True) -> pd.DataFrame:
    """Decode and hash every image under ``root`` into the index table (no caching)."""
    root = Path(root)
    entries = list_image_files(root)
    jobs = [(str(root), e.relpath) for e in entries]
    rows = list(parallel_map(_describe_file, jobs, workers, min_jobs=50, chunksize=64, desc="indexing",
                             progress=progress))
    df = pd.DataFrame(rows)
    meta = pd.DataFrame([e.__dict__ for e in entries]).rename(columns={"relpath": "path"})
    df = meta.merge(df, on="path", how="left", validate="one_to_one")
    df["subtype"] = [subtype_from_name(p, m, lab)
                     for p, m, lab in zip(df["path"], df["modality"], df["label"])]
    for col in ("format", "mode", "phash"):
        df[col] = df[col].fillna("") if col in df else ""
    for col in ("width", "height", "bytes"):
        df[col] = df[col].fillna(-1).astype("int64") if col in df else -1
    df["group"] = assign_groups(df, phash_threshold=phash_threshold)
    return df[COLUMNS]


def load_index(config: Config | None = None, root: str | Path | None = None,
               rebuild: bool = False, progress: bool = True) -> pd.DataFrame:
    """The cached index for the located dataset, rebuilt only when the data changed.

    The table's ``attrs`` carry the dataset root and fingerprint.
    """
    config = config or Config()
    root = Path(root) if root else locate_dataset(config=config)
    entries = list_image_files(root)
    fp = dataset_fingerprint(root, entries)
    cache = config.cache_path / f"index-{fp}-p{config.phash_threshold}.parquet"
    if cache.is_file() and not rebuild:
        df = pd.read_parquet(cache)
    else:
        df = build_index(root, phash_threshold=config.phash_threshold, progress=progress)
        with atomic_path(cache) as tmp:  # a killed build never leaves a half-written cache
            df.to_parquet(tmp, index=False)
    df.attrs["root"] = str(root)
    df.attrs["fingerprint"] = fp
    return df


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """Image counts per modality × label × sub-type, plus unreadable files."""
    table = (df.groupby(["modality", "label", "subtype"], observed=True)
             .agg(images=("path", "size"),
                  unreadable=("status", lambda s: int((s != "ok").sum())),
                  formats=("format", lambda s: ",".join(sorted(set(s) - {""}))),
                  modes=("mode", lambda s: ",".join(sorted(set(s) - {""}))),
                  median_width=("width", "median"), median_height=("height", "median"))
             .reset_index())
    return table

