"""What predict reads: files, folders and globs → sources → prepared images, one per row.

A *source* is one input the user gave or a folder held: an image file (PNG, JPEG, TIFF…),
a DICOM file, a DICOM series folder or a NIfTI volume (:func:`braintumor.scans.is_scan_path`).
:func:`load_source` turns one source into :class:`Item` s — one per image, or one per
slice of a scan — each prepared exactly as training prepared images
(:func:`braintumor.preprocess.prepare_image`: the model card's preprocessing, then the
aspect-preserving resize), or carrying the reason it could not be. It is a module-level
function of picklable arguments, so :mod:`braintumor.inference` runs it in worker processes.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data.images import is_image_file, load_rgb
from .errors import ImageReadError
from .ood import is_flat
from .preprocess import prepare_image

# Smaller images carry too little to mean anything (a 1x1 PNG once got p(tumour) 0.49):
# they get an error row instead of a prediction.
MIN_SIDE = 32


@dataclass
class Item:
    """One row of predict's output before the network: where it came from and the prepared
    ``uint8 (S, S, 3)`` image, or ``error`` (then ``image`` is None)."""

    path: str
    slice: str = ""  # slice label for scans ("vol.nii.gz#slice=42"), "" for images
    series: str = ""  # series/volume key for scans, "" for images
    image: np.ndarray | None = None
    error: str = ""
    flat: bool = False  # one grey level before preprocessing (braintumor.ood.is_flat)


def _is_nifti_name(p: Path) -> bool:
    name = p.name.lower()
    return name.endswith(".nii") or name.endswith(".nii.gz")


def _scan_sources_in(folder: Path) -> list[Path]:
    """Image files, NIfTI volumes and DICOM series folders (each one source) under ``folder``."""
    from .scans import is_dicom_file, is_dicom_folder

    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        here = Path(dirpath)
        files = [here / f for f in sorted(filenames) if not f.startswith("._")]
        dicom = [f for f in files if not is_image_file(f) and not _is_nifti_name(f) and is_dicom_file(f)]
        if dicom and is_dicom_folder(here):
            out.append(here)  # a series: its DICOM files are read together
        out.extend(f for f in files if is_image_file(f) or _is_nifti_name(f))
    return out


def expand_inputs(inputs: list[str | Path]) -> list[Path]:
    """Files as given, folders recursively, globs expanded; sorted within each input and
    de-duplicated. In a folder, image files and NIfTI volumes are one source each and a
    folder holding DICOM files is one source (its series). A folder given directly that
    holds DICOM files is itself a series. A name matching nothing is kept, so it gets an
    error row ("file not found") rather than vanishing."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out.extend(_scan_sources_in(p))
        elif p.exists():
            out.append(p)
        else:
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=True)) if Path(m).exists()]
            out.extend(matches or [p])
    return list(dict.fromkeys(out))


def too_small(shape: tuple[int, ...], min_side: int = MIN_SIDE) -> str:
    """The error for an image smaller than ``min_side`` on either side, else ''."""
    h, w = shape[:2]
    if min(h, w) < min_side:
        return (f"image is {w}x{h} px: at least {min_side} px on each side is needed for a "
                "prediction to mean anything")
    return ""


def prepare(rgb: np.ndarray, size: int, preprocess: str) -> np.ndarray:
    """:func:`braintumor.preprocess.prepare_image` (what training did to every image)."""
    return prepare_image(rgb, size, preprocess)


def load_source(job: tuple[str, int, str]) -> list[Item]:
    """``(path, image size, preprocessing)`` → the source's items, errors included (never raises
    for a bad file: a worker process must return every file's row)."""
    path, size, preprocess = job
    p = Path(path)
    try:
        from .scans import is_scan_path, read_scan

        if not is_image_file(p) and is_scan_path(p):
            items = []
            for s in read_scan(p, on_error="skip"):
                item = Item(path=s.source, slice=s.label, series=s.series)
                item.error = too_small(s.rgb.shape)
                if not item.error:
                    item.image, item.flat = prepare(s.rgb, size, preprocess), is_flat(s.rgb)
                items.append(item)
            return items
        rgb = load_rgb(p)
        error = too_small(rgb.shape)
        if error:
            return [Item(path=str(p), error=error)]
        return [Item(path=str(p), image=prepare(rgb, size, preprocess), flat=is_flat(rgb))]
    except ImageReadError as e:
        return [Item(path=str(p), error=e.reason)]
    except Exception as e:  # noqa: BLE001 - a preprocessing bug must not lose the batch
        return [Item(path=str(p), error=f"could not be prepared ({type(e).__name__}: {e})")]
