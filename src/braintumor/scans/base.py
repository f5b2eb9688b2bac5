"""What every scan reader shares: the :class:`Slice` record, the error types, and the
lazy imports of the optional readers (``pydicom``, ``nibabel``)."""
from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ImageReadError

# Same limit as braintumor.images.MAX_PIXELS (not imported: this package depends on
# braintumor.errors only): far above any brain slice, far below what exhausts memory.
MAX_SLICE_PIXELS = 40_000_000
# A whole volume (first 3-D volume of a NIfTI, all slices of a series) may hold at most this
# many voxels: 300 M float32 voxels is 1.2 GB, a 1,000-slice 512x512 CT is 262 M.
MAX_VOLUME_VOXELS = 300_000_000

PINNED = {"pydicom": "pydicom==3.0.2", "nibabel": "nibabel==5.4.2"}


class ScanReadError(ImageReadError):
    """A DICOM or NIfTI input could not be read. ``path`` names the file (or folder),
    ``reason`` says what is wrong and how to fix it. Subclass of ImageReadError, so code
    that reports unreadable images reports unreadable scans the same way."""


class NoPixelDataError(ScanReadError):
    """A DICOM object without an image (structured report, presentation state, DICOMDIR…)."""


class DecoderUnavailableError(ScanReadError):
    """Compressed DICOM pixel data for which no pydicom decoding plugin is installed."""


@dataclasses.dataclass
class Slice:
    """One 2-D image taken from a scan, ready for the model.

    ``rgb``: ``uint8`` array ``(H, W, 3)``. ``source``: the file it came from. ``index``:
    slice number within its series or volume (0-based, in anatomical order: sorted along
    the slice normal for DICOM, inferior→superior for NIfTI; kept when slices are skipped
    by ``stride``/``min_foreground``). ``label``: short display name (``file.dcm``,
    ``file.dcm#frame=3``, ``vol.nii.gz#slice=42``). ``series``: key of the series or
    volume the slice belongs to (what per-volume summaries group by). ``meta``: modality,
    window, position… — never patient identifiers.
    """

    rgb: np.ndarray
    source: str
    index: int
    label: str
    series: str
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)


def require(module: str, path: str | Path):
    """Import ``pydicom``/``nibabel`` (or a submodule) or raise a ScanReadError naming the
    file that needed it and the pinned install line."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - both are dependencies
        top = module.split(".")[0]
        raise ScanReadError(path, f"reading this file needs {top}, which is not installed "
                                  f"({exc}); run `pip install {PINNED.get(top, top)}`") from exc
