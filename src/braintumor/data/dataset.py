"""Finding, downloading and validating the Kaggle dataset.

The dataset root is the folder that holds ``Brain Tumor CT scan Images/`` and
``Brain Tumor MRI images/``, each with ``Healthy/`` and ``Tumor/``. Resolution order
(:func:`locate_dataset`): an explicit path, ``$BRAINTUMOR_DATA_DIR``, an earlier download
under ``data/``, then :func:`download`.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from ..config import DATA_DIR_ENV, KAGGLE_HANDLE, Config
from ..errors import DatasetError
from .images import is_image_file

MODALITY_FOLDERS = {"CT": "Brain Tumor CT scan Images", "MRI": "Brain Tumor MRI images"}
LABEL_FOLDERS = {"healthy": "Healthy", "tumor": "Tumor"}
SUBTYPES = ("glioma", "meningioma", "pituitary")  # MRI tumour sub-types named in file names
JUNK_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})


@dataclass(frozen=True)
class ImageFileEntry:
    """One image file found in the dataset tree (before any decoding)."""

    relpath: str  # posix path relative to the dataset root
    modality: str  # "CT" | "MRI"
    label: str  # "healthy" | "tumor"


def _holds_modalities(folder: Path) -> bool:
    return all((folder / name).is_dir() for name in MODALITY_FOLDERS.values())


def find_root(folder: str | Path) -> Path | None:
    """The dataset root at or below ``folder`` (Kaggle archives nest it in ``Dataset/``)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        return None
    if _holds_modalities(folder):
        return folder.resolve()
    for depth in (1, 2):
        for candidate in sorted(folder.glob("/".join(["*"] * depth))):
            if candidate.is_dir() and "__MACOSX" not in candidate.parts and _holds_modalities(candidate):
                return candidate.resolve()
    return None


def _quietly(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` with anything it prints captured, and with ``SystemExit`` (the
    Kaggle client's ``authenticate()`` exits the process when it finds no credentials) or
    any other exception turned into a :class:`RuntimeError` carrying the captured text, so
    no third-party client can end the process or print its own login instructions in place
    of ours."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            return fn(*args, **kwargs)
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - SystemExit included, on purpose
        said = " ".join((out.getvalue() + " " + err.getvalue()).split())
        what = (f"exited the process (SystemExit {e.code})" if isinstance(e, SystemExit)
                else f"{type(e).__name__}: {e}")
        if said:
            what += f"; it said: {said[:300]}{'…' if len(said) > 300 else ''}"
        raise RuntimeError(what) from None


def _kagglehub_download(dest: Path) -> Path:
    import kagglehub

    cached = Path(kagglehub.dataset_download(KAGGLE_HANDLE))
    target = dest / "brain-tumor-multimodal-ct-mri"
    if not target.exists():
        # kagglehub caches under ~/.cache/kagglehub; keep a copy in data/ so the
        # project is self-contained and found again offline.
        shutil.copytree(cached, target)
    root = find_root(target)
    if root is None:
        raise RuntimeError(f"downloaded to {cached} but the expected folders are missing")
    return root


def _kaggle_api_download(dest: Path) -> Path:
    from kaggle.api.kaggle_api_extended import KaggleApi

    api = KaggleApi()
    api.authenticate()  # calls sys.exit(1) without credentials
    target = dest / "brain-tumor-multimodal-ct-mri"
    api.dataset_download_files(KAGGLE_HANDLE, path=str(target), unzip=True, quiet=True)
    root = find_root(target)
    if root is None:
        raise RuntimeError(f"downloaded to {target} but the expected folders are missing")
    return root


# The download clients, in the order tried: (name, function(dest) -> dataset root).
DOWNLOADERS = [("kagglehub", _kagglehub_download), ("kaggle API", _kaggle_api_download)]


def download(dest: str | Path) -> Path:
    """Download the dataset into ``dest`` and return its root.

    Uses kagglehub (public datasets need no credentials); if that fails and the
    ``kaggle`` package is installed and configured (``~/.kaggle/kaggle.json`` or
    ``KAGGLE_USERNAME``/``KAGGLE_KEY``), its API is tried instead. Neither client may end
    the process or print to the terminal: each failure becomes one line of the
    :class:`DatasetError`.
    """
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # read-only install, or data/ is a file: report, don't crash
        raise DatasetError(
            f"could not download the dataset: cannot create {dest} ({e.strerror or e})") from None
    errors: list[str] = []
    for name, fn in DOWNLOADERS:
        try:
            return _quietly(fn, dest)
        except RuntimeError as e:
            errors.append(f"{name}: {e}")
    raise DatasetError("could not download the dataset:\n    " + "\n    ".join(errors))


def locate_dataset(path: str | Path | None = None, config: Config | None = None,
                   allow_download: bool = True) -> Path:
    """Find the dataset root; download it only when nothing local exists."""
    config = config or Config()
    tried: list[str] = []
    explicit = path or config.data_dir
    if explicit:
        root = find_root(explicit)
        if root is None:
            raise DatasetError(
                f"{explicit}: no dataset here (expected folders {list(MODALITY_FOLDERS.values())}, "
                "possibly inside Dataset/)"
            )
        return root
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        root = find_root(env)
        if root is None:
            raise DatasetError(
                f"${DATA_DIR_ENV}={env} does not hold the dataset (expected folders "
                f"{list(MODALITY_FOLDERS.values())}); fix or unset the variable"
            )
        return root
    tried.append(f"${DATA_DIR_ENV} (not set)")
    local = config.data_path / "raw"
    root = find_root(local)
    if root is not None:
        return root
    tried.append(f"{local} (no dataset)")
    if not allow_download:
        tried.append("download (not allowed here)")
    else:
        try:
            return download(local)
        except DatasetError as e:
            tried.append(str(e))
    raise DatasetError(
        "dataset not found. Tried:\n  - " + "\n  - ".join(tried) + "\n"
        f"Fix: set {DATA_DIR_ENV} (or pass --data-dir) to a copy of '{KAGGLE_HANDLE}', the "
        f"folder holding '{MODALITY_FOLDERS['CT']}/' and '{MODALITY_FOLDERS['MRI']}/'; or go "
        "online (kagglehub needs no login for this public dataset); or log in to Kaggle "
        "(`kaggle auth login`, or a token in ~/.kaggle/) and run the command again."
    )


def list_image_files(root: str | Path) -> list[ImageFileEntry]:
    """Every image file under the four class folders, sorted; junk ignored.

    A missing or empty class folder is an error naming it: training on three of the four
    folders would silently produce a different task.
    """
    root = Path(root)
    entries: list[ImageFileEntry] = []
    for modality, mod_folder in MODALITY_FOLDERS.items():
        for label, label_folder in LABEL_FOLDERS.items():
            folder = root / mod_folder / label_folder
            if not folder.is_dir():
                raise DatasetError(f"missing class folder: {folder}")
            found = [
                p for p in folder.rglob("*")
                if p.is_file() and "__MACOSX" not in p.relative_to(root).parts and p.name not in JUNK_NAMES
                and is_image_file(p)
            ]
            if not found:
                raise DatasetError(f"class folder has no images: {folder}")
            entries.extend(
                ImageFileEntry(p.relative_to(root).as_posix(), modality, label) for p in found
            )
    entries.sort(key=lambda e: e.relpath)
    return entries
